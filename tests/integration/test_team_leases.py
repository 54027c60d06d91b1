"""Team runs' leases on a real S3 server (seaweedfs, started by ``fleet local backend``'s own code on free ports):
the server honours S3's conditional writes, and on them a lease is taken, renewed by its heartbeat, refused to a
second run while live, taken over once expired by the server's clock, and released; a take-over clears the dead
holder's Pulumi lock and nothing else; ``fleet runs`` lists what the bucket holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import need_tool

from bootstrap.pipeline import STEPS, BootstrapRequest, Plan, Resolved, run_bootstrap
from fleet.adapters.leases import Lease, LeaseLost, LeaseStore, RunBusy, Taken
from fleet.adapters.pulumi_auto import resolve_settings
from fleet.adapters.s3 import Bucket, parse_url
from fleet.local.backend import LocalBackend
from fleet.output import StderrReporter
from fleet.stepkit.steps import Budget
from fleet.stepkit.team import TeamRuns, team_runs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    need_tool("weed")
    backend = LocalBackend(tmp_path_factory.mktemp("s3-leases"))
    env = backend.start()
    try:
        yield env
    finally:
        assert backend.stop()
        assert not backend.running()


def bucket_of(env: dict[str, str]) -> Bucket:
    loc = parse_url(env["PULUMI_BACKEND_URL"])
    assert loc is not None
    return Bucket(loc, credentials=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))


def until(condition: object, what: str, timeout: float = 30) -> None:
    """Poll an explicit state until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Lines(StderrReporter):
    """What a run says, kept (its warnings: a take-over, a cleared lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def warn(self, msg: str) -> None:
        self.lines.append(msg)


def test_the_server_honours_both_conditions(server: dict[str, str]) -> None:
    """The mechanism the leases stand on: a second ``If-None-Match: *`` PUT gets 412, a stale ``If-Match`` gets
    412 (Bucket.put gives None), the right ``If-Match`` is accepted."""
    b = bucket_of(server)
    first = b.put("probe/x.json", b"1", if_none_match=True)
    assert first
    assert b.put("probe/x.json", b"2", if_none_match=True) is None
    second = b.put("probe/x.json", b"3", if_match=first)
    assert second and second != first
    assert b.put("probe/x.json", b"4", if_match=first) is None
    stored = b.read("probe/x.json")
    assert stored is not None and stored.body == b"3" and stored.etag == second and 0 <= stored.age_s < 60


def test_take_refuse_renew_release(server: dict[str, str]) -> None:
    store = LeaseStore(bucket_of(server))
    mine = store.take("take-1", "bootstrap", "fleet bootstrap take-1")
    assert mine.previous is None
    with pytest.raises(RunBusy) as busy:  # this very process holds it and is alive: live
        store.take("take-1", "bootstrap", "fleet bootstrap take-1")
    for part in (mine.lease.holder, mine.lease.host, "fleet bootstrap take-1", f"since {mine.lease.started}"):
        assert part in busy.value.message, busy.value.message
    etag = mine.etag
    assert store.renew(mine, run_id="run-1") and mine.etag != etag
    seen = store.seen("take-1")
    assert seen is not None and seen.live and seen.lease.run_id == "run-1"
    stale = Taken(mine.lease, etag)  # a holder that missed someone else's write has lost the lease
    assert not store.renew(stale)
    store.release(mine)
    seen = store.seen("take-1")
    assert seen is not None and seen.lease.released and not seen.live
    again = store.take("take-1", "bootstrap", "fleet bootstrap take-1")
    assert again.previous is None  # a released lease is free: no take-over to announce
    store.release(again)


def test_an_expired_lease_is_taken_over_by_the_servers_clock_even_if_its_process_lives(server: dict[str, str]) -> None:
    """The holder (this process, alive) stopped its heartbeat: once the lease's object is older than its TTL by
    the server's clock, another run takes it over and learns whose run it was."""
    short = LeaseStore(bucket_of(server), ttl_s=1)
    first = short.take("expire-1", "bootstrap", "fleet bootstrap expire-1")
    assert short.renew(first, run_id="run-dead")
    with pytest.raises(RunBusy):
        LeaseStore(bucket_of(server)).take("expire-1", "bootstrap", "fleet bootstrap expire-1")
    until(lambda: not short.seen("expire-1").live, "the lease to expire by the server's clock")  # type: ignore[union-attr]
    second = LeaseStore(bucket_of(server)).take("expire-1", "bootstrap", "fleet bootstrap expire-1")
    assert second.previous is not None and second.previous.lease.run_id == "run-dead"
    assert second.previous.age_s > 1
    assert not short.renew(first)  # the old holder, back, has lost it
    LeaseStore(bucket_of(server)).release(second)


def test_two_runs_at_once_one_wins(server: dict[str, str]) -> None:
    results: list[object] = []
    gate = threading.Barrier(2)

    def one() -> None:
        store = LeaseStore(bucket_of(server))
        gate.wait()
        try:
            results.append(store.take("race-1", "bootstrap", "fleet bootstrap race-1"))
        except RunBusy as e:
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["RunBusy", "Taken"], results


def test_the_heartbeat_keeps_a_lease_live_past_its_ttl_and_the_journal_goes_to_the_bucket(
    server: dict[str, str],
) -> None:
    store = LeaseStore(bucket_of(server), ttl_s=2, heartbeat_s=0.2)
    team = TeamRuns(store)
    rep = Lines()
    with team.hold("beat-1", "bootstrap", "fleet bootstrap beat-1", rep) as run:
        run.save({"cluster": "beat-1", "run_id": "run-beat", "state": "running", "steps": []})
        first = store.seen("beat-1")
        assert first is not None and first.lease.run_id == "run-beat"
        t0 = time.monotonic()
        until(lambda: time.monotonic() - t0 > 3 and store.seen("beat-1").etag != first.etag,  # type: ignore[union-attr]
              "the heartbeat to rewrite the lease after its TTL passed")
        seen = store.seen("beat-1")
        assert seen is not None and seen.live and seen.age_s <= 2
        with pytest.raises(RunBusy):
            LeaseStore(bucket_of(server)).take("beat-1", "bootstrap", "fleet bootstrap beat-1")
        with team.hold("beat-1", "rollout", "fleet rollout x (beat-1)", rep) as inner:  # re-entrant in a process
            assert inner is run
        assert store.load_journal("beat-1") == {"cluster": "beat-1", "run_id": "run-beat", "state": "running",
                                                "steps": []}
        run.archive("run-beat", {"cluster": "beat-1", "run_id": "run-beat", "state": "recovered", "steps": []})
    seen = store.seen("beat-1")
    assert seen is not None and seen.lease.released and rep.lines == []
    done = list(store.journals(finished=True))
    assert [d["run_id"] for d in done if d["cluster"] == "beat-1"] == ["run-beat"]
    assert done[0]["holder"] == seen.lease.holder


def _pulumi_lock(bucket: Bucket, stack: str, name: str, host: str) -> str:
    key = f".pulumi/locks/organization/fleet/{stack}/{name}.json"
    body = json.dumps({"pid": 2**22 + 7, "username": "u", "hostname": host, "timestamp": "2026-12-07T06:00:00Z"})
    bucket._call("put_object", Bucket=bucket.loc.bucket, Key=key, Body=body.encode())
    return key


def test_a_take_over_clears_the_dead_holders_pulumi_lock_never_a_live_ones(
    server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # what the engine's S3 client reads
        monkeypatch.setenv(k, server[k])
    bucket = bucket_of(server)
    engine = resolve_settings(server, tmp_path / "home")
    team = team_runs(engine)
    assert team is not None and team_runs(resolve_settings({}, tmp_path / "home")) is None  # file backend: local
    # a teammate's run on another host holds the lease, live: its lock is never touched, the run refused
    dead_store = LeaseStore(bucket_of(server), ttl_s=1)
    theirs = dead_store.take("locked-1", "bootstrap", "fleet bootstrap locked-1")
    foreign = Lease(**{**vars(theirs.lease), "host": "bobs-laptop", "holder": "bob@bobs-laptop", "run_id": "run-bob"})
    theirs.etag = bucket.put("fleet/runs/locked-1/lease.json", foreign.to_bytes(), if_match=theirs.etag) or ""
    their_lock = _pulumi_lock(bucket, "locked-1", "theirs", "bobs-laptop")
    other_lock = _pulumi_lock(bucket, "locked-1", "other", "carols-desktop")
    rep = Lines()
    with pytest.raises(RunBusy, match="bob@bobs-laptop on bobs-laptop"), \
            team.hold("locked-1", "bootstrap", "fleet bootstrap locked-1", rep):
        pass
    assert {their_lock, other_lock} <= set(bucket.keys(".pulumi/locks/"))
    # its heartbeat stops (the laptop is lost): once expired, the take-over clears that host's lock only
    until(lambda: not dead_store.seen("locked-1").live, "bob's lease to expire")  # type: ignore[union-attr]
    with team.hold("locked-1", "bootstrap", "fleet bootstrap locked-1", rep):
        assert rep.lines[0].startswith("taking over run run-bob of bob@bobs-laptop, last heartbeat ")
        assert any("cleared the Pulumi lock" in line and "theirs.json" in line for line in rep.lines), rep.lines
        locks = set(bucket.keys(".pulumi/locks/"))
        assert their_lock not in locks and other_lock in locks


def test_fleet_runs_lists_live_and_expired_runs_from_the_bucket(server: dict[str, str], tmp_path: Path) -> None:
    live = LeaseStore(bucket_of(server)).take("runs-live", "bootstrap", "fleet bootstrap runs-live")
    gone_store = LeaseStore(bucket_of(server), ttl_s=1)
    gone = gone_store.take("runs-gone", "rollout", "fleet rollout r1 (runs-gone)")
    assert gone_store.renew(gone, run_id="run-gone")
    until(lambda: not gone_store.seen("runs-gone").live, "a lease to expire")  # type: ignore[union-attr]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    done = subprocess.run([sys.executable, "-m", "fleet", "runs", "-o", "json"], capture_output=True, text=True,
                          env={**env, **server, "FLEET_HOME": str(tmp_path / "home")}, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = {r["cluster"]: r for r in data["in_progress"]}
    assert rows["runs-live"]["lease"] == "live" and rows["runs-live"]["holder"] == live.lease.holder
    assert rows["runs-gone"]["lease"] == "expired" and rows["runs-gone"]["run_id"] == "run-gone"
    assert rows["runs-gone"]["kind"] == "rollout" and rows["runs-gone"]["heartbeat_age_s"] > 1
    table = subprocess.run([sys.executable, "-m", "fleet", "runs"], capture_output=True, text=True,
                           env={**env, **server, "FLEET_HOME": str(tmp_path / "home")}, timeout=120)
    assert table.returncode == 0 and "runs-gone" in table.stdout and "expired" in table.stdout, table.stdout
    wrong = subprocess.run([sys.executable, "-m", "fleet", "runs"], capture_output=True, text=True, timeout=120,
                           env={**env, **server, "AWS_SECRET_ACCESS_KEY": "not-the-secret",
                                "FLEET_HOME": str(tmp_path / "home")})
    lines = [ln for ln in wrong.stderr.splitlines() if ln.startswith("✗")]
    assert wrong.returncode == 2 and len(lines) == 1 and "refused the credentials" in lines[0], wrong.stderr
    assert "Traceback" not in wrong.stderr and server["AWS_SECRET_ACCESS_KEY"] not in wrong.stderr + wrong.stdout
    LeaseStore(bucket_of(server)).release(live)


def test_the_lease_lost_to_another_run_stops_the_journal(server: dict[str, str]) -> None:
    store = LeaseStore(bucket_of(server), heartbeat_s=3600)  # no beat of its own during the test
    with TeamRuns(store).hold("lost-1", "bootstrap", "fleet bootstrap lost-1", Lines()) as run:
        run.save({"cluster": "lost-1", "run_id": "run-mine", "steps": []})
        seen = store.seen("lost-1")
        assert seen is not None
        thief = Lease(**{**vars(seen.lease), "holder": "eve@elsewhere", "host": "elsewhere", "run_id": "run-eve"})
        assert store.bucket.put("fleet/runs/lost-1/lease.json", thief.to_bytes(), if_match=seen.etag)
        assert not run.heartbeat.beat()
        with pytest.raises(LeaseLost):
            run.save({"cluster": "lost-1", "run_id": "run-mine", "steps": [], "state": "running"})
    after = store.seen("lost-1")
    assert after is not None and after.lease.holder == "eve@elsewhere" and not after.lease.released  # not ours


class Crash(BaseException):
    """Stands for the holder's death: nothing in the pipeline catches it."""


class FakeServices:
    """The DR pipeline's services as a fake of our own interface (no cluster): the team's side is real."""

    def __init__(self, crash_in: str | None = None) -> None:
        self.crash_in = crash_in
        self.calls: list[str] = []

    def _call(self, step: str) -> str:
        self.calls.append(step)
        if step == self.crash_in:
            raise Crash()
        return f"{step} done"

    def resolve(self, cluster: str, to: str | None) -> Resolved:
        self.calls.append(f"resolve {to}")
        return Resolved(REV, "--to" if to else "last good", "a commit")

    def plan(self, cluster: str, resolved: Resolved, sync_mode: Any, gate_timeout: float | None) -> Plan:
        return Plan(cluster, "local", "eu", "prod", resolved.revision, resolved.source, resolved.subject,
                    "direct", cluster, ("a cluster",), 4, (), 30.0, {})

    def already_recovered(self, cluster: str, revision: str) -> bool:
        return True

    def provision(self, cluster: str, revision: str, reporter: Any) -> str:
        return self._call("provision")

    def install_operator(self, cluster: str, revision: str, reporter: Any) -> str:
        return self._call("operator")

    def sync(self, cluster: str, revision: str, mode: str, reporter: Any) -> str:
        return self._call("sync")

    def gates(self, cluster: str, revision: str, timeout: float, reporter: Any) -> tuple[dict[str, Any], ...]:
        self._call("gates")
        return ()

    def record(self, cluster: str, revision: str, run_id: str, gates: Any, duration_s: float) -> str:
        return self._call("record")


REV = "a" * 40


def test_a_run_crashed_in_one_home_is_taken_over_from_the_bucket_in_another(
    server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DR pipeline on a team's bucket: the journal of a run that died in one fleet home is resumed in another
    (same run id, done steps skipped) once the dead run's lease expired; a dry run reads it and writes nothing."""
    store = LeaseStore(bucket_of(server), ttl_s=1)
    team = TeamRuns(store)
    budgets = {s: Budget(1, 30) for s in STEPS}
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "alice"))
    first = FakeServices(crash_in="sync")
    with pytest.raises(Crash):
        run_bootstrap(BootstrapRequest(repo=tmp_path, cluster="pipe-1", to=REV, budgets=budgets, team=team), first,
                      Lines())
    journal = store.load_journal("pipe-1")
    assert journal is not None and {s["name"]: s["state"] for s in journal["steps"]}["sync"] == "running"
    # the crash released nothing a SIGKILL would have: the lease is as a dead holder on another host leaves it
    seen = store.seen("pipe-1")
    assert seen is not None
    dead = Lease(**{**vars(seen.lease), "released": False, "host": "alices-laptop", "holder": "alice@alices-laptop",
                    "run_id": journal["run_id"]})
    assert store.bucket.put("fleet/runs/pipe-1/lease.json", dead.to_bytes(), if_match=seen.etag)

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "bob"))
    before = store.bucket.digests()
    dry = FakeServices()
    plan = run_bootstrap(BootstrapRequest(repo=tmp_path, cluster="pipe-1", to=None, dry_run=True, budgets=budgets,
                                          team=team), dry, Lines())
    assert plan.outcome == "planned" and dry.calls == [f"resolve {REV}"]  # the bucket's run's revision, read only
    assert store.bucket.digests() == before and not (tmp_path / "bob").exists()
    until(lambda: not store.seen("pipe-1").live, "the dead run's lease to expire")  # type: ignore[union-attr]
    second, said = FakeServices(), Lines()
    res = run_bootstrap(BootstrapRequest(repo=tmp_path, cluster="pipe-1", to=None, budgets=budgets, team=team),
                        second, said)
    assert res.outcome == "recovered" and res.report is not None and res.report.run_id == journal["run_id"]
    assert second.calls == [f"resolve {REV}", "sync", "gates", "record"] and res.report.resumed == 1
    assert said.lines[0].startswith(f"taking over run {journal['run_id']} of alice@alices-laptop, last heartbeat")
    final = store.load_journal("pipe-1")
    assert final is not None and final["state"] == "recovered" and final["run_id"] == journal["run_id"]
    after = store.seen("pipe-1")
    assert after is not None and after.lease.released
    assert any(d["run_id"] == journal["run_id"] for d in store.journals(finished=True))


def test_a_rollout_holds_each_clusters_lease_and_a_live_one_of_another_run_stops_that_cluster(
    server: dict[str, str], fleet_home: Path
) -> None:
    """Each cluster of a rollout is worked on under its lease in the team's bucket (kind ``rollout``); a cluster
    whose lease another live run holds fails at once, naming that run, and is never touched."""
    from tests.unit.test_rollout import A, FakeFleet, roll

    names = {"ro-1": 0, "ro-2": 0}
    fleet = FakeFleet(names, existing=set(names), good=dict.fromkeys(names, A))
    store = LeaseStore(bucket_of(server))
    fleet.team = TeamRuns(store)  # type: ignore[attr-defined]
    theirs = LeaseStore(bucket_of(server)).take("ro-2", "bootstrap", "fleet bootstrap ro-2")
    bob = Lease(**{**vars(theirs.lease), "holder": "bob@elsewhere", "host": "elsewhere", "run_id": "run-bob"})
    assert store.bucket.put("fleet/runs/ro-2/lease.json", bob.to_bytes(), if_match=theirs.etag)
    during: list[Any] = []
    fleet.hooks[("sync", "ro-1")] = lambda: during.append(store.seen("ro-1"))
    res = roll(fleet, rev="B", max_failures="1")
    seen = during[0]
    assert seen is not None and seen.live and seen.lease.kind == "rollout"
    assert seen.lease.command == f"fleet rollout {res.id} (ro-1)"
    assert not fleet.touched("ro-2") and fleet.touched("ro-1")
    assert res.report is not None
    by_name = {c.name: c for c in res.report.clusters}
    assert (by_name["ro-1"].state, by_name["ro-2"].state) == ("passed", "failed")
    error = by_name["ro-2"].error or ""
    assert 'cluster "ro-2" is being changed by bob@elsewhere on elsewhere (fleet bootstrap ro-2, run run-bob)' in error
    after = store.seen("ro-1")
    assert after is not None and after.lease.released
    still = store.seen("ro-2")
    assert still is not None and still.lease.holder == "bob@elsewhere" and not still.lease.released


def test_a_rollout_crashed_in_one_home_is_resumed_from_the_bucket_in_another(
    server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team's rollout: its journal is in the bucket beside its lease; a teammate refused while it lives takes
    it over once its holder is gone and resumes it (same rollout id, the cluster done before the crash skipped);
    when it ends, the bucket keeps it under done/ and has no rollout left to resume."""
    from fleet.adapters.leases import ROLLOUTS
    from fleet.output import SilentReporter
    from fleet.runs import _team
    from tests.unit.test_rollout import A, FakeFleet, Interrupted, roll
    from tests.unit.test_rollout import Lines as View

    class Said(SilentReporter):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def warn(self, msg: str) -> None:
            self.lines.append(msg)

    store = LeaseStore(bucket_of(server), ttl_s=1)
    names = {"rr-1": 1, "rr-2": 2}
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "alice"))
    alice = FakeFleet(names, existing=set(names), good=dict.fromkeys(names, A))
    alice.team = TeamRuns(store)  # type: ignore[attr-defined]
    alice.interrupt = ("rr-2", "sync")
    with pytest.raises(Interrupted):  # at C: another test's degraded rollout of B stays the team's to resume
        roll(alice, rev="C")
    shared = store.load_journal(ROLLOUTS)
    assert shared is not None and shared["clusters"]["rr-1"]["state"] == "passed"
    rollout_id = shared["id"]
    # what a SIGKILL leaves: the lease unreleased, held by a process of another host
    seen = store.seen(ROLLOUTS)
    assert seen is not None and seen.lease.run_id == rollout_id and seen.lease.kind == "rollout"
    dead = Lease(**{**vars(seen.lease), "released": False, "host": "alices-laptop", "holder": "alice@alices-laptop"})
    assert store.bucket.put("fleet/runs/_rollouts/lease.json", dead.to_bytes(), if_match=seen.etag)
    listed = _team(store, "s3://test", 10)
    assert [(r.kind, r.run_id, r.holder) for r in listed.in_progress if r.cluster == str(ROLLOUTS)] == [
        ("rollout", rollout_id, "alice@alices-laptop")]

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "bob"))
    bob = FakeFleet(names, existing=set(names), good={"rr-1": alice.good["rr-1"], "rr-2": A})
    bob.team = TeamRuns(LeaseStore(bucket_of(server), ttl_s=1))  # type: ignore[attr-defined]
    until(lambda: not store.seen(ROLLOUTS).live, "the dead rollout's lease to expire")  # type: ignore[union-attr]
    said = Said()
    res = roll(bob, View(said), rev="C")
    assert res.id == rollout_id and res.report is not None
    assert said.lines[0].startswith(f"taking over run {rollout_id} of alice@alices-laptop, last heartbeat")
    assert bob.touched("rr-1") == [] and [c[0] for c in bob.touched("rr-2")] == ["sync", "gates", "record"]
    assert store.load_journal(ROLLOUTS) is None  # nothing left to resume
    assert any(d.get("id") == rollout_id and d.get("state") == "succeeded" for d in store.journals(finished=True))
    ended = [r for r in _team(store, "s3://test", 50).finished if r.run_id == rollout_id]
    assert [(r.cluster, r.kind, r.state, r.command) for r in ended] == [
        ("(rollout)", "rollout", "succeeded", "fleet rollout")]
    after = store.seen(ROLLOUTS)
    assert after is not None and after.lease.released
