"""The one module that talks to Git (GitPython, plus plain ``git`` for notes, refs and remotes).

Everything above works with full commit ids, repo-relative POSIX paths and the small frozen types
here; GitPython's exceptions never leave this module (they become GitError, NotFound or InputError).

Writes are safe under concurrency: :meth:`GitRepo.lock` is an exclusive lock file in the git dir
(``fleet.lock``) that every fleet writer holds, and refs move with compare-and-swap
(``git update-ref REF NEW OLD``), so a writer that is not fleet cannot be overwritten silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import os
import posixpath
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

# GitPython refuses to import without a git binary; fleet must still start (`fleet doctor` reports git
# missing, and git commands fail with ToolMissing when used).
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import git
from git.index import IndexFile
from git.index.typ import BaseIndexEntry, IndexEntry
from git.objects import Commit
from gitdb import IStream

from fleet.adapters import proc
from fleet.errors import GitError, InputError, NotFound, Unwritable

__all__ = ["NOTES_REF", "Entry", "GitRepo", "LogEntry", "SignatureCheck", "Snapshot"]

NOTES_REF = "refs/notes/fleet"
LOCK_TIMEOUT_S = 60.0
# GIT_OPTIONAL_LOCKS=0: a read (`git status`) never rewrites the index to refresh its stat cache, so a
# command that only reads the repository (a dry run) leaves .git exactly as it was
_NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}


_DIR = 0o040000
_BLOB_BUDGET = 64 << 20  # bytes of blobs a repository keeps in memory (a command reads each one once)


def _object_id(kind: bytes, data: bytes) -> bytes:
    """The id git gives an object of ``kind`` holding ``data`` (SHA-1 of its header and content)."""
    import hashlib

    return hashlib.sha1(kind + b" " + str(len(data)).encode() + b"\0" + data, usedforsecurity=False).digest()


def _kind(mode: int) -> str:
    return {0o040000: "dir", 0o160000: "submodule", 0o120000: "link"}.get(mode, "file")


@dataclass(frozen=True)
class Entry:
    """One entry of a tree: ``kind`` is "file", "dir", "link" or "submodule"."""

    name: str
    kind: str
    oid: str


@dataclass(frozen=True)
class LogEntry:
    revision: str
    author: str
    email: str
    date: datetime
    subject: str


@dataclass(frozen=True)
class SignatureCheck:
    """What ``git verify-commit`` said of a commit. ``status`` is git's ``%G?``: G good, U good (an OpenPGP
    key of unknown trust; for SSH: no principal matched), B bad, X/Y expired signature/key, R revoked key,
    E cannot be checked (no such key), N no signature. ``ok``: verify-commit's own verdict (exit 0)."""

    revision: str
    ok: bool
    status: str
    format: str  # "ssh", "openpgp", "x509" or "" (unsigned)
    fingerprint: str  # %GF (SSH: SHA256:..., OpenPGP: the signing key's fingerprint), or the key id (%GK)
    signer: str  # %GS: the SSH principal or the OpenPGP user id
    detail: str  # the last line git (or ssh-keygen/gpg) printed


_OLD_VAR_CHANGE = re.compile(r"(?<=[:,] )vars\.([A-Za-z_][A-Za-z0-9_]*)=.*?(?=, (?:[-a-z]+[. ]|-)|$)")


_UNWRITABLE = ("Permission denied", "Read-only file system", "File exists", "Unable to create")


def _raise_unwritable(stderr: str, what: str) -> None:
    """A git write that failed because of the environment (read-only, a stale lock) is Unwritable."""
    if any(s in stderr for s in _UNWRITABLE):
        line = next((ln for ln in stderr.splitlines() if any(s in ln for s in _UNWRITABLE)), stderr)
        raise Unwritable(f"cannot update {what}: {line.strip().removeprefix('fatal: ').removeprefix('error: ')}")


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _shown(value: str) -> str:
    """``value`` for a one-line message: control characters and non-UTF-8 bytes escaped, cut at 80."""
    out = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return out if len(out) <= 80 else out[:80] + "..."


def _without_credentials(url: str) -> str:
    """``url`` without a password, and for http(s) without a user name (often a token) either."""
    m = re.match(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^@/]*)@(?P<rest>.*)$", url)
    if m:
        user = m["user"].split(":", 1)[0]
        keep = "" if m["scheme"].lower().startswith("http") or not user else user + "@"
        return f"{m['scheme']}{keep}{m['rest']}"
    m = re.match(r"^(?P<user>[^@/:]+):[^@/]*@(?P<rest>[^/:]+:.*)$", url)  # scp-like with a password
    return f"{m['user']}@{m['rest']}" if m else url


def _redacted(subject: str) -> str:
    """A commit subject as fleet shows it: ``fleet cluster set`` once wrote variables' values into its
    subjects (``Set cluster eu-1: vars.DB_PASSWORD=...``); they are shown as the name only."""
    if not subject.startswith("Set cluster ") or "vars." not in subject:
        return subject
    return _OLD_VAR_CHANGE.sub(lambda m: f"vars.{m.group(1)}", subject)


def _stays_inside(stack: list[str], target: str) -> bool:
    """Whether ``target`` (relative, as a symlink stores it) stays inside the tree from directory ``stack``,
    counting ``..`` lexically (the walk then checks each symlink it meets on the way)."""
    depth = len(stack)
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def _clean_rel(path: str) -> str:
    """A repo-relative POSIX path that cannot leave the repo (no absolute, no ``..``)."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts:
        raise InputError(f'path "{_shown(path)}" leaves the repository')
    s = str(p)
    return "" if s == "." else s


_F = TypeVar("_F", bound=Callable[..., Any])


def _serialized(method: _F) -> _F:
    """GitPython talks to one ``git cat-file --batch`` process per repo: one caller at a time."""

    @functools.wraps(method)
    def wrapper(self: GitRepo, *args: Any, **kwargs: Any) -> Any:
        with self._io:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class GitRepo:
    """A fleet repo on disk. Open with :meth:`open`; close (or use ``with``) to stop git helpers."""

    def __init__(self, repo: git.Repo) -> None:
        self._repo = repo
        wt = repo.working_tree_dir
        if wt is None:
            raise InputError(f"{repo.git_dir} is a bare repository; fleet needs a working tree")
        self.root = Path(wt).resolve()
        self.git_dir = Path(repo.common_dir).resolve()
        self._snapshots: dict[str, Snapshot] = {}
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._counts: Counter[str] = Counter()
        self._object_reads: Counter[bytes] = Counter()
        self._lookups: Counter[str] = Counter()
        self._io = threading.RLock()
        self._trees: dict[bytes, dict[str, tuple[int, bytes]]] = {}
        # trees made in memory by compose() (a Flux ExternalArtifact's content), never written to the repo
        self._composed: dict[bytes, dict[str, tuple[int, bytes]]] = {}
        self._composed_blobs: dict[bytes, bytes] = {}
        self._composed_roots: dict[str, bytes] = {}

    @classmethod
    def open(cls, path: str | Path) -> GitRepo:
        p = Path(path).expanduser()
        if not p.exists():
            raise InputError(f"not a git repository: {p} does not exist")
        try:
            return cls(git.Repo(p, search_parent_directories=True))
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise InputError(
                f"not a git repository: {p}", hint="run `fleet init DIR` to create a fleet repo"
            ) from e

    @classmethod
    def init(cls, path: Path, branch: str = "main") -> GitRepo:
        try:
            if (path / ".git").exists():
                return cls(git.Repo(path))
            return cls(git.Repo.init(path, initial_branch=branch))
        except git.GitError as e:
            raise GitError(f"git init {path} failed: {e}") from e

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------

    @_serialized
    def _commit(self, rev: str) -> Commit:
        self._counts["resolve"] += 1
        self._lookups[rev] += 1
        if not rev or rev.startswith("-") or _UNPRINTABLE.search(rev):
            raise NotFound(f'revision "{_shown(rev)}" not found')
        try:
            obj: Any = self._repo.rev_parse(rev)
            while obj.type == "tag":
                obj = obj.object
        except NotImplementedError:  # GitPython lacks reflog forms (HEAD@{yesterday}, @{-1}): git itself reads them
            obj = self._repo.commit(self._rev_parse_commit(rev))
        except (git.BadName, git.BadObject, ValueError, IndexError, KeyError) as e:
            raise NotFound(f'revision "{_shown(rev)}" not found') from e
        if obj.type != "commit":
            raise NotFound(f'revision "{_shown(rev)}" is a {obj.type}, not a commit')
        assert isinstance(obj, Commit)
        return obj

    def _rev_parse_commit(self, rev: str) -> str:
        """``rev`` resolved to a commit id by ``git rev-parse`` (never read as an option), or NotFound."""
        done = self._run(["rev-parse", "--verify", "-q", "--end-of-options", rev + "^{commit}"])
        sha = done.stdout.strip()
        if not done.ok or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
            raise NotFound(f'revision "{_shown(rev)}" not found')
        return sha

    def resolve(self, rev: str) -> str:
        """The full commit id of ``rev`` (a branch, tag, short or full id, ``HEAD~2``...); a tree made by
        :meth:`compose` is its own name."""
        return self.snapshot(rev).commit

    def compose(self, files: dict[str, str | bytes]) -> str:
        """A tree holding ``files`` (repo path -> the id of a blob of this repository, or the file's bytes),
        made in memory only: nothing is written to the repository. Returns a name every reading method
        (:meth:`read_file`, :meth:`list_dir`, :meth:`tree_id`, :meth:`extract`, ...) takes as a revision:
        the tree's own id, as git would compute it, so equal content gives an equal name."""
        root: dict[str, Any] = {}
        for path, content in files.items():
            parts = [p for p in _clean_rel(path).split("/") if p]
            if not parts:
                raise InputError(f'"{path}" is not a file path')
            node = root
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise InputError(f"{path}: {part} is a file and a directory")
                node = child
            if isinstance(node.get(parts[-1]), dict):
                raise InputError(f"{path} is a directory and a file")
            node[parts[-1]] = content

        def tree(node: dict[str, Any]) -> bytes:
            entries: dict[str, tuple[int, bytes]] = {}
            for name, value in node.items():
                if isinstance(value, dict):
                    entries[name] = (_DIR, tree(value))
                elif isinstance(value, bytes):
                    blob = _object_id(b"blob", value)
                    self._composed_blobs[blob] = value
                    entries[name] = (0o100644, blob)
                else:
                    entries[name] = (0o100644, bytes.fromhex(value))
            body = b"".join(
                f"{mode:o} {name}".encode("utf-8", "surrogateescape") + b"\0" + oid
                for name, (mode, oid) in sorted(entries.items(), key=lambda e: e[0] + "/" if e[1][0] == _DIR
                                                else e[0])
            )
            oid = _object_id(b"tree", body)
            self._composed[oid] = entries
            return oid

        with self._io:
            oid = tree(root)
            self._composed_roots[oid.hex()] = oid
        return oid.hex()

    def head(self) -> str | None:
        """The commit HEAD points at, or None on an unborn branch."""
        try:
            return self._repo.head.commit.hexsha
        except ValueError:
            return None

    def branch(self) -> str | None:
        """The checked-out branch, or None when HEAD is detached."""
        try:
            return self._repo.active_branch.name
        except TypeError:
            return None

    def write_blockers(self) -> str | None:
        """Why a commit cannot be made now, before anything is written: a lock file git leaves while it
        writes (another git process is running, or one crashed and left it)."""
        branch = self.branch()
        own = Path(self._repo.git_dir)
        candidates = [own / "index.lock", own / "HEAD.lock"]
        if branch:
            candidates.append(self.git_dir / "refs" / "heads" / f"{branch}.lock")
        for lock in candidates:
            if lock.exists():
                return (
                    f"{lock} exists: another git process is running, or one crashed and left it; "
                    "remove it when no git process runs"
                )
        return None

    def is_dirty(self, paths: Sequence[str]) -> list[str]:
        """Paths (under ``paths``) with uncommitted changes, staged, unstaged or untracked."""
        if self.head() is None:
            return []
        args = [
            "status",
            "--porcelain=v1",
            "--untracked-files=all",
            "--",
            *(_clean_rel(p) or "." for p in paths),
        ]
        out = self._git(*args)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def tracked(self, paths: Sequence[str]) -> list[str]:
        """Which of ``paths`` (files or directories) hold content git tracks, in HEAD or in the index."""
        head = self.head()
        out: list[str] = []
        for p in paths:
            rel = _clean_rel(p)
            in_head = head is not None and self._lookup(head, rel) is not None
            if in_head or self._git("ls-files", "-z", "--", rel or "."):
                out.append(rel or ".")
        return out

    # Trees are read with a cache of parsed tree objects (immutable by id): GitPython re-parses a tree on
    # every path lookup, which makes reading a thousand files of one directory quadratic. Blobs are kept
    # by id too (up to _BLOB_BUDGET bytes), so a command reads each one from the object database once.

    @_serialized
    def _read_object(self, binsha: bytes) -> bytes:
        made = self._composed_blobs.get(binsha)
        if made is not None:
            return made
        self._counts["object"] += 1
        self._object_reads[binsha] += 1
        data: bytes = self._repo.odb.stream(binsha).read()
        return data

    def _blob(self, binsha: bytes) -> bytes:
        data = self._blobs.get(binsha)
        if data is None:
            data = self._read_object(binsha)
            with self._io:
                self._blobs[binsha] = data
                self._blob_bytes += len(data)
                while self._blob_bytes > _BLOB_BUDGET and len(self._blobs) > 1:
                    _, old = self._blobs.popitem(last=False)
                    self._blob_bytes -= len(old)
        return data

    def snapshot(self, rev: str | Snapshot) -> Snapshot:
        """``rev`` resolved once into a :class:`Snapshot` of its tree (a snapshot passes through). A full
        commit id (or a tree :meth:`compose` made) is looked up once per repository: its snapshot is kept,
        with what was read of it; a name (a branch, ``HEAD``) is looked up each time, since it moves."""
        if isinstance(rev, Snapshot):
            return rev
        snap = self._snapshots.get(rev)
        if snap is not None:
            return snap
        composed = self._composed_roots.get(rev)
        if composed is not None:
            snap = Snapshot(self, rev, composed)
        else:
            with self._io:  # GitPython reads the commit object lazily, through the one cat-file process
                commit = self._commit(rev)
                snap = self._snapshots.get(commit.hexsha) or Snapshot(self, commit.hexsha, commit.tree.binsha)
        with self._io:
            if len(self._snapshots) > 256:  # a long-lived process reads many revisions
                self._snapshots.clear()
            self._snapshots[snap.commit] = snap
        return snap

    def stats(self) -> dict[str, int]:
        """What this repository asked Git so far: ``resolve`` (revisions looked up), ``object`` (objects read
        from the object database), ``object_reread`` (objects read more than once)."""
        return {"resolve": self._counts["resolve"], "object": self._counts["object"],
                "object_reread": sum(1 for n in self._object_reads.values() if n > 1)}

    def lookups(self) -> dict[str, int]:
        """How often each revision (as it was named) was looked up so far."""
        return dict(self._lookups)

    def _lookup(self, rev: str, path: str) -> tuple[int, bytes] | None:
        """(mode, object id) of ``path`` at ``rev``, or None."""
        return self.snapshot(rev)._lookup(path)

    def _entries(self, binsha: bytes) -> dict[str, tuple[int, bytes]]:
        cached = self._trees.get(binsha)
        if cached is None:
            cached = self._composed.get(binsha)
        if cached is not None:
            return cached
        data: bytes = self._read_object(binsha)
        entries: dict[str, tuple[int, bytes]] = {}
        i = 0
        while i < len(data):
            sp = data.index(b" ", i)
            nul = data.index(b"\0", sp)
            name = data[sp + 1 : nul].decode("utf-8", "surrogateescape")
            if name in (".", "..", "") or "/" in name:
                raise GitError(f"tree {binsha.hex()[:12]} holds an unsafe entry name {name!r}")
            entries[name] = (int(data[i:sp], 8), data[nul + 1 : nul + 21])
            i = nul + 21
        if len(self._trees) > 4096:
            self._trees.clear()
        self._trees[binsha] = entries
        return entries

    # The readers of a revision's tree: each one resolves ``rev`` through :meth:`snapshot` (a full commit id
    # once per repository) and reads from the snapshot, which keeps what it read.

    def read_file(self, rev: str | Snapshot, path: str) -> str | None:
        """The text of ``path`` at ``rev``, or None when it is not a file there."""
        return self.snapshot(rev).read_file(path)

    def read_blob(self, oid: str) -> bytes:
        """The content of the blob ``oid`` (hex) of this repository (or of a tree :meth:`compose` made)."""
        try:
            return self._blob(bytes.fromhex(oid))
        except (ValueError, KeyError, git.BadObject) as e:
            raise NotFound(f"blob {_shown(oid)} not found") from e

    def list_dir(self, rev: str | Snapshot, path: str) -> list[Entry]:
        """The entries of directory ``path`` at ``rev`` (empty when it does not exist)."""
        return self.snapshot(rev).list_dir(path)

    def tree_id(self, rev: str | Snapshot, path: str = "") -> str | None:
        """The object id of ``path`` (a tree or a blob) at ``rev``; None when absent."""
        return self.snapshot(rev).tree_id(path)

    def entry(self, rev: str | Snapshot, path: str) -> Entry | None:
        """The entry at ``path`` (symlinks not followed), or None; the root is a "dir" named ""."""
        return self.snapshot(rev).entry(path)

    def link_target(self, rev: str | Snapshot, path: str) -> str | None:
        """What the symlink ``path`` points to (as stored), or None when it is not a symlink."""
        return self.snapshot(rev).link_target(path)

    def resolve_path(self, rev: str | Snapshot, base: str, rel: str) -> tuple[str, str | None]:
        """:meth:`Snapshot.resolve_path` at ``rev``."""
        return self.snapshot(rev).resolve_path(base, rel)

    def extract(self, rev: str | Snapshot, dest: Path, paths: Sequence[str] = ("",)) -> None:
        """:meth:`Snapshot.extract` at ``rev``."""
        self.snapshot(rev).extract(dest, paths)

    def first_parent_changes(self, rev: str, paths: Sequence[str]) -> list[str]:
        """The commits on ``rev``'s first-parent line (``rev`` included) that change ``paths`` (each compared
        with its first parent, so a merge that brings a change counts), oldest first."""
        sha = self.resolve(rev)
        rels = [_clean_rel(p) for p in paths]
        done = self._run(["log", "--first-parent", "--reverse", "--format=%H", sha, "--", *rels])
        if not done.ok:
            raise GitError(f"git log failed: {done.stderr.strip()}")
        return done.stdout.split()

    @_serialized
    def log(self, paths: Sequence[str] = (), rev: str = "HEAD", max_count: int = 50) -> list[LogEntry]:
        """Commits reachable from ``rev`` that touch ``paths`` (all commits when empty), newest first."""
        sha = self.resolve(rev)
        rels = [_clean_rel(p) for p in paths]
        try:
            commits = list(self._repo.iter_commits(sha, paths=rels or "", max_count=max_count))
        except git.GitCommandError as e:
            raise GitError(f"git log failed: {e.stderr.strip()}") from e
        return [
            LogEntry(
                c.hexsha,
                str(c.author.name),
                str(c.author.email),
                datetime.fromtimestamp(c.authored_date, UTC),
                _redacted(c.summary if isinstance(c.summary, str) else c.summary.decode()),
            )
            for c in commits
        ]

    def identity(self) -> tuple[str, str]:
        """The user's git identity (name, email): environment first, then git config."""
        reader = self._repo.config_reader()
        name = os.environ.get("GIT_AUTHOR_NAME") or str(reader.get_value("user", "name", ""))
        email = os.environ.get("GIT_AUTHOR_EMAIL") or str(reader.get_value("user", "email", ""))
        if not name or not email:
            raise InputError(
                "git identity is not set",
                hint='run `git config --global user.name "Your Name"` and '
                "`git config --global user.email you@example.com`",
            )
        return name, email

    # ---- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the repo's fleet lock (``<git dir>/fleet.lock``); every fleet writer takes it."""
        path = self.git_dir / "fleet.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise Unwritable.of(path, e, "the repository is read-only?") from e
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as e:
                    if time.monotonic() > deadline:
                        raise GitError(f"another fleet process has held {path} for {timeout:.0f}s") from e
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @_serialized
    def commit(self, changes: dict[str, str | None], message: str, *, update_worktree: bool = True) -> str:
        """Commit ``changes`` (path -> new text, or None to delete) on top of HEAD; returns the commit.

        Only those paths change: other staged or unstaged work is left as it was. The branch moves by
        compare-and-swap; then the working tree and the index catch up for those paths. The caller
        holds :meth:`lock`.
        """
        name, email = self.identity()
        actor = git.Actor(name, email)
        head = self.head()
        parents = [self._commit(head)] if head else []
        try:
            index = IndexFile.from_tree(self._repo, parents[0]) if parents else IndexFile.new(self._repo)
            for path, text in changes.items():
                rel = _clean_rel(path)
                if text is None:
                    index.entries.pop((rel, 0), None)
                    continue
                data = text.encode()
                stored = self._repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
                index.entries[(rel, 0)] = IndexEntry.from_base(
                    BaseIndexEntry((0o100644, stored.binsha, 0, rel))
                )
            tree = index.write_tree()
            new = Commit.create_from_tree(
                self._repo, tree, message, parent_commits=parents, head=False, author=actor, committer=actor
            )
        except OSError as e:
            raise Unwritable.of(self.git_dir / "objects", e, "the repository is read-only?") from e
        except (git.GitError, ValueError) as e:
            raise GitError(f"could not create the commit: {e}") from e
        self.update_ref("HEAD", new.hexsha, head, message=message)
        if update_worktree:
            self._sync_worktree(changes)
        return new.hexsha

    def _sync_worktree(self, changes: dict[str, str | None]) -> None:
        for path, text in changes.items():
            target = self.root / _clean_rel(path)
            if text is None:
                target.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    target.parent.rmdir()  # only when now empty
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.fleet-tmp")
                tmp.write_text(text)
                tmp.replace(target)
        # the index catches up; another git process may hold index.lock for a moment
        for attempt in range(5):
            try:
                self._git("reset", "-q", "HEAD", "--", *[_clean_rel(p) for p in changes])
                return
            except GitError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def update_ref(self, ref: str, new: str | None, old: str | None, *, message: str = "fleet") -> None:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new`` (None: delete)."""
        zero = "0" * 40
        if new is None:
            args = ["update-ref", "-m", message, "-d", ref, old or ""]
        else:
            args = ["update-ref", "-m", message, ref, new, old or zero]
        done = self._run(args)
        if not done.ok:
            _raise_unwritable(done.stderr, ref)
            raise GitError(
                f"{ref} moved while fleet was updating it; run the command again ({done.stderr.strip()})"
            )

    def read_ref(self, ref: str) -> str | None:
        done = self._run(["rev-parse", "--verify", "-q", ref + "^{commit}"])
        return done.stdout.strip() if done.ok else None

    def list_refs(self, prefix: str) -> dict[str, str]:
        out = self._git("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    # ---- notes (refs/notes/fleet) -------------------------------------------------------------

    def note_show(self, revision: str, ref: str = NOTES_REF) -> str | None:
        done = self._run(["notes", f"--ref={ref}", "show", revision])
        return done.stdout if done.ok else None

    def note_write(self, revision: str, text: str, ref: str = NOTES_REF) -> None:
        """Replace the note on ``revision`` (the caller holds :meth:`lock` and keeps what it read)."""
        done = self._run(["notes", f"--ref={ref}", "add", "-f", "-F", "-", revision], input=text)
        if not done.ok:
            _raise_unwritable(done.stderr, ref)
            raise GitError(f"could not write the note on {revision[:12]}: {done.stderr.strip()}")

    def note_remove(self, revision: str, ref: str = NOTES_REF) -> None:
        self._run(["notes", f"--ref={ref}", "remove", "--ignore-missing", revision])

    def notes(self, ref: str = NOTES_REF) -> dict[str, str]:
        """Every note under ``ref``: annotated commit -> note text."""
        done = self._run(["notes", f"--ref={ref}", "list"])
        if not done.ok:
            return {}
        out: dict[str, str] = {}
        for line in done.stdout.splitlines():
            blob, commit = line.split()
            out[commit] = self._read_object(bytes.fromhex(blob)).decode()
        return out

    def notes_merge(self, other_ref: str, ref: str = NOTES_REF) -> None:
        """Merge notes from ``other_ref`` into ``ref``, keeping every line of both (cat_sort_uniq)."""
        done = self._run(["notes", f"--ref={ref}", "merge", "-q", "-s", "cat_sort_uniq", other_ref])
        if not done.ok:
            raise GitError(f"could not merge notes from {other_ref}: {done.stderr.strip()}")

    # ---- signatures ------------------------------------------------------------------------

    def verify_commit(self, revision: str, *, allowed_signers: Path, gnupghome: Path) -> SignatureCheck:
        """``git verify-commit`` of ``revision`` against exactly these keys: SSH signatures against the
        allowed-signers file ``allowed_signers``, OpenPGP ones against the keyring in ``gnupghome`` (never
        the user's own: GNUPGHOME is set, and the programs and trust level are fixed whatever git's
        config says)."""
        sha = self.resolve(revision)
        config = [
            "-c", f"gpg.ssh.allowedSignersFile={allowed_signers}",
            "-c", "gpg.program=gpg", "-c", "gpg.openpgp.program=gpg", "-c", "gpg.ssh.program=ssh-keygen",
            "-c", "gpg.minTrustLevel=undefined",
        ]
        env = {**_NO_PROMPT, "GNUPGHOME": str(gnupghome)}

        def git_(*args: str) -> proc.Completed:
            return proc.run(["git", "-C", str(self.root), *config, *args], env=env, timeout=60, error=GitError)

        verdict = git_("verify-commit", "--raw", sha)
        shown = git_("show", "-s", "--no-show-signature", "--format=%G?%x1f%GF%x1f%GK%x1f%GS", sha)
        if not shown.ok:
            raise GitError(f"cannot read the signature of {sha[:12]}: {shown.stderr.strip()}")
        status, fpr, keyid, signer = [*shown.stdout.rstrip("\n").split("\x1f"), "", "", "", ""][:4]
        with self._io:
            sig = self._repo.commit(sha).gpgsig or ""
        fmt = ("ssh" if "BEGIN SSH SIGNATURE" in sig else "openpgp" if "BEGIN PGP SIGNATURE" in sig
               else "x509" if sig else "")
        lines = [ln for ln in verdict.stderr.splitlines() if ln.strip() and not ln.startswith("[GNUPG:]")]
        return SignatureCheck(sha, verdict.ok and status in ("G", "U"), status or "N", fmt, fpr or keyid,
                              _shown(signer), _shown(lines[-1].strip()) if lines else "")

    # ---- remotes ---------------------------------------------------------------------------

    def remote_url(self, remote: str) -> str | None:
        """The remote's URL without credentials (a token in ``https://user:TOKEN@host/...`` stays in git's
        own config, where git uses it; what fleet passes on, to an operator, a plan or a report, has
        none)."""
        done = self._run(["remote", "get-url", remote])
        return _without_credentials(done.stdout.strip()) if done.ok else None

    def add_remote(self, remote: str, url: str) -> None:
        self._git("remote", "add", "--", remote, url)  # "--": a URL is never read as an option

    def push(self, remote: str, refspecs: Sequence[str], *, atomic: bool = True,
             leases: Mapping[str, str | None] | None = None) -> str:
        """``git push`` of ``refspecs``; ``leases``: a ref forced only if the remote still holds the given
        object id (None: only if the remote has no such ref), the compare-and-swap of ``--force-with-lease``."""
        self._require_remote(remote)
        lease_args = [f"--force-with-lease={ref}:{oid or ''}" for ref, oid in (leases or {}).items()]
        args = ["push", "--porcelain", *(["--atomic"] if atomic else []), *lease_args, remote, *refspecs]
        done = self._run(args, timeout=300)
        if not done.ok:
            detail = "; ".join(
                f"{parts[1].split(':')[-1]} {parts[2]}"
                for parts in (ln.split("\t") for ln in done.stdout.splitlines() if ln.startswith("!"))
                if len(parts) >= 3 and "atomic push failed" not in parts[2]
            ) or " | ".join(done.stderr.strip().splitlines()[-2:])
            raise GitError(
                f"push to {remote} was rejected: {detail}", hint="run `fleet pull`, then push again"
            )
        return done.stdout

    def ls_remote(self, remote: str, patterns: Sequence[str]) -> dict[str, str]:
        """Refs of ``remote`` matching ``patterns``: name -> object id."""
        self._require_remote(remote)
        done = self._run(["ls-remote", remote, *patterns], timeout=120)
        if not done.ok:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise GitError(f"cannot read refs of {remote}: {tail}")
        out: dict[str, str] = {}
        for line in done.stdout.splitlines():
            oid, _, name = line.partition("\t")
            out[name] = oid
        return out

    def delete_refs(self, prefix: str) -> None:
        for ref, oid in self.list_refs(prefix).items():
            self.update_ref(ref, None, oid)

    def fetch(self, remote: str, refspecs: Sequence[str]) -> None:
        self._require_remote(remote)
        done = self._run(["fetch", "-q", "--no-tags", remote, *refspecs], timeout=300)
        if not done.ok:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise GitError(f"fetch from {remote} failed: {tail}")

    def _require_remote(self, remote: str) -> None:
        if self.remote_url(remote) is None:
            raise InputError(
                f'git remote "{remote}" is not configured in {self.root}',
                hint=f"git remote add {remote} URL (or set git.remote in fleet.yaml)",
            )

    # ---- plumbing --------------------------------------------------------------------------

    def _run(self, args: Sequence[str], *, input: str | None = None, timeout: float = 60) -> proc.Completed:
        return proc.run(
            ["git", "-C", str(self.root), *args], env=_NO_PROMPT, input=input, timeout=timeout, error=GitError
        )

    def _git(self, *args: str) -> str:
        try:
            out: str = self._repo.git.execute(["git", *args], env=_NO_PROMPT)
        except git.GitCommandError as e:
            msg = (e.stderr or "").strip().removeprefix("stderr:").strip(" '\n")
            raise GitError(f"git {args[0]} failed: {msg}") from e
        return out


class Snapshot:
    """A revision resolved once: its commit id, its tree, and what was read of that tree, kept (a tree is
    immutable), so a command that reads a revision goes to Git for each path and each blob once.

    Made by :meth:`GitRepo.snapshot`; the registry loader, rendering and the confinement checks read a
    revision through one. ``commit`` is the full commit id (or, for a tree :meth:`GitRepo.compose` made,
    the tree's own id); paths are repo-relative POSIX paths.
    """

    def __init__(self, repo: GitRepo, commit: str, tree: bytes) -> None:
        self.repo = repo
        self.commit = commit
        self._tree = tree
        self._found: dict[str, tuple[int, bytes] | None] = {"": (_DIR, tree)}
        self._texts: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"Snapshot({self.commit[:12]})"

    @property
    def tree(self) -> str:
        """The object id of the root tree."""
        return self._tree.hex()

    def _lookup(self, path: str) -> tuple[int, bytes] | None:
        """(mode, object id) of ``path``, or None; every directory on the way is looked up once."""
        rel = _clean_rel(path)
        if rel in self._found:
            return self._found[rel]
        parent, _, name = rel.rpartition("/")
        up = self._lookup(parent)
        found = self.repo._entries(up[1]).get(name) if up is not None and up[0] == _DIR else None
        self._found[rel] = found
        return found

    def read_file(self, path: str) -> str | None:
        """The text of ``path``, or None when it is not a file there."""
        if path in self._texts:
            return self._texts[path]
        found = self._lookup(path)
        text: str | None = None
        if found is not None and _kind(found[0]) == "file":
            try:
                text = self.repo._blob(found[1]).decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path} at {self.commit[:12]} is not UTF-8 text") from e
        self._texts[path] = text
        return text

    def read_blob(self, oid: str) -> bytes:
        """The content of the blob ``oid`` (hex)."""
        return self.repo.read_blob(oid)

    def list_dir(self, path: str) -> list[Entry]:
        """The entries of directory ``path`` (empty when it does not exist)."""
        found = self._lookup(path)
        if found is None or found[0] != _DIR:
            return []
        return [Entry(n, _kind(m), b.hex()) for n, (m, b) in sorted(self.repo._entries(found[1]).items())]

    def tree_id(self, path: str = "") -> str | None:
        """The object id of ``path`` (a tree or a blob); None when absent."""
        found = self._lookup(path)
        return found[1].hex() if found is not None else None

    def entry(self, path: str) -> Entry | None:
        """The entry at ``path`` (symlinks not followed), or None; the root is a "dir" named ""."""
        found = self._lookup(path)
        if found is None:
            return None
        return Entry(PurePosixPath(path).name if path else "", _kind(found[0]), found[1].hex())

    def link_target(self, path: str) -> str | None:
        """What the symlink ``path`` points to (as stored), or None when it is not a symlink."""
        found = self._lookup(path)
        if found is None or _kind(found[0]) != "link":
            return None
        return self.repo._blob(found[1]).decode("utf-8", "surrogateescape")

    def resolve_path(self, base: str, rel: str) -> tuple[str, str | None]:
        """Where ``rel`` (relative to directory ``base``) leads in the tree, following symlinks as the file
        system would: (repo path, kind or None when nothing is there).

        Raises :class:`InputError` when it leaves the tree: an absolute path, ``..`` above the root (also
        after following a symlink), a symlink to an absolute path, or a symlink loop.
        """
        if rel.startswith("/"):
            raise InputError(f'"{rel}" is an absolute path')
        lexical = posixpath.normpath(posixpath.join(base or ".", rel))
        if lexical == ".." or lexical.startswith("../"):
            raise InputError(f'"{rel}" leaves the repository')
        stack = [p for p in _clean_rel(base).split("/") if p]
        pending = [p for p in rel.split("/")]
        hops = 0
        kind: str | None = "dir"
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise InputError(f'"{rel}" leaves the repository')
                stack.pop()
                kind = "dir"
                continue
            here = "/".join([*stack, part])
            found = self._lookup(here) if kind == "dir" else None
            kind = _kind(found[0]) if found is not None else None
            if kind == "link":
                hops += 1
                target = self.link_target(here) or ""
                if target.startswith("/") or hops > 40:
                    why = "is a symlink loop" if hops > 40 else f'is a symlink to the absolute path "{target}"'
                    raise InputError(f"{here} {why}")
                if not _stays_inside(stack, target):
                    raise InputError(f'{here} is a symlink leaving the repository (to "{target}")')
                pending[:0] = target.split("/")
                kind = "dir"
                continue
            stack.append(part)
        return "/".join(stack), kind

    def extract(self, dest: Path, paths: Sequence[str] = ("",)) -> None:
        """Write the files under ``paths`` into ``dest``, leaving the working tree alone.

        Symlinks are kept when they resolve inside the tree (resolved in this tree, so the order they are
        written in cannot matter); one that leaves it raises :class:`InputError` naming it. Submodules are
        skipped.
        """
        dest = dest.resolve()
        repo = self.repo

        def write(rel: str, mode: int, sha: bytes) -> None:
            kind = _kind(mode)
            if kind == "dir":
                for name, (m, b) in repo._entries(sha).items():
                    write(f"{rel}/{name}" if rel else name, m, b)
                return
            if kind == "submodule":
                return
            target = dest / rel
            if not target.parent.resolve().is_relative_to(dest) or target.is_symlink():
                raise GitError(f"refusing to extract {rel}: it leaves the destination")
            target.parent.mkdir(parents=True, exist_ok=True)
            data = repo._blob(sha)
            if kind == "link":
                parent = posixpath.dirname(rel)
                link = data.decode("utf-8", "surrogateescape")
                try:
                    self.resolve_path(parent, link)
                except InputError as e:
                    raise InputError(
                        f'{rel} at {self.commit[:12]} is a symlink that leaves the repository (to "{link}"): '
                        "refusing to extract it",
                        hint="symlinks in the fleet repo must point inside it",
                    ) from e
                if not target.exists():
                    target.symlink_to(data.decode("utf-8", "surrogateescape"))
                return
            target.write_bytes(data)
            if mode & 0o111:
                target.chmod(0o755)

        for path in paths:
            found = self._lookup(path)
            if found is not None:
                write(_clean_rel(path), *found)
