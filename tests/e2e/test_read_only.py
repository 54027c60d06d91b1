"""The engine's read-only commands write nothing at all: ``fleet provision CLUSTER --preview`` and ``fleet drift
CLUSTER`` leave FLEET_HOME (the Pulumi file backend under it byte for byte, its work dirs and PULUMI_HOME, the
passphrase file) and the repository (files and refs) exactly as they were, as the dry runs do
(tests/integration/test_dry_runs.py): no stack, no lock, no backup, no passphrase, no log, no stack config.

Checked on a fresh FLEET_HOME (a preview of a new stack: the engine would create and remove the stack), then on
one where the cluster was provisioned, with a change pending (a preview sets the stack's config before it runs).
The default backend and passphrase are used (``$FLEET_HOME/pulumi``, ``secrets/pulumi-passphrase``), so both are
in the snapshot. Each command runs as its own process, as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import fleet, make_fleet_repo, need_local_clusters, push
from helpers import changes, refs, snapshot

from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, set_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("read-only")]

NAME = f"e2e-ro-{os.getpid() % 10000}"


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE",
                        "PULUMI_SECRETS_PROVIDER", "FLEET_REPO")}
    return {**env, "FLEET_HOME": str(home)}


def run(home: Path, repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """``fleet ARGS`` with FLEET_HOME ``home``, from inside the fleet repo, as a user at work runs it."""
    return fleet(env_for(home), *args, ok=ok, cwd=repo)


def writes_nothing(home: Path, repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run ``fleet ARGS``; nothing under FLEET_HOME (but the local clusters' own processes, which run on) or in
    the repo changes. Returns what it printed."""
    skip = (home / "local",)
    before, before_refs = snapshot(home, repo, skip=skip), refs(repo)
    done = run(home, repo, *args, ok=ok)
    wrote = changes(before, snapshot(home, repo, skip=skip))
    assert not wrote, f"fleet {' '.join(args)} wrote " + "; ".join(wrote)
    assert refs(repo) == before_refs, f"fleet {' '.join(args)} moved a ref"
    return done.stdout + done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    need_local_clusters()
    root = make_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name=NAME, environment="dev", vars={"GREETING": "hello"}))
    push(root)
    return root


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    try:
        yield home
    finally:
        LocalClusters(home / "local")._delete_quietly(NAME)  # whatever happened, no cluster is left running


def test_a_preview_of_a_new_cluster_and_drift_write_nothing_on_a_fresh_home(repo: Path, home: Path) -> None:
    out = writes_nothing(home, repo, "provision", NAME, "--preview")
    assert "would create LocalCluster" in out and "create" in out, out
    out = writes_nothing(home, repo, "drift", NAME, ok=(2,))  # nothing provisioned: no stack to read (bad input: 2)
    assert "nothing was provisioned yet" in out, out
    assert not any(home.iterdir()), sorted(str(p) for p in home.rglob("*"))


def test_a_preview_and_drift_of_a_provisioned_cluster_write_nothing(repo: Path, home: Path) -> None:
    run(home, repo, "provision", NAME)
    try:
        assert (home / "pulumi" / ".pulumi").is_dir() and (home / "secrets" / "pulumi-passphrase").is_file()
        set_cluster(repo, NAME, ClusterUpdate(vars={"GREETING": "hola"}))
        push(repo)
        out = writes_nothing(home, repo, "provision", NAME, "--preview")
        assert 'would update Kustomization "flux-sync"' in out, out
        out = writes_nothing(home, repo, "drift", NAME)
        assert "no drift" in out, out
        # the preview set the new config on a copy only: the next up still has the change to make
        up = run(home, repo, "provision", NAME, "-o", "json")
        assert '"update": 1' in up.stdout, up.stdout
    finally:
        run(home, repo, "destroy", NAME, "--yes")
