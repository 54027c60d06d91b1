"""A rollout's policy on real local clusters through the real operator (Flux's controllers beside each
cluster) and the real Pulumi engine: two clusters, rp-1 (prod, wave 1) and rp-2 (staging, wave 2), as few
as prove each point. The tests run in order on them:

1. bring-up with ``--bake 20s`` and fleet.yaml's ``rollout.waves.2: {approval: true}``: SIGKILL during
   wave 1's bake, the rerun continues the same bake (its end from the journal) and pauses before wave 2
   (exit 75, the line to run); ``fleet rollout status`` shows it; ``approve``, then the rerun brings up wave 2;
2. a new revision pauses again (an approval does not carry over to another revision); approved, the
   rerun is SIGKILLed in wave 2 and the next rerun finishes it without asking again or touching wave 1;
3. a bad prod revision with ``--max-failures 1 --on-failure rollback``: rp-1 fails its gates and is returned
   to its last good through the operator at once, wave 2 still runs (degraded, exit 1);
4. the next bad revision with no budget: stopped at wave 1 (exit 1), rp-2 untouched;
5. a good revision with ``--bake 120s``: rp-1's Deployment is deleted during the bake, the wave fails
   (exit 1), rp-2 untouched.
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

NAMES = ("rp-1", "rp-2")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Fleet Tester", "GIT_AUTHOR_EMAIL": "tester@fleet.test",
                "GIT_COMMITTER_NAME": "Fleet Tester", "GIT_COMMITTER_EMAIL": "tester@fleet.test"}
APPROVAL = "rollout:\n  waves:\n    2: {approval: true}\n"


@dataclass
class World:
    repo: Path
    home: Path
    revs: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings) -> Iterator[World]:
    need_local_clusters()
    home = tmp_path_factory.mktemp("rollout-policy-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEET_HOME", str(home))
    mp.delenv("FLEET_REPO", raising=False)
    for k, v in GIT_IDENTITY.items():
        mp.setenv(k, v)
    repo = make_fleet_repo(tmp_path_factory.mktemp("rollout-policy"))
    add_cluster(repo, ClusterSpec(name="rp-1", environment="prod", region="rp", wave=1, settings={"nodes": 1}))
    add_cluster(repo, ClusterSpec(name="rp-2", environment="staging", region="rp", wave=2, settings={"nodes": 1}))
    try:
        yield World(repo, home)
    finally:
        try:
            kill_leftovers(home)
        finally:
            for name in NAMES:
                LocalClusters()._delete_quietly(name)
            mp.undo()


@pytest.fixture
def fleet_home(world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Overrides the per-test FLEET_HOME of tests/conftest.py with the module's."""
    monkeypatch.setenv("FLEET_HOME", str(world.home))
    monkeypatch.delenv("FLEET_REPO", raising=False)
    return world.home


def _journal(world: World) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((world.home / "rollouts" / "current.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def _commit(world: World, key: str, path: str, text: str, message: str) -> str:
    world.revs[key] = commit_file(world.repo, path, text, message)
    push(world.repo)  # the operator fetches from the remote
    return world.revs[key]


def _rollout(capsys: pytest.CaptureFixture[str], world: World, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli(capsys, "rollout", "-l", "region=rp", "--repo", str(world.repo), "-o", "json", *args)
    print(err, file=sys.stderr)
    return code, json.loads(out) if out.strip() else {}, err


def _cmd(world: World, *args: str) -> list[str]:
    return [sys.executable, "-m", "fleet", "rollout", "-l", "region=rp", "--repo", str(world.repo), *args]


def _applied(world: World) -> dict[str, str | None]:
    return {c.name: c.applied for c in fleet_status(world.repo, selector="region=rp").clusters}


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["report"]["clusters"]}


def _settled_at(world: World, want: dict[str, str]) -> None:
    """Each cluster's operator reports its revision applied and it is healthy (Flux's periodic re-check can
    make one look progressing for a moment: waited for, within a bound)."""
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen.update({c.name: c for c in fleet_status(world.repo, selector="region=rp").clusters})
        return all(seen[n].applied == rev[:12] and seen[n].health == "healthy" for n, rev in want.items())

    wait_until(settled, f"clusters at {want}", timeout=90,
               detail=lambda: "; ".join(f"{n}: {c.applied} {c.health} {c.message}" for n, c in seen.items()))


def test_a_killed_bake_continues_and_a_wave_waits_for_its_approval(world: World,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with (world.repo / "fleet.yaml").open("a") as f:
        f.write(APPROVAL)
    subprocess.run(["git", "-C", str(world.repo), "commit", "-qam", "rollout: wave 2 needs an approval"],
                   check=True)
    push(world.repo)
    A = world.revs["A"] = subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True,
                                         text=True, check=True).stdout.strip()

    def baking() -> bool:
        j = _journal(world)
        return j is not None and j["waves"][0]["state"] == "baking" and j["clusters"]["rp-1"]["state"] == "passed"

    log = world.home / "bake-killed.log"
    kill_at(_cmd(world, "--bake", "20s"), world.home, "wave 1 baking", baking, log=log, timeout=400)
    before = _journal(world)
    assert before is not None and before["waves"][0]["bake_until"], log.read_text()
    until = before["waves"][0]["bake_until"]

    code, data, err = _rollout(capsys, world, "--bake", "20s")
    assert code == 75, err  # the bake went on to its end, then the rollout paused before wave 2
    assert f"continuing the bake of wave 1 until {until}" in err
    assert data["outcome"] == "paused" and data["id"] == before["id"]
    rid = data["id"]
    assert f"to continue, run: fleet rollout approve {rid} --wave 2 --reason TEXT" in err
    assert [w["state"] for w in data["report"]["waves"]] == ["passed", "waiting-approval"]
    assert data["report"]["waves"][0]["bake_until"] == until and data["report"]["waves"][0]["baked_s"] >= 19
    assert _by_name(data)["rp-2"]["state"] == "pending"

    code, out, err = run_cli(capsys, "rollout", "status", "-o", "json")
    assert code == 0, err
    assert [w["state"] for w in json.loads(out)["waves"]] == ["done", "waiting-approval"]
    code, _out, err = run_cli(capsys, "rollout", "approve", rid, "--wave", "2", "--reason", "wave 1 baked",
                              "--repo", str(world.repo))
    assert code == 0, err

    code, data, err = _rollout(capsys, world, "--bake", "20s")
    assert code == 0, err
    assert data["outcome"] == "succeeded" and data["id"] == rid
    by = _by_name(data)
    assert by["rp-1"]["attempts"] == 1 and by["rp-2"]["action"] == "bootstrap" and by["rp-2"]["state"] == "passed"
    w2 = data["report"]["waves"][1]
    assert w2["approved_by"] == "Fleet Tester <tester@fleet.test>" and w2["waiting_s"] > 0
    _settled_at(world, {"rp-1": A, "rp-2": A})


def test_an_approval_does_not_carry_over_and_a_killed_approved_wave_continues(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "A" in world.revs, "needs the clusters brought up by the first test"
    text = (world.repo / "environments" / "staging" / "hello.yaml").read_text()
    A2 = _commit(world, "A2", "environments/staging/hello.yaml", text.replace("${LOG_LEVEL:=info}",
                                                                             "${LOG_LEVEL:=debug}"),
                 "staging: debug logs")
    code, data, err = _rollout(capsys, world)
    assert code == 75, err  # a new revision: wave 2 needs its own approval
    rid = data["id"]
    code, _out, err = run_cli(capsys, "rollout", "approve", rid, "--wave", "2", "--repo", str(world.repo))
    assert code == 0, err

    def wave_2_syncing() -> bool:
        j = _journal(world)
        return (j is not None and j["waves"][1]["state"] == "running"
                and j["clusters"]["rp-2"]["state"] == "running" and j["clusters"]["rp-2"]["step"] in ("operator",
                                                                                                     "sync"))

    kill_at(_cmd(world), world.home, "wave 2 syncing", wave_2_syncing, log=world.home / "approved-killed.log")
    code, data, err = _rollout(capsys, world)
    assert code == 0, err
    assert data["id"] == rid and "paused" not in err and "wave 1: passed in an earlier attempt" in err
    by = _by_name(data)
    assert by["rp-1"]["attempts"] == 1 and by["rp-2"]["attempts"] == 2
    _settled_at(world, {"rp-1": A2, "rp-2": A2})


def test_a_failure_within_budget_is_rolled_back_through_the_operator_and_later_waves_run(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "A2" in world.revs, "needs the previous tests"
    A2 = world.revs["A2"]
    fleet_yaml = (world.repo / "fleet.yaml").read_text().replace(APPROVAL, "")
    (world.repo / "fleet.yaml").write_text(fleet_yaml)  # no approvals from here on
    (world.repo / "environments" / "prod" / "hello.yaml").write_text(BAD_PATCH)
    subprocess.run(["git", "-C", str(world.repo), "commit", "-qam", "prod: hello 2.0 on the GPU pool"], check=True)
    push(world.repo)
    B = world.revs["B"] = subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True,
                                         text=True, check=True).stdout.strip()
    code, data, err = _rollout(capsys, world, "--max-failures", "1", "--on-failure", "rollback",
                               "--gate-timeout", "10s")
    assert code == 1, err
    rep = data["report"]
    assert rep["outcome"] == "degraded" and [w["state"] for w in rep["waves"]] == ["tolerated", "passed"]
    by = _by_name(data)
    assert by["rp-1"]["state"] == "failed" and by["rp-1"]["failed_step"] == "gates"
    rb = by["rp-1"]["rollback"]
    assert rb["state"] == "rolled-back" and rb["target"] == A2
    assert [s["name"] for s in rb["steps"]] == ["operator", "sync", "gates", "record"]  # through the operator
    assert by["rp-2"]["state"] == "passed"
    _settled_at(world, {"rp-1": A2, "rp-2": B})
    good = get_good(world.repo, "rp-1")
    assert good is not None and good.revision == A2 and "rollback" in good.reason


def test_a_failure_beyond_the_budget_stops_the_rollout(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert "B" in world.revs, "needs the previous tests"
    text = (world.repo / "environments" / "staging" / "hello.yaml").read_text()
    _commit(world, "C", "environments/staging/hello.yaml", text.replace("${LOG_LEVEL:=debug}", "${LOG_LEVEL:=info}"),
            "staging: info logs")
    code, data, err = _rollout(capsys, world, "--gate-timeout", "10s")
    assert code == 1, err
    rep = data["report"]
    assert rep["outcome"] == "stopped" and rep["stopped_at"] == 1
    assert [w["state"] for w in rep["waves"]] == ["failed", "pending"]
    assert _by_name(data)["rp-2"]["state"] == "pending"
    assert _applied(world)["rp-2"] == world.revs["B"][:12]  # wave 2 untouched


def test_a_gate_that_fails_during_the_bake_fails_the_wave(world: World) -> None:
    assert "C" in world.revs, "needs the previous tests"
    from fleet.access import kubeconfig_for
    from fleet.adapters.kube import Kube
    from fleet.registry.load import load_registry

    prod = (world.repo / "environments" / "prod" / "hello.yaml")
    prod.write_text(subprocess.run(["git", "-C", str(world.repo), "show", f"{world.revs['A']}:environments/prod/"
                                    "hello.yaml"], capture_output=True, text=True, check=True).stdout)
    D = _commit(world, "D", "environments/prod/hello.yaml", prod.read_text(), "prod: back to hello 1")
    out_file = world.home / "bake-failed.json"
    with open(out_file, "w") as out, open(world.home / "bake-failed.log", "w") as log:
        proc = subprocess.Popen(_cmd(world, "--bake", "120s", "-o", "json"), stdout=out, stderr=log)
    try:
        def baking() -> bool:
            j = _journal(world)
            return j is not None and j["revision"] == D and j["waves"][0]["state"] == "baking"

        wait_until(baking, "wave 1 baking", timeout=300,
                   detail=lambda: (world.home / "bake-failed.log").read_text()[-2000:])
        kube = Kube.connect(kubeconfig_for(load_registry(world.repo).get("rp-1")))
        assert kube.delete("apps/v1", "Deployment", "hello", "hello-prod")  # someone breaks it mid-bake
        assert proc.wait(timeout=100) == 1, (world.home / "bake-failed.log").read_text()  # before the bake's end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = json.loads(out_file.read_text())
    rep = data["report"]
    assert rep["outcome"] == "stopped" and rep["stopped_at"] == 1
    rp1 = _by_name(data)["rp-1"]
    assert rp1["state"] == "failed" and rp1["failed_step"] == "bake" and "hello" in rp1["error"]
    assert rep["waves"][0]["baked_s"] < 120
    assert _applied(world)["rp-2"] == world.revs["B"][:12]  # wave 2 untouched
