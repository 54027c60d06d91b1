"""e2e fixtures: the real Pulumi engine (file backend in tmp, private PULUMI_HOME) and local clusters.

Tests sharing a cluster or a stack carry ``pytest.mark.xdist_group`` so one worker runs them in order,
and use one FLEET_HOME (``shared_fleet_home``) instead of one per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import make_fleet_repo, need_engine

from fleet.adapters.pulumi_auto import EngineSettings, default_settings


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-fleet-home")


@pytest.fixture
def shared_fleet_home(e2e_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's FLEET_HOME, for a module whose tests share a cluster: such a module overrides the
    per-test ``fleet_home`` of tests/conftest.py with it (a stack records where its local cluster lives)."""
    monkeypatch.setenv("FLEET_HOME", str(e2e_home))
    monkeypatch.delenv("FLEET_REPO", raising=False)
    return e2e_home


@pytest.fixture(scope="session")
def pulumi_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSettings]:
    """A file backend in tmp and a private PULUMI_HOME, for the whole session, also in the environment
    (so `fleet provision` run through the CLI uses them). Lock retries are short: tests wait less."""
    need_engine()
    root = tmp_path_factory.mktemp("pulumi")
    mp = pytest.MonkeyPatch()
    mp.setenv("PULUMI_BACKEND_URL", f"file://{root / 'backend'}")
    mp.setenv("PULUMI_CONFIG_PASSPHRASE", "e2e-passphrase")
    mp.delenv("PULUMI_ACCESS_TOKEN", raising=False)
    base = default_settings()
    settings = EngineSettings(
        backend_url=base.backend_url,
        pulumi_home=root / "home",
        work_root=root / "work",
        passphrase="e2e-passphrase",
        lock_attempts=1,
        transient_attempts=2,
        retry_wait_s=0.5,
    )
    try:
        yield settings
    finally:
        mp.undo()


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    """A fresh fleet repo (``fleet init``) with a bare remote beside it."""
    return make_fleet_repo(tmp_path)
