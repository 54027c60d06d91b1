"""Fixtures for every test suite. Keep each small; suite-specific ones live next to their tests."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def fleet_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own FLEET_HOME (caches, state), never the user's."""
    home = tmp_path_factory.mktemp("fleet-home")
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.delenv("FLEET_REPO", raising=False)
    return home


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A git identity through the environment, so commits never depend on the machine's config."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    return GIT_IDENTITY
