"""Fixtures for every test suite. Keep each small; suite-specific ones live next to their tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Fleet Tester",
    "GIT_AUTHOR_EMAIL": "tester@fleet.test",
    "GIT_COMMITTER_NAME": "Fleet Tester",
    "GIT_COMMITTER_EMAIL": "tester@fleet.test",
}


def pytest_configure(config: pytest.Config) -> None:
    """A git identity for the whole session, session- and module-scoped fixtures included: a fresh
    machine has none, and commits must never depend on the machine's config."""
    for key, value in GIT_IDENTITY.items():
        os.environ.setdefault(key, value)


def _operator_processes(under: Path) -> list[int]:
    """Pids of processes fleet started beside a local cluster (Flux's controllers, the git endpoint)
    for a work directory under ``under``, or as a home's local S3 server (fleet.local.backend): they carry
    FLEET_OPERATOR_DIR (FLEET_S3_BACKEND_DIR) in their environment."""
    markers = tuple(f"{m}={under.as_posix().rstrip('/')}/".encode()
                    for m in ("FLEET_OPERATOR_DIR", "FLEET_S3_BACKEND_DIR"))
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(markers) for e in env):
            pids.append(int(d.name))
    return pids


def _kill(pids: list[int]) -> None:
    import contextlib
    import signal

    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def fleet_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own FLEET_HOME (caches, state), never the user's. A test that leaves an
    operator process running under it (a controller, a git endpoint) fails, and the process is killed."""
    home = tmp_path_factory.mktemp("fleet-home")
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.delenv("FLEET_REPO", raising=False)
    monkeypatch.delenv("FLEET_LOCAL_DIR", raising=False)
    yield home
    left = _operator_processes(home)
    _kill(left)
    assert not left, f"the test left {len(left)} operator processes running under {home} (killed now)"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Whatever a crashed module fixture left beside its clusters dies with the session."""
    base = getattr(session.config, "_tmp_path_factory", None)
    if base is not None:
        _kill(_operator_processes(base.getbasetemp()))


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A git identity through the environment, so commits never depend on the machine's config."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    return GIT_IDENTITY
