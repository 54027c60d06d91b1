"""Helpers shared by the test suites."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

__all__ = [
    "changes", "commit_file", "git", "git_state", "need_flux_manifests", "need_tool", "new_fleet_repo", "refs",
    "run_cli", "snapshot",
]


def need_tool(name: str) -> Path:
    """The path of a toolchain binary; skips the test when it is absent, except in CI (CI=true), where
    a missing binary fails the test: `make test` builds the toolchain first. A unit test never needs
    one (tests/unit/conftest.py): there it fails, naming the tier the test belongs in."""
    from fleet import toolchain
    from fleet.errors import ToolMissing

    if os.environ.get("FLEET_TEST_TIER") == "unit":
        pytest.fail(f"a unit test needs no toolchain binary ({name}): move it to tests/integration", pytrace=False)
    try:
        return toolchain.find(name)
    except ToolMissing as e:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"{name} is required in CI but missing: {e.message}")
        pytest.skip(f"{name} is not built yet ({e.message}); run `make toolchain`")


def need_flux_manifests() -> Path:
    """The toolchain's Flux manifests (``share/flux``), with :func:`need_tool`'s rules: skipped when not
    extracted yet, failed in CI and in the unit tier."""
    from fleet import toolchain
    from fleet.errors import ToolMissing

    if os.environ.get("FLEET_TEST_TIER") == "unit":
        pytest.fail("a unit test needs no toolchain (the Flux manifests): move it to tests/integration",
                    pytrace=False)
    try:
        return toolchain.flux_manifests_dir()
    except ToolMissing as e:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"the Flux manifests are required in CI but missing: {e.message}")
        pytest.skip(f"the Flux manifests are not extracted yet ({e.message}); run `make toolchain`")


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (tests only: fleet itself goes through its adapter)."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout


def git_state(repo: Path) -> tuple[str, str, str]:
    """HEAD, ``git status --porcelain`` and every ref: what "nothing changed" compares."""
    return (
        git(repo, "rev-parse", "HEAD").strip(),
        git(repo, "status", "--porcelain", "--untracked-files=all"),
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``fleet ARGS`` in-process: (exit code, stdout, stderr)."""
    from fleet.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def new_fleet_repo(parent: Path, name: str = "fleet", clusters: dict[str, str] | None = None) -> Path:
    """``fleet init`` a repo under ``parent``, then add ``clusters`` (name -> environment)."""
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    root = init_repo(parent / name).root
    for cname, env in (clusters or {}).items():
        add_cluster(root, ClusterSpec(name=cname, environment=env))
    return root


def commit_file(repo: Path, path: str, text: str, message: str = "edit") -> str:
    """Write and commit one file with plain git (a user's own commit)."""
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", message, "--", path)
    return git(repo, "rev-parse", "HEAD").strip()


def snapshot(*roots: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Every path under ``roots`` (but not under ``skip``): its kind, mode, mtime and content digest (a link:
    its target). Compare two with :func:`changes`: what a command wrote."""
    out: dict[str, tuple[str, ...]] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if Path(dirpath) / d not in skip]
            for name in [*dirnames, *filenames]:
                p = Path(dirpath) / name
                st = p.lstat()
                if p.is_symlink():
                    out[str(p)] = ("link", os.readlink(p))
                elif p.is_dir():
                    out[str(p)] = ("dir", oct(st.st_mode), str(st.st_mtime_ns))
                else:
                    out[str(p)] = ("file", oct(st.st_mode), str(st.st_mtime_ns),
                                   hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def refs(repo: Path) -> str:
    """Every ref of ``repo`` and its HEAD."""
    return subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
                          capture_output=True, text=True, check=True).stdout + (repo / ".git/HEAD").read_text()


def changes(before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]) -> list[str]:
    """What differs between two :func:`snapshot` s: ``+ path`` made, ``- path`` removed, ``~ path`` changed."""
    return sorted({f"{'+' if k not in before else '-' if k not in after else '~'} {k}"
                   for k in before.keys() | after.keys() if before.get(k) != after.get(k)})
