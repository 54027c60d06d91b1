"""A dry run writes nothing at all: ``sync --dry-run``, ``bootstrap --dry-run``, ``rollout --dry-run`` and
``region add --dry-run`` against a real cluster, and ``adopt --dry-run`` of a Flux repository, leave FLEET_HOME and the repository (every file, its bytes,
mode and mtime, and git's refs) exactly as they were: no lock file, no render-cache entry or secret, no
journal, no Pulumi state, no kubeconfig copy. Checked on a fresh FLEET_HOME, then on one that a real sync
has filled, at a revision never rendered before (so each dry run has to render it).

Each command runs as its own process (``python -m fleet``), as a user runs it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from live_support import commit_objects, configmap, live_repo, namespace

from tests.adopt_fixtures import flux_repo

from fleet.adapters.kube import KubeTarget

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]

CLUSTER = "it-dry"


def snapshot(*roots: Path) -> dict[str, tuple[str, ...]]:
    """Every path under ``roots``: its kind, mode, mtime and content digest (a link: its target)."""
    out: dict[str, tuple[str, ...]] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
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
    return subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
                          capture_output=True, text=True, check=True).stdout + (repo / ".git/HEAD").read_text()


def changes(before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]) -> list[str]:
    return sorted({f"{'+' if k not in before else '-' if k not in after else '~'} {k}"
                   for k in before.keys() | after.keys() if before.get(k) != after.get(k)})


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
