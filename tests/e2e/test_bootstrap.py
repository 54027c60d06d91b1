"""e2e: `fleet bootstrap` through the real Pulumi engine on real local clusters.

What a DR runbook needs to hold: bad input is refused before anything exists; a cluster comes back
at its last good revision; a run killed at any step (SIGKILL) resumes without duplicating anything;
a gate that never passes fails the run with a report that names the step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import kill_at, make_fleet_repo, need_local_clusters, push, stack_locks
from helpers import commit_file, git

from drill.runbook import BAD_PATCH  # the drill's bad release: hello on a GPU pool no node has
from fleet.local.clusters import LocalClusters

pytestmark = pytest.mark.e2e

def fleet(repo: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args, "--repo", str(repo)] if args[0] not in ("local",)
        else [sys.executable, "-m", "fleet", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )


def journal(home: Path, cluster: str) -> dict | None:
    p = home / "bootstrap" / cluster / "journal.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def add_cluster(repo: Path, name: str, env: str = "prod") -> None:
    p = fleet(repo, "cluster", "add", name, "--env", env, "--region", "eu")
    assert p.returncode == 0, p.stderr


@pytest.fixture
def destroy_after(fleet_home: Path):
    made: list[tuple[Path, str]] = []
    yield made
    for repo, name in made:
        fleet(repo, "destroy", name, "--yes")
        LocalClusters().delete(name)


def test_unknown_revision_and_no_last_good_are_refused_before_anything_is_created(
    tmp_path: Path, fleet_home: Path, pulumi_env: object
) -> None:
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "nope-1")
    p = fleet(repo, "bootstrap", "nope-1")
    assert p.returncode == 2, p.stderr
    assert 'cluster "nope-1" has no last good revision' in p.stderr
    assert "hint: name one with --to REV" in p.stderr
    assert "Traceback" not in p.stderr
    p = fleet(repo, "bootstrap", "nope-1", "--to", "deadbeef1234")
    assert p.returncode == 2
    assert 'revision "deadbeef1234" not found' in p.stderr
    p = fleet(repo, "bootstrap", "ghost")
    assert p.returncode == 2 and 'cluster "ghost" not found' in p.stderr
    # nothing was created: no journal, no local cluster, no stack
    assert journal(fleet_home, "nope-1") is None
    assert LocalClusters().list() == []
    backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
    assert not list(backend.rglob("nope-1.json*"))


@pytest.mark.xdist_group("bootstrap-kill")
def test_killed_at_any_step_resumes_without_duplicates(
    tmp_path: Path, fleet_home: Path, pulumi_env: object, destroy_after: list
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "kill-1")
    destroy_after.append((repo, "kill-1"))
    push(repo)  # the operator fetches from the remote
    head = git(repo, "rev-parse", "HEAD").strip()
    cmd = [sys.executable, "-m", "fleet", "bootstrap", "kill-1", "--to", head, "--repo", str(repo)]

    clusters = LocalClusters().workdir / "kwok" / "clusters"

    def step(name: str) -> str | None:
        j = journal(fleet_home, "kill-1")
        return next((s["state"] for s in j["steps"] if s["name"] == name), None) if j else None

    def creating_the_cluster() -> bool:
        """Inside the engine's update of the provision step (the journal has provision running, the stack's
        lock is held), the LocalCluster's create begun and not finished, kwokctl at work."""
        text = (tmp_path / "run-1.log").read_text()
        return (step("provision") == "running" and "creating LocalCluster" in text
                and "created LocalCluster" not in text and bool(stack_locks("kill-1"))
                and (clusters / "kill-1").is_dir())

    # 1. inside the engine's update of the provision step, while kwokctl creates the cluster
    kill_at(cmd, fleet_home, "provision inside the engine's update, the cluster being created",
            creating_the_cluster, log=tmp_path / "run-1.log",
            settled=LocalClusters().kubeconfig_path("kill-1").is_file)  # kwokctl, left running, has made it
    assert stack_locks("kill-1"), "the killed update left no lock: the kill was not inside the update"
    # 2. inside the engine's update of the operator step (the run removes the stale lock first)
    kill_at(cmd, fleet_home, "operator inside the engine's update",
            lambda: step("operator") == "running" and bool(stack_locks("kill-1")), log=tmp_path / "run-2.log")
    assert 'removed a stale lock of stack "kill-1"' in (tmp_path / "run-2.log").read_text()
    assert stack_locks("kill-1"), "the killed update left no lock: the kill was not inside the update"
    # 3. between operator and sync/gates: operator done, the run not yet recorded
    kill_at(cmd, fleet_home, "operator done, before the gates passed",
            lambda: step("operator") == "done" and step("gates") in ("pending", "running"),
            log=tmp_path / "run-3.log")

    p = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    report = out["report"]
    assert report["outcome"] == "recovered"
    assert report["resumed"] >= 3
    assert [s["state"] for s in report["steps"]] == ["done"] * 8

    # nothing duplicated: one local cluster, one stack with each resource once, objects applied once
    assert LocalClusters().list() == ["kill-1"]
    backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
    (state_file,) = [p for p in backend.rglob("kill-1.json") if "history" not in p.parts and "backups" not in p.parts]
    urns = [r["urn"] for r in json.loads(state_file.read_text())["checkpoint"]["latest"]["resources"]]
    assert len(urns) == len(set(urns))
    assert sum(":LocalCluster::" in u for u in urns) == 1
    p = fleet(repo, "status", "-o", "json")
    rows = json.loads(p.stdout)
    row = next(r for r in rows["items"] if r["name"] == "kill-1")
    assert row["applied"] == head[:12] and row["applied_state"] == "applied"
    p = fleet(repo, "good", "kill-1", "-o", "json")
    assert json.loads(p.stdout)["revision"] == head

    # a second run after success: already recovered, nothing done
    p = fleet(repo, "bootstrap", "kill-1")
    assert p.returncode == 0
    assert "already recovered" in p.stderr


@pytest.mark.xdist_group("bootstrap-gate")
def test_a_gate_that_never_passes_fails_the_run_with_a_report(
    tmp_path: Path, fleet_home: Path, pulumi_env: object, destroy_after: list
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "gate-1")
    destroy_after.append((repo, "gate-1"))
    bad = commit_file(repo, "environments/prod/hello.yaml", BAD_PATCH, "prod: release hello 2.0 on the GPU pool")
    push(repo)  # the operator fetches from the remote
    report_dir = tmp_path / "report"
    p = fleet(repo, "bootstrap", "gate-1", "--to", bad, "--gate-timeout", "6", "--report-dir", str(report_dir),
              "-o", "json")
    assert p.returncode == 1, p.stderr[-2000:]
    out = json.loads(p.stdout)
    rep = out["report"]
    assert rep["outcome"] == "failed"
    assert rep["failure"]["step"] == "gates"
    assert "hello" in rep["failure"]["cause"]
    failed = [g for g in rep["gates"] if g["status"] in ("failed", "waiting")]
    assert failed and "Deployment/hello-prod/hello" in failed[0]["name"]
    assert (report_dir / "report.md").read_text().count("FAILED") >= 1
    assert (report_dir / "timeline.svg").read_text().startswith("<svg")
    assert "✗" in p.stderr and "Traceback" not in p.stderr
    assert fleet(repo, "good", "gate-1").returncode == 1  # last good not recorded
