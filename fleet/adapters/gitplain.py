"""The few Git reads a cached render needs, with the ``git`` program and without GitPython.

A render served from the cache needs two facts from Git: the commit a revision names (the cache is keyed
by it) and which paths of the working tree have uncommitted changes. Importing GitPython and starting its
helper processes costs more than the whole cached render, so these run ``git`` directly. So do the two
looks at a bare remote a local cluster's operator clones (:func:`is_repository`, :func:`has_commit`) and
the smart-HTTP backend fleet serves it with (:func:`http_backend`): with :mod:`fleet.adapters.git`, this
is the only module that runs ``git``.

Every function returns None when git cannot answer plainly (not a repository, an unknown or unusual
revision, an unborn branch, no git binary): the caller then takes the full path through
:class:`fleet.adapters.git.GitRepo`, whose errors are the ones users see. Nothing here writes.
"""

from __future__ import annotations

import re
from pathlib import Path

from fleet.adapters import proc
from fleet.errors import FleetError

__all__ = ["changed_paths", "ever_held", "has_commit", "http_backend", "is_repository", "resolve"]

_NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
# what the fast path resolves: a commit id (short or full), or a ref name with ~N / ^N steps. Anything
# else (``@{upstream}``, ``:/text``, ...) takes GitRepo's path, so both paths accept the same revisions.
_PLAIN_REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}(?:[~^][0-9]{0,4})*")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = proc.run(["git", "-C", str(root), *args], env=_NO_PROMPT, timeout=60)
    except FleetError:  # no git binary, or it hung: the full path reports it
        return None
    return done.stdout if done.ok else None


def resolve(path: Path, rev: str | None) -> tuple[Path, str] | None:
    """(the root of the working tree holding ``path``, the full commit id ``rev`` names there; default
    HEAD), or None."""
    rev = rev or "HEAD"
    if not _PLAIN_REV.fullmatch(rev) or ".." in rev or rev.endswith((".", "/", ".lock")):
        return None
    out = _git(path, "rev-parse", "--show-toplevel", "--verify", "--quiet", f"{rev}^{{commit}}")
    lines = (out or "").splitlines()
    if len(lines) != 2 or not _COMMIT_ID.fullmatch(lines[1]) or not lines[0].startswith("/"):
        return None
    return Path(lines[0]).resolve(), lines[1]


def changed_paths(root: Path) -> list[str] | None:
    """Paths of the working tree at ``root`` with uncommitted changes, staged, unstaged or untracked (as
    :meth:`fleet.adapters.git.GitRepo.is_dirty` of ``["."]`` lists them), or None."""
    out = _git(root, "status", "--porcelain=v1", "--untracked-files=all", "--", ".")
    if out is None:
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def is_repository(git_dir: Path) -> bool:
    """``git_dir`` is a git repository (a bare remote, say) git can read."""
    try:
        return proc.run(["git", f"--git-dir={git_dir}", "rev-parse", "--git-dir"], env=_NO_PROMPT, timeout=30).ok
    except FleetError:
        return False


def has_commit(git_dir: Path, commit: str) -> bool:
    """The repository at ``git_dir`` holds commit ``commit``."""
    try:
        return proc.run(["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"],
                        env=_NO_PROMPT, timeout=30).ok
    except FleetError:
        return False


def http_backend(env: dict[str, str], body: bytes, timeout: float = 300) -> bytes:
    """``git http-backend`` (the CGI program of Git's smart HTTP) for one request: its whole answer."""
    _code, out = proc.run_bytes(["git", "http-backend"], env=env, input=body, timeout=timeout)
    return out


def ever_held(root: Path, path: str, text: str) -> bool | None:
    """Whether any commit of HEAD's history added or removed ``text`` in ``path`` (``git log -S``): False
    when no version of ``path`` ever held it; None when git cannot answer."""
    out = _git(root, "log", "-1", "--format=%H", "-S", text, "HEAD", "--", path)
    return None if out is None else bool(out.strip())
