"""A dry run writes nothing at all: ``sync --dry-run``, ``bootstrap --dry-run``, ``rollout --dry-run`` and
``region add --dry-run`` against a real cluster, and ``adopt --dry-run`` of a Flux repository, leave
FLEET_HOME and the repository (every file, its bytes, mode and mtime, and git's refs) exactly as they were: no
lock file, no render-cache entry or secret, no journal, no Pulumi state, no kubeconfig copy. Checked on a
fresh FLEET_HOME, then on one that a real sync has filled, at a revision never rendered before (so each dry
run has to render it).

Each command runs as its own process (``python -m fleet``), as a user runs it. The engine's read-only commands
(``provision --preview``, ``drift``) are checked the same way in tests/e2e/test_read_only.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import changes, refs, snapshot
from live_support import commit_objects, configmap, live_repo, namespace

from fleet.adapters.kube import KubeTarget
from tests.adopt_fixtures import flux_repo

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]

CLUSTER = "it-dry"


def fleet(repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "fleet", *args, "--repo", str(repo)], capture_output=True,
                          text=True, timeout=600, env=os.environ.copy())
    assert done.returncode in ok, f"fleet {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


DRY_RUNS = (
    ("sync", CLUSTER, "--dry-run"),
    ("bootstrap", CLUSTER, "--to", "HEAD", "--dry-run"),
    ("rollout", "--dry-run"),
    ("region", "add", "us", "--from", "eu", "--dry-run"),
)


def test_dry_runs_write_nothing_under_fleet_home_or_in_the_repo(
    tmp_path: Path, fleet_home: Path, live_target: KubeTarget
) -> None:
    ns = "dry-runs"
    repo = live_repo(tmp_path, CLUSTER, live_target.kubeconfig, [namespace(ns), configmap(ns, "a", K="1")],  # type: ignore[arg-type]
                     extra={"region": "eu"})

    def each_dry_run_writes_nothing(when: str) -> None:
        for args in DRY_RUNS:
            before, before_refs = snapshot(fleet_home, repo), refs(repo)
            fleet(repo, *args)
            wrote = changes(before, snapshot(fleet_home, repo))
            assert not wrote, f"{when}: fleet {' '.join(args)} wrote " + "; ".join(wrote)
            assert refs(repo) == before_refs, f"{when}: fleet {' '.join(args)} moved a ref"

    each_dry_run_writes_nothing("a fresh FLEET_HOME")
    fleet(repo, "sync", CLUSTER)  # the home fills: render cache, its secret, locks
    assert any(fleet_home.rglob("*")), "a real sync wrote nothing under FLEET_HOME: the check would prove nothing"
    commit_objects(repo, [namespace(ns), configmap(ns, "a", K="2")])
    each_dry_run_writes_nothing("a used FLEET_HOME, a revision never rendered")


def test_adopt_dry_run_writes_nothing(tmp_path: Path, fleet_home: Path) -> None:
    root = flux_repo(tmp_path)
    before, before_refs = snapshot(fleet_home, root), refs(root)
    done = subprocess.run([sys.executable, "-m", "fleet", "adopt", str(root), "--dry-run"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    wrote = changes(before, snapshot(fleet_home, root))
    assert not wrote, "fleet adopt --dry-run wrote " + "; ".join(wrote)
    assert refs(root) == before_refs
