"""A new region brought up wave by wave on real local clusters through the real Pulumi engine, then a bad
revision rolled across it. The tests run in order on the same four clusters:

1. `fleet region add us --from eu` (4 clusters, waves 1 and 2), `fleet rollout -l region=us` killed with
   SIGKILL while wave 1 runs, then run again: it continues, and the region comes up wave by wave;
2. a revision whose prod overlay can never be scheduled: wave 1's prod cluster fails its gates, so wave 2
   does not start;
3. the same rollout with --rollback: wave 1 returns to its last good revision.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_support import kill_at, kill_leftovers, make_fleet_repo, need_local_clusters, push, wait_until
from helpers import commit_file, run_cli

from drill.runbook import BAD_PATCH
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.good import get_good
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster
from fleet.status import fleet_status

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rollout")]

MODEL = (("ro-eu-1", "prod", 1), ("ro-eu-2", "staging", 1), ("ro-eu-3", "prod", 2), ("ro-eu-4", "staging", 2))
NEW = ("ro-us-1", "ro-us-2", "ro-us-3", "ro-us-4")
WAVE1, WAVE2 = NEW[:2], NEW[2:]
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Fleet Tester", "GIT_AUTHOR_EMAIL": "tester@fleet.test",
                "GIT_COMMITTER_NAME": "Fleet Tester", "GIT_COMMITTER_EMAIL": "tester@fleet.test"}


@dataclass
class World:
    repo: Path
    home: Path
    revs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings) -> Iterator[World]:
    need_local_clusters()
    home = tmp_path_factory.mktemp("rollout-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEET_HOME", str(home))  # one home for the module: its tests share the clusters and journal
    mp.delenv("FLEET_REPO", raising=False)
    for k, v in GIT_IDENTITY.items():
        mp.setenv(k, v)
    repo = make_fleet_repo(tmp_path_factory.mktemp("rollout"))
    for name, env, wave in MODEL:
        add_cluster(repo, ClusterSpec(name=name, environment=env, region="eu", wave=wave,
                                      labels={"geo": "eu"}, settings={"nodes": 1}))
    try:
        yield World(repo, home)
    finally:
        try:
            kill_leftovers(home)
        finally:
            for name in NEW:
                LocalClusters()._delete_quietly(name)  # whatever happened, no cluster is left running
            mp.undo()


@pytest.fixture
def fleet_home(world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Overrides the per-test FLEET_HOME of tests/conftest.py with the module's."""
    monkeypatch.setenv("FLEET_HOME", str(world.home))
    monkeypatch.delenv("FLEET_REPO", raising=False)
    return world.home


def _journal(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def _provisioned(home: Path, cluster: str) -> bool:
    j = _journal(home / "bootstrap" / cluster / "journal.json")
    return j is not None and any(s["name"] == "provision" and s["state"] == "done" for s in j["steps"])


def _status(world: World) -> dict[str, Any]:
    return {c.name: c for c in fleet_status(world.repo, selector="region=us").clusters}


def _healthy_at(world: World, rev: str) -> dict[str, Any]:
    """``fleet status`` once every new cluster runs ``rev`` and is healthy. Flux re-checks each cluster's
    Kustomization every interval, and for that moment its Ready is Unknown ("Reconciliation in progress"),
    which status shows as progressing: a look can land on a cluster the rollout never touched mid-check
    (seen once in CI). So the state is waited for, within a bound, not assumed at the first look."""
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen.update(_status(world))
        return all(seen[n].applied == rev[:12] and seen[n].health == "healthy" for n in NEW)

    wait_until(settled, f"every new cluster healthy at {rev[:12]}", timeout=60,
               detail=lambda: "; ".join(f"{n}: {seen[n].applied} {seen[n].health} {seen[n].message}"
                                        for n in NEW if n in seen))
    return seen


def _rollout(capsys: pytest.CaptureFixture[str], world: World, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli(capsys, "rollout", "-l", "region=us", "--repo", str(world.repo), "-o", "json", *args)
    print(err, file=sys.stderr)
    return code, json.loads(out) if out.strip() else {}, err


def test_a_new_region_comes_up_wave_by_wave_and_a_killed_rollout_continues(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_cli(capsys, "region", "add", "us", "--from", "eu", "--repo", str(world.repo))
    assert code == 0, err
    push(world.repo)  # the operator fetches from the remote
    world.revs["A"] = subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True,
                                     text=True, check=True).stdout.strip()

    def wave_1_provisioned() -> bool:
        """Wave 1 runs: both its clusters are provisioned (their bootstrap journals say so), and the
        rollout's journal has wave 2 not started."""
        j = _journal(world.home / "rollouts" / "current.json")
        return (all(_provisioned(world.home, c) for c in WAVE1) and j is not None
                and [w["state"] for w in j["waves"]] == ["running", "pending"])

    log = world.home / "first-rollout.log"
    kill_at([sys.executable, "-m", "fleet", "rollout", "-l", "region=us", "--max-parallel", "2",
             "--repo", str(world.repo)], world.home, "wave 1 provisioned, wave 2 not started", wave_1_provisioned,
            log=log, timeout=400)  # a crash, while wave 1 runs
    journal = _journal(world.home / "rollouts" / "current.json")
    assert journal is not None and journal["state"] == "running", log.read_text()
    assert [w["state"] for w in journal["waves"]] == ["running", "pending"]
    assert all(journal["clusters"][c]["state"] == "pending" for c in WAVE2)  # wave 2 had not started

    code, data, err = _rollout(capsys, world, "--max-parallel", "2")
    assert code == 0, err
    rep = data["report"]
    assert rep["outcome"] == "succeeded" and rep["resumed"] == 1 and rep["id"] == journal["id"]
    assert f"resuming rollout {journal['id']}" in err
    w1, w2 = rep["waves"]
    assert (w1["wave"], w1["state"], w2["wave"], w2["state"]) == (1, "passed", 2, "passed")
    assert w1["start_s"] + w1["duration_s"] <= w2["start_s"] + 0.01  # wave 2 began after wave 1 had passed
    assert {c["name"]: (c["action"], c["state"]) for c in rep["clusters"]} == dict.fromkeys(
        NEW, ("bootstrap", "passed"))
    for c in rep["clusters"]:  # every cluster has its own recovery report, and the killed ones resumed
        rec = json.loads((Path(c["report"]).parent / "report.json").read_text())
        assert rec["outcome"] == "recovered" and rec["revision"] == world.revs["A"]
        if c["name"] in WAVE1:
            assert rec["resumed"] >= 1
            assert next(s for s in rec["steps"] if s["name"] == "provision")["state"] == "done"
    for f in rep["files"].values():
        assert Path(f).is_file()
    assert not (world.home / "rollouts" / "current.json").exists()
    _healthy_at(world, world.revs["A"])
    for name in NEW:
        good = get_good(world.repo, name)
        assert good is not None and good.revision == world.revs["A"]


def test_a_failing_gate_in_wave_1_stops_wave_2_from_starting(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert "A" in world.revs, "needs the region brought up by the first test"
    world.revs["B"] = commit_file(world.repo, "environments/prod/hello.yaml", BAD_PATCH,
                                  "prod: release hello 2.0 on the GPU pool")
    push(world.repo)  # the operator fetches from the remote
    code, data, err = _rollout(capsys, world, "--gate-timeout", "10s")
    assert code == 1, err
    rep = data["report"]
    assert rep["outcome"] == "stopped" and rep["stopped_at"] == 1
    by = {c["name"]: c for c in rep["clusters"]}
    assert by["ro-us-1"]["state"] == "failed" and by["ro-us-1"]["failed_step"] == "gates"
    assert "Deployment" in by["ro-us-1"]["error"]
    assert by["ro-us-2"]["state"] == "passed" and by["ro-us-2"]["action"] == "update"
    assert by["ro-us-3"]["state"] == by["ro-us-4"]["state"] == "pending"
    assert [w["state"] for w in rep["waves"]] == ["failed", "pending"]
    A, B = world.revs["A"], world.revs["B"]
    status = _status(world)
    assert status["ro-us-1"].applied == B[:12] and status["ro-us-1"].health != "healthy"
    for name in WAVE2:  # untouched: still at A, last good A
        assert status[name].applied == A[:12]
        good = get_good(world.repo, name)
        assert good is not None and good.revision == A
    good1, good2 = get_good(world.repo, "ro-us-1"), get_good(world.repo, "ro-us-2")
    assert good1 is not None and good1.revision == A  # its gates failed: last good stays
    assert good2 is not None and good2.revision == B
    assert (world.home / "rollouts" / "current.json").is_file()  # kept: the same command continues


def test_rollback_returns_wave_1_to_its_last_good_revision(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert "B" in world.revs, "needs the failed rollout of the previous test"
    A = world.revs["A"]
    code, data, err = _rollout(capsys, world, "--gate-timeout", "10s", "--rollback")
    assert code == 1, err  # the rollout itself still failed
    rep = data["report"]
    assert rep["outcome"] == "stopped" and rep["resumed"] == 1
    by = {c["name"]: c for c in rep["clusters"]}
    assert by["ro-us-1"]["state"] == "failed"
    assert by["ro-us-1"]["rollback"]["state"] == "rolled-back" and by["ro-us-1"]["rollback"]["target"] == A
    assert by["ro-us-2"]["state"] == "rolled-back" and by["ro-us-2"]["rollback"]["target"] == A
    assert by["ro-us-3"]["rollback"] is None and by["ro-us-4"]["rollback"] is None
    _healthy_at(world, A)
    for name in NEW:
        good = get_good(world.repo, name)
        assert good is not None and good.revision == A
    assert "rollback" in get_good(world.repo, "ro-us-2").reason  # type: ignore[union-attr]
