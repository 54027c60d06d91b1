"""The rollout engine against a fake of its own services interface: wave order, parallelism, failure
accounting, rollback, the journal (resume, set aside, lock) and the report."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import GateFailed, InputError, Unreachable
from fleet.output import Reporter, SilentReporter
from fleet.registry.model import RolloutSettings
from rollout.engine import order_waves, run_rollout
from rollout.journal import load_current, locked_rollouts, rollout_dir, rollouts_dir
from rollout.model import BringUp, Probe, RolloutRequest, RolloutResult
from rollout.policy import Approval
from rollout.progress import PlainView

A, B, C = "a" * 40, "b" * 40, "c" * 40
REVS = {"A": A, "B": B, "C": C, "HEAD": B}


class Interrupted(BaseException):
    """Stands for the process dying mid-rollout (the journal has what was saved until then)."""


class FakeFleet:
    """The world as the rollout sees it. ``fail[(cluster, rev)] = step`` makes that step fail;
    ``hooks[(step, cluster)]`` runs when that step of that cluster is called (tests order threads with it:
    events and barriers, never sleeps); ``delay`` only makes steps take measurable time."""

    def __init__(self, waves: dict[str, int], *, existing: set[str] | None = None,
                 good: dict[str, str] | None = None, provider: dict[str, str] | None = None,
                 delay: float = 0.0) -> None:
        self.waves = waves
        self.existing = set(existing or ())
        self.good = dict(good or {})
        self.provider = provider or {}
        self.fail: dict[tuple[str, str], str] = {}
        self.interrupt: tuple[str, str] | None = None  # (cluster, step): die there
        self.applied: dict[str, str] = {}
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.hooks: dict[tuple[str, str], Callable[[], None]] = {}
        self.events: list[tuple[str, str]] = []  # ("start"/"end", cluster), in the order they happened
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        # the policy side: what the operator reports applied (None: follows ``applied``), bakes, approvals
        self.operator_at: dict[str, str] = {}
        self.bake_fail: dict[str, str] = {}  # cluster -> the gate that fails during its bake
        self.bakes: list[tuple[str, str, datetime]] = []  # (cluster, revision, until)
        self.settings = RolloutSettings()
        self.envs: dict[str, str] = {}
        self.who = "Starter <starter@fleet.test>"
        self.approved: list[Approval] = []

    def _call(self, *what: str) -> None:
        with self._lock:
            self.calls.append(what)
        if hook := self.hooks.get((what[0], what[1])):
            hook()
        if self.interrupt == (what[1], what[0]):
            raise Interrupted(what)

    def _begin(self, cluster: str) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.events.append(("start", cluster))

    def _end(self, cluster: str) -> None:
        with self._lock:
            self.active -= 1
            self.events.append(("end", cluster))

    def _maybe_fail(self, cluster: str, rev: str, step: str) -> None:
        if self.fail.get((cluster, rev)) == step:
            if step == "gates":
                err = GateFailed(f'cluster "{cluster}": 1 gate failed at {rev[:12]}: Deployment/hello: pending')
                err.results = ({"name": "rollout Deployment/hello", "passed": False},)  # type: ignore[attr-defined]
                raise err
            raise InputError(f"{step} of {cluster} refused")

    # -- RolloutServices
    def resolve(self, rev: str) -> tuple[str, str]:
        if rev not in REVS:
            raise InputError(f'revision "{rev}" not found')
        return REVS[rev], f"commit {rev}"

    def select(self, selector: str | None, revision: str) -> list[tuple[str, int]]:
        if selector and selector.startswith("name="):
            return [(n, w) for n, w in self.waves.items() if n == selector[5:]]
        if selector == "none":
            return []
        return list(self.waves.items())

    def last_good(self, cluster: str) -> str | None:
        return self.good.get(cluster)

    def probe(self, cluster: str) -> Probe:
        self._call("probe", cluster)
        return Probe(cluster in self.existing, "reachable" if cluster in self.existing else "no kubeconfig")

    def bring_up(self, cluster: str, revision: str, *, sync: str, gate_timeout: float | None,
                 report_dir: Path, reporter: Reporter) -> BringUp:
        self._begin(cluster)
        try:
            self._call("bring_up", cluster, revision)
            reporter.step("provision")
            time.sleep(self.delay)
            if self.fail.get((cluster, revision)):
                return BringUp(False, "failed", (), "gates", f"gates of {cluster} failed")
            self.existing.add(cluster)
            self.applied[cluster] = revision
            self.good[cluster] = revision
            return BringUp(True, "brought up", (), report=str(report_dir / "report.md"))
        finally:
            self._end(cluster)

    def sync_mode(self, cluster: str, requested: str) -> str:
        return requested if requested != "auto" else ("operator" if self.provider.get(cluster) == "eks" else "direct")

    def gate_timeout(self, cluster: str) -> float:
        return 300.0

    def pin_operator(self, cluster: str, revision: str, reporter: Reporter) -> str:
        self._call("operator", cluster, revision)
        return f"pinned to {revision[:12]}"

    def sync(self, cluster: str, revision: str, mode: str, reporter: Reporter) -> str:
        self._begin(cluster)
        try:
            self._call("sync", cluster, revision)
            time.sleep(self.delay)
            self._maybe_fail(cluster, revision, "sync")
            self.applied[cluster] = revision
            return "applied"
        finally:
            self._end(cluster)

    def gates(self, cluster: str, revision: str, timeout: float, reporter: Reporter) -> tuple[dict[str, Any], ...]:
        self._call("gates", cluster, revision, str(timeout))
        self._maybe_fail(cluster, revision, "gates")
        return ({"name": "rollout Deployment/hello", "passed": True},)

    def record(self, cluster: str, revision: str, reason: str, gates: tuple[dict[str, Any], ...],
               duration_s: float) -> str:
        self._call("record", cluster, revision, reason)
        assert gates and all(g["passed"] for g in gates)
        self.good[cluster] = revision
        return f"last good {revision[:12]}"

    def at_revision(self, cluster: str, revision: str, mode: str) -> str | None:
        at = self.operator_at.get(cluster, self.applied.get(cluster))
        return None if at == revision else f"its operator reports applied {str(at)[:12]}, Ready"

    def bake(self, cluster: str, revision: str, mode: str, until: datetime, reporter: Reporter,
             cancel: threading.Event) -> str | None:
        self._call("bake", cluster, revision)
        with self._lock:
            self.bakes.append((cluster, revision, until))
        return self.bake_fail.get(cluster)

    def rollout_settings(self) -> RolloutSettings:
        return self.settings

    def environments(self, revision: str) -> dict[str, str]:
        return {n: self.envs.get(n, "prod") for n in self.waves}

    def identity(self) -> str:
        return self.who

    def approvals(self, rollout_id: str, revision: str) -> list[Approval]:
        return [a for a in self.approved if a.rollout == rollout_id and a.revision == revision]

    def touched(self, cluster: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[1] == cluster and c[0] != "probe"]


class Heard(SilentReporter):
    """A reporter that also sets ``said`` once a warning starting with ``prefix`` is reported."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.said = threading.Event()

    def warn(self, msg: str) -> None:
        super().warn(msg)
        if msg.startswith(self.prefix):
            self.said.set()


class Lines:
    """A view whose lines tests can read."""

    def __init__(self, out: SilentReporter | None = None) -> None:
        self.out = out or SilentReporter()
        self.plain = PlainView(self.out)

    @property
    def reporter(self) -> Reporter:
        return self.out

    def cluster(self, name: str) -> Reporter:
        return self.plain.cluster(name)

    def attach(self, journal: Any) -> None:
        self.journal = journal


def roll(fleet: FakeFleet, view: Lines | None = None, **kw: Any) -> RolloutResult:
    req = RolloutRequest(repo=Path("."), **kw)
    return run_rollout(req, fleet, view or Lines())


@pytest.fixture
def region() -> FakeFleet:
    """A new region: 4 clusters in 2 waves, none of them exists yet."""
    return FakeFleet({"us-1": 1, "us-2": 1, "us-3": 2, "us-4": 2})


@pytest.fixture
def running() -> FakeFleet:
    """Four existing clusters at A (their last good), in 2 waves."""
    names = {"eu-1": 1, "eu-2": 1, "eu-3": 2, "eu-4": 2}
    return FakeFleet(names, existing=set(names), good=dict.fromkeys(names, A))


def _spans(fleet: FakeFleet) -> dict[str, tuple[int, int]]:
    """Per cluster, the positions of its start and end among all events (the order they happened in)."""
    starts = {c: i for i, (kind, c) in enumerate(fleet.events) if kind == "start"}
    ends = {c: i for i, (kind, c) in enumerate(fleet.events) if kind == "end"}
    return {c: (starts[c], ends[c]) for c in starts}


def meet(*clusters: str, at: str, fleet: FakeFleet) -> None:
    """Make ``clusters`` wait for each other inside step ``at``: they are all in flight at once (a
    rollout that ran them one at a time fails with BrokenBarrierError after the deadline)."""
    barrier = threading.Barrier(len(clusters))

    def wait() -> None:
        barrier.wait(timeout=60)

    for c in clusters:
        fleet.hooks[(at, c)] = wait


def test_order_waves_groups_by_wave_ascending_and_sorts_names() -> None:
    assert order_waves([("b", 2), ("c", 0), ("a", 2), ("z", 0), ("m", 10)]) == {
        0: ["c", "z"], 2: ["a", "b"], 10: ["m"]
    }


def test_new_region_is_brought_up_wave_by_wave_within_max_parallel() -> None:
    fleet = FakeFleet({"us-1": 1, "us-2": 1, "us-3": 1, "us-4": 2, "us-5": 2})
    meet("us-1", "us-2", at="bring_up", fleet=fleet)  # the first two of each wave run side by side
    meet("us-4", "us-5", at="bring_up", fleet=fleet)
    view = Lines()
    res = roll(fleet, view, rev="A", max_parallel=2)
    assert res.outcome == "succeeded"
    assert {c[1] for c in fleet.calls if c[0] == "bring_up"} == {"us-1", "us-2", "us-3", "us-4", "us-5"}
    assert all(c[2] == A for c in fleet.calls if c[0] == "bring_up")
    spans = _spans(fleet)
    wave1_end = max(spans[c][1] for c in ("us-1", "us-2", "us-3"))
    wave2_start = min(spans[c][0] for c in ("us-4", "us-5"))
    assert wave1_end <= wave2_start  # wave 2 starts only when every cluster of wave 1 is done
    assert fleet.peak == 2  # parallel, but never more than --max-parallel
    assert any(ln == "► wave 1: 3 clusters (us-1, us-2, us-3), 2 at a time" for ln in view.out.lines)
    assert "► us-1: bootstrap: no kubeconfig" in view.out.lines


def test_existing_clusters_are_synced_gated_and_recorded_and_operator_mode_pins_first() -> None:
    fleet = FakeFleet({"eu-1": 0, "eks-1": 0}, existing={"eu-1", "eks-1"}, good={"eu-1": A, "eks-1": A},
                      provider={"eks-1": "eks"})
    res = roll(fleet, rev="B", gate_timeout=42.0)
    assert res.outcome == "succeeded"
    assert [c[0] for c in fleet.touched("eu-1")] == ["sync", "gates", "record"]
    assert [c[0] for c in fleet.touched("eks-1")] == ["operator", "sync", "gates", "record"]
    assert ("gates", "eu-1", B, "42.0") in fleet.calls  # --gate-timeout wins over the registry's
    record = next(c for c in fleet.calls if c[:2] == ("record", "eu-1"))
    assert record[2] == B and record[3].startswith(f"fleet rollout {res.id} (wave 0)")
    assert fleet.good == {"eu-1": B, "eks-1": B}
    assert load_current() is None  # a rollout that succeeded leaves no current journal
    assert res.id is not None and (rollout_dir(res.id) / "journal.json").is_file()


def test_a_failing_gate_in_a_wave_stops_the_next_wave(running: FakeFleet) -> None:
    running.fail[("eu-1", B)] = "gates"
    res = roll(running, rev="B", max_parallel=2)
    assert res.outcome == "stopped"
    assert not running.touched("eu-3") and not running.touched("eu-4")  # later waves left untouched
    assert running.applied == {"eu-1": B, "eu-2": B}
    assert running.good == {"eu-1": A, "eu-2": B, "eu-3": A, "eu-4": A}
    rep = res.report
    assert rep is not None and rep.stopped_at == 1 and rep.outcome == "stopped"
    by = {c.name: c for c in rep.clusters}
    assert by["eu-1"].state == "failed" and by["eu-1"].failed_step == "gates"
    assert "Deployment/hello" in (by["eu-1"].error or "")
    assert by["eu-2"].state == "passed" and by["eu-3"].state == "pending"
    assert [w.state for w in rep.waves] == ["failed", "pending"]
    assert rep.waves[0].failed == 1 and rep.waves[1].not_started == 2
    current = load_current()
    assert current is not None and current.state == "stopped"  # kept, so the same command continues


def test_failures_within_max_failures_let_the_rollout_go_on_but_it_is_degraded(running: FakeFleet) -> None:
    running.fail[("eu-1", B)] = "sync"
    res = roll(running, rev="B", max_failures=1)
    assert res.outcome == "degraded"
    assert running.applied == {"eu-2": B, "eu-3": B, "eu-4": B}
    assert res.report is not None and [w.state for w in res.report.waves] == ["tolerated", "passed"]


def test_once_failures_exceed_the_limit_no_further_cluster_of_the_wave_starts() -> None:
    names = {"a": 0, "b": 0, "c": 0, "d": 0}
    fleet = FakeFleet(names, existing=set(names), good=dict.fromkeys(names, A))
    fleet.fail[("a", B)] = "gates"
    fleet.fail[("b", B)] = "gates"
    res = roll(fleet, rev="B", max_parallel=1, max_failures=1)
    assert res.outcome == "stopped"
    assert fleet.touched("c") == [] and fleet.touched("d") == []
    assert res.report is not None
    states = {c.name: c.state for c in res.report.clusters}
    assert states == {"a": "failed", "b": "failed", "c": "not-started", "d": "not-started"}


def test_rollback_returns_the_stopping_wave_to_its_last_good_revision(running: FakeFleet) -> None:
    running.fail[("eu-1", B)] = "gates"
    res = roll(running, rev="B", rollback=True)
    assert res.outcome == "stopped"
    # the failed cluster and the wave's passed one are back at A, gated and recorded there
    assert running.applied == {"eu-1": A, "eu-2": A}
    assert running.good == dict.fromkeys(("eu-1", "eu-2", "eu-3", "eu-4"), A)
    assert [c[0] for c in running.touched("eu-2")] == ["sync", "gates", "record", "sync", "gates", "record"]
    reason = [c for c in running.calls if c[:2] == ("record", "eu-1")][-1][3]
    assert reason == f"fleet rollout {res.id}: rollback"
    assert not running.touched("eu-3")
    assert res.report is not None
    by = {c.name: c for c in res.report.clusters}
    assert by["eu-1"].state == "failed" and by["eu-1"].rollback is not None
    assert by["eu-1"].rollback["state"] == "rolled-back" and by["eu-1"].rollback["target"] == A
    assert by["eu-2"].state == "rolled-back"
    assert "## Rollback" in Path(res.report.files["markdown"]).read_text()


def test_rollback_reports_clusters_with_no_last_good(region: FakeFleet) -> None:
    region.fail[("us-2", A)] = "gates"
    view = Lines()
    res = roll(region, view, rev="A", rollback=True)
    assert res.report is not None
    by = {c.name: c for c in res.report.clusters}
    assert by["us-2"].rollback is not None and by["us-2"].rollback["state"] == "no-last-good"
    assert by["us-1"].rollback is not None and by["us-1"].rollback["state"] == "no-last-good"
    assert any("us-2: rollback: no last good revision" in ln for ln in view.out.lines)
    assert not region.touched("us-3")


def test_an_interrupted_rollout_continues_where_it_stopped(running: FakeFleet) -> None:
    running.interrupt = ("eu-3", "sync")  # wave 1 done, wave 2 half way
    with pytest.raises(Interrupted):
        roll(running, rev="B", max_parallel=1)
    j = load_current()
    assert j is not None and j.state == "running"
    assert [w.state for w in j.waves] == ["passed", "running"]
    assert j.clusters["eu-3"].state == "running" and j.clusters["eu-4"].state == "pending"
    running.interrupt = None
    running.calls.clear()
    view = Lines()
    res = roll(running, view, rev="B", max_parallel=1)
    assert res.outcome == "succeeded" and res.report is not None and res.report.resumed == 1
    assert res.id == j.id
    touched = {c[1] for c in running.calls if c[0] != "probe"}
    assert touched == {"eu-3", "eu-4"}  # wave 1 passed: not run again
    assert any(ln.startswith("✔ wave 1: passed in an earlier attempt") for ln in view.out.lines)
    assert running.good == dict.fromkeys(("eu-1", "eu-2", "eu-3", "eu-4"), B)
    by = {c.name: c for c in res.report.clusters}
    assert by["eu-3"].attempts == 2 and by["eu-1"].attempts == 1
    assert by["eu-3"].previous_good == A  # captured before the first attempt touched it


def test_a_stopped_rollout_run_again_retries_only_what_did_not_pass(running: FakeFleet) -> None:
    running.fail[("eu-1", B)] = "gates"
    assert roll(running, rev="B").outcome == "stopped"
    del running.fail[("eu-1", B)]  # the cause is fixed (a node pool added, say)
    running.calls.clear()
    res = roll(running, rev="B")
    assert res.outcome == "succeeded"
    assert {c[1] for c in running.calls if c[0] == "sync"} == {"eu-1", "eu-3", "eu-4"}  # eu-2 passed already


def test_an_interrupted_bring_up_continues_as_a_bring_up(region: FakeFleet) -> None:
    region.interrupt = ("us-1", "bring_up")
    with pytest.raises(Interrupted):
        roll(region, rev="A", max_parallel=1)
    region.interrupt = None
    region.existing.add("us-1")  # provisioning got far enough for the API server to answer
    region.calls.clear()
    assert roll(region, rev="A", max_parallel=1).outcome == "succeeded"
    assert ("bring_up", "us-1", A) in region.calls  # the DR pipeline resumes its own journal
    assert ("probe", "us-1") not in region.calls


def test_another_rollout_sets_the_unfinished_one_aside(running: FakeFleet) -> None:
    running.fail[("eu-1", B)] = "gates"
    first = roll(running, rev="B")
    view = Lines()
    second = roll(running, view, rev="C")
    assert second.id != first.id and second.outcome == "succeeded"
    assert first.id is not None and (rollout_dir(first.id) / "journal.json").is_file()
    assert any(ln.startswith(f"⚠ set aside the unfinished rollout {first.id}") for ln in view.out.lines)
    # the same selector and revision as the set-aside one now starts afresh
    assert roll(running, rev="B").report is not None


def test_a_second_rollout_at_the_same_time_is_refused(running: FakeFleet) -> None:
    with locked_rollouts(), pytest.raises(InputError, match="another rollout is running"):
        roll(running, rev="B")
    assert running.calls == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_parallel": 0}, "--max-parallel must be at least 1"),
        ({"max_failures": -1}, '--max-failures: "-1" is not a number of clusters or a percent of them'),
        ({"max_failures": "150%"}, "--max-failures: 150% is more than 100% of the clusters"),
        ({"max_failures": "ten"}, '--max-failures: "ten" is not a number of clusters'),
        ({"max_failures_total": "-1"}, '--max-failures-total: "-1" is not a number'),
        ({"max_failures_total": "101%"}, "--max-failures-total: 101% is more than 100%"),
        ({"bake": "soon"}, '--bake: "soon" is not a duration'),
        ({"bake": "8d"}, '--bake: "8d" is not a duration'),
        ({"on_failure": "retry"}, "--on-failure must be hold or rollback"),
        ({"gate_timeout": 0.0}, "--gate-timeout must be more than 0"),
        ({"selector": "none"}, 'no cluster matches selector "none"'),
        ({"rev": "nope"}, 'revision "nope" not found'),
    ],
)
def test_bad_input_is_refused_before_anything_happens(running: FakeFleet, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        roll(running, **kw)
    assert running.calls == [] and load_current() is None
    assert not rollouts_dir().exists() or not any(rollouts_dir().glob("*/journal.json"))


def test_dry_run_probes_and_changes_nothing(region: FakeFleet) -> None:
    region.existing.add("us-2")
    res = roll(region, rev="A", dry_run=True)
    assert res.outcome == "planned" and res.report is None
    actions = {c.name: c.action for w in res.plan.waves for c in w.clusters}
    assert actions == {"us-1": "bootstrap", "us-2": "update", "us-3": "bootstrap", "us-4": "bootstrap"}
    assert [w.wave for w in res.plan.waves] == [1, 2]
    assert {c[0] for c in region.calls} == {"probe"} and load_current() is None


def test_the_report_has_wave_and_cluster_timings(region: FakeFleet) -> None:
    region.delay = 0.05
    res = roll(region, rev="A", max_parallel=2)
    rep = res.report
    assert rep is not None and rep.wall_s is not None
    data = json.loads(Path(rep.files["json"]).read_text())
    assert data["outcome"] == "succeeded" and [w["wave"] for w in data["waves"]] == [1, 2]
    for w in data["waves"]:
        assert w["duration_s"] >= w["slowest_s"] >= 0.05 and w["passed"] == 2
    for c in data["clusters"]:
        assert c["action"] == "bootstrap" and c["duration_s"] >= 0.05 and c["report"].endswith("report.md")
    md = Path(rep.files["markdown"]).read_text()
    assert md.startswith(f"# Rollout `{rep.id}`: ✔ succeeded") and "| 1 | passed | us-1, us-2 |" in md
    assert Path(rep.files["timeline"]).read_text().startswith("<svg")


def test_a_transient_error_is_retried_within_the_step_budget(running: FakeFleet,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.stepkit.steps import Budget

    flaky = {"n": 0}
    real_sync = running.sync

    def sync(cluster: str, revision: str, mode: str, reporter: Reporter) -> str:
        if cluster == "eu-1" and flaky["n"] == 0:
            flaky["n"] += 1
            raise Unreachable("connection reset by peer", transient=True)  # as the kube adapter marks it
        return real_sync(cluster, revision, mode, reporter)

    monkeypatch.setattr(running, "sync", sync)
    budgets = {k: Budget(2, 30) for k in ("operator", "sync", "gates", "record")}
    import fleet.adapters.retry as retry

    monkeypatch.setattr(retry, "wait_exponential", lambda **_: (lambda _rs: 0))
    res = roll(running, rev="B", budgets=budgets)
    assert res.outcome == "succeeded" and res.report is not None
    eu1 = next(c for c in res.report.clusters if c.name == "eu-1")
    assert next(s for s in eu1.steps if s.name == "sync").attempts == 2


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Every thread a rollout starts has ended when the test ends (joined, not waited for by the clock)."""
    before = set(threading.enumerate())
    yield
    for t in set(threading.enumerate()) - before:
        t.join(timeout=60)
        assert not t.is_alive(), f"thread {t.name} outlived the test"


def test_an_interrupt_stops_the_clusters_in_flight_at_their_next_step(running: FakeFleet) -> None:
    # Ctrl-C arrives while eu-1 and eu-2 sync: eu-1's sync is interrupted only once eu-2 is inside its
    # own sync, and eu-2's sync returns only once the rollout has said it was interrupted.
    eu2_syncing = threading.Event()
    heard = Heard("interrupted:")
    missed: list[str] = []

    def eu1_sync() -> None:
        if not eu2_syncing.wait(60):
            missed.append("eu-2 never started its sync")

    def eu2_sync() -> None:
        eu2_syncing.set()
        if not heard.said.wait(60):
            missed.append("the rollout never said it was interrupted")

    running.hooks[("sync", "eu-1")] = eu1_sync
    running.hooks[("sync", "eu-2")] = eu2_sync
    running.interrupt = ("eu-1", "sync")
    with pytest.raises(Interrupted):
        roll(running, Lines(heard), rev="B", max_parallel=2)
    assert not missed
    assert ("sync", "eu-2", B) in running.calls
    assert not [c for c in running.calls if c[0] == "gates"]  # eu-2 stopped before its gates
    assert any(ln.startswith("⚠ interrupted: ") and "eu-2" in ln for ln in heard.lines)
    j = load_current()
    assert j is not None and j.clusters["eu-2"].state == "running" and j.clusters["eu-2"].step == "sync"
    running.interrupt = None
    running.hooks.clear()
    assert roll(running, rev="B").outcome == "succeeded"


def test_the_live_view_draws_a_line_per_cluster(region: FakeFleet) -> None:
    import io

    from rich.console import Console

    from fleet.cli.rollout_view import LiveView

    region.fail[("us-2", A)] = "gates"
    buf = io.StringIO()
    view = LiveView(Console(file=buf, force_terminal=True, width=160, color_system=None))
    with view:
        res = roll(region, view, rev="A")  # type: ignore[arg-type]
    assert res.outcome == "stopped"
    final = io.StringIO()
    Console(file=final, width=160, color_system=None).print(view._render())
    rows = {ln.split()[1]: ln for ln in final.getvalue().splitlines() if ln.strip().split()[:1] in (["1"], ["2"])}
    assert set(rows) == {"us-1", "us-2", "us-3", "us-4"}
    assert "✔ passed" in rows["us-1"] and "bootstrap" in rows["us-1"]
    assert "✗ failed" in rows["us-2"] and "gates of us-2 failed" in rows["us-2"]
    assert "· pending" in rows["us-3"]
    out = buf.getvalue()
    assert "✗ us-2: failed at gates" in out and "► wave 1: 2 clusters (us-1, us-2), 2 at a time" in out
