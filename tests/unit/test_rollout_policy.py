"""A rollout's policy against the fake of its services (tests/unit/test_rollout.py): failure budgets (a number
or a percent, per wave and in total, unreachable clusters included), ``--on-failure rollback``, bake time
(a clock and the fake's bake given, never slept), approvals (pause, approve, continue; not across
revisions), "done means at the new revision" (argo-cd issue 29410), ``fleet rollout status`` and the report.
The approval command and the policy in fleet.yaml run on real git repos."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import ConfigError, InputError, Unreachable
from fleet.registry.load import parse_settings
from fleet.registry.model import RolloutSettings, WavePolicySettings
from rollout.journal import load_current, rollout_dir
from rollout.policy import Approval, FailureBudget, approvals_in, parse_budget, wave_policies
from rollout.report import to_markdown, to_svg
from rollout.status import rollout_status
from tests.unit.test_rollout import A, B, FakeFleet, Lines, roll

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


class Clock:
    """The time a rollout's bakes are measured on: moves only when a test says so."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def six() -> FakeFleet:
    """Six existing clusters at A, three waves of two."""
    names = {"c1": 1, "c2": 1, "c3": 2, "c4": 2, "c5": 3, "c6": 3}
    return FakeFleet(names, existing=set(names), good=dict.fromkeys(names, A))


def by_name(res: Any) -> dict[str, Any]:
    return {c.name: c for c in res.report.clusters}


# -- budgets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "clusters", "allowed"), [
    ("0", 10, 0), ("2", 10, 2), ("10%", 10, 1), ("10%", 4, 0), ("50%", 5, 2), ("100%", 7, 7), (3, 1, 3),
])
def test_a_budget_is_a_number_or_a_percent_rounded_down(text: Any, clusters: int, allowed: int) -> None:
    budget = parse_budget(text, "--max-failures")
    assert budget is not None and budget.allowed(clusters) == allowed


@pytest.mark.parametrize("text", ["150%", "-1", "ten", "1.5", "", "5 %", "%", "1e3"])
def test_a_budget_that_does_not_parse_is_bad_input_naming_the_flag(text: str) -> None:
    with pytest.raises(InputError, match=r"^--max-failures-total: "):
        parse_budget(text, "--max-failures-total")


def test_a_failure_within_the_wave_budget_lets_later_waves_run_and_the_rollout_is_degraded() -> None:
    fleet = six()
    fleet.fail[("c1", B)] = "gates"
    res = roll(fleet, rev="B", max_failures="50%")  # 50% of 2 = 1 per wave
    assert res.outcome == "degraded"
    assert [w.state for w in res.report.waves] == ["tolerated", "passed", "passed"]
    assert fleet.applied["c6"] == B and fleet.good["c1"] == A
    assert res.report.waves[0].failed == 1 and res.report.waves[0].allowed == 1


def test_failures_beyond_the_total_budget_stop_the_rollout_even_within_each_wave() -> None:
    fleet = six()
    fleet.fail[("c1", B)] = "gates"
    fleet.fail[("c3", B)] = "sync"
    res = roll(fleet, rev="B", max_failures=1, max_failures_total="1")
    assert res.outcome == "stopped" and res.report.stopped_at == 2
    assert "--max-failures-total 1 allows 1" in load_current().stop_reason  # type: ignore[union-attr]
    assert not fleet.touched("c5") and not fleet.touched("c6")  # wave 3 untouched
    assert [w.state for w in res.report.waves] == ["tolerated", "failed", "pending"]


def test_a_total_budget_in_percent_is_of_every_selected_cluster() -> None:
    fleet = six()
    fleet.fail[("c1", B)] = "gates"
    fleet.fail[("c3", B)] = "gates"
    res = roll(fleet, rev="B", max_failures=1, max_failures_total="34%")  # 34% of 6 = 2
    assert res.outcome == "degraded" and fleet.applied["c6"] == B


def test_an_unreachable_cluster_counts_as_a_failure() -> None:
    fleet = six()

    def gone() -> None:
        raise Unreachable('cluster "c2": its API server does not answer (connection refused)')

    fleet.hooks[("sync", "c2")] = gone
    res = roll(fleet, rev="B")
    assert res.outcome == "stopped" and res.report.stopped_at == 1
    c2 = by_name(res)["c2"]
    assert c2.state == "failed" and "does not answer" in c2.error
    within = roll(fleet, rev="B", max_failures=1)  # the same rollout, continued with a budget
    assert within.outcome == "degraded" and fleet.applied["c6"] == B


def test_on_failure_rollback_returns_the_failed_cluster_to_its_last_good_at_once() -> None:
    fleet = six()
    fleet.fail[("c3", B)] = "gates"
    order: list[str] = []
    fleet.hooks[("sync", "c5")] = lambda: order.append("wave 3 starts")
    fleet.hooks[("record", "c3")] = lambda: order.append("c3 recorded")
    res = roll(fleet, rev="B", max_failures=1, on_failure="rollback", max_parallel=1)
    assert res.outcome == "degraded"
    c3 = by_name(res)["c3"]
    assert c3.state == "failed" and c3.rollback["state"] == "rolled-back" and c3.rollback["target"] == A
    assert fleet.applied["c3"] == A and fleet.good["c3"] == A
    assert [c[0] for c in fleet.touched("c3")] == ["sync", "gates", "sync", "gates", "record"]
    assert order == ["c3 recorded", "wave 3 starts"]  # at once, not at the end of the rollout
    reason = next(c for c in fleet.calls if c[:2] == ("record", "c3"))[3]
    assert reason == f"fleet rollout {res.id}: rollback"


def test_on_failure_hold_leaves_the_failed_cluster_at_the_failed_revision() -> None:
    fleet = six()
    fleet.fail[("c3", B)] = "gates"
    res = roll(fleet, rev="B", max_failures=1)
    assert by_name(res)["c3"].rollback is None and fleet.applied["c3"] == B and fleet.good["c3"] == A


# -- done means at the new revision (argo-cd issue 29410) ---------------------------------------------


def test_a_cluster_healthy_at_the_previous_revision_never_counts_for_its_wave() -> None:
    """The operator never took the new revision (its pin did not move, its fetch is stuck): the cluster is
    Ready and every gate passes, on what it ran before. Argo CD's progressive sync marks such a step done
    (argo-cd issue 29410); here the cluster fails, its last good stays, and the next wave does not start."""
    fleet = six()
    fleet.operator_at["c2"] = A  # healthy, at A, whatever sync said
    res = roll(fleet, rev="B")
    c2 = by_name(res)["c2"]
    assert c2.state == "failed" and c2.failed_step == "gates"
    assert f"not at {B[:12]}" in c2.error and f"applied {A[:12]}" in c2.error
    assert fleet.good["c2"] == A and ("record", "c2", B) not in [c[:3] for c in fleet.calls]
    assert res.outcome == "stopped" and not fleet.touched("c3")


# -- bake ---------------------------------------------------------------------------------------------


def test_each_wave_bakes_before_the_next_starts() -> None:
    fleet = six()
    clock = Clock()
    order: list[str] = []
    fleet.hooks[("bake", "c1")] = lambda: order.append("bake w1")
    fleet.hooks[("sync", "c3")] = lambda: order.append("sync w2")
    res = run(fleet, clock, rev="B", bake="10m", max_parallel=1)
    assert res.outcome == "succeeded"
    assert order == ["bake w1", "sync w2"]
    until = {c: u for c, _r, u in fleet.bakes}
    assert set(until) == set(fleet.waves) and until["c1"] == T0 + timedelta(minutes=10)
    assert all(w.bake_s == 600 for w in res.report.waves)
    assert res.report.waves[0].bake_until == (T0 + timedelta(minutes=10)).isoformat(timespec="microseconds")


def run(fleet: FakeFleet, clock: Clock, view: Lines | None = None, **kw: Any) -> Any:
    from rollout.engine import run_rollout
    from rollout.model import RolloutRequest

    return run_rollout(RolloutRequest(repo=Path("."), **kw), fleet, view or Lines(), clock=clock)


def test_a_gate_that_fails_during_the_bake_fails_the_wave() -> None:
    fleet = six()
    fleet.bake_fail["c2"] = "Deployment/hello-prod/hello: 1 of 3 replicas available"
    res = run(fleet, Clock(), rev="B", bake=60)
    assert res.outcome == "stopped" and res.report.stopped_at == 1
    c2 = by_name(res)["c2"]
    assert c2.state == "failed" and c2.failed_step == "bake" and "replicas available" in c2.error
    assert not fleet.touched("c3")


def test_a_failure_during_the_bake_within_budget_rolls_back_with_on_failure_rollback() -> None:
    fleet = six()
    fleet.bake_fail["c2"] = "Deployment/hello-prod/hello: 1 of 3 replicas available"
    res = run(fleet, Clock(), rev="B", bake=60, max_failures=1, on_failure="rollback")
    assert res.outcome == "degraded"
    c2 = by_name(res)["c2"]
    assert c2.failed_step == "bake" and c2.rollback["state"] == "rolled-back" and fleet.applied["c2"] == A


def test_fleet_yaml_sets_the_bake_per_wave_and_per_environment_and_bake_overrides_it() -> None:
    settings = RolloutSettings(bake=30, waves={2: WavePolicySettings(bake=120)},
                               environments={"prod": WavePolicySettings(bake=600, approval=True)})
    waves = {1: ["d1"], 2: ["d2"], 3: ["p3", "d3"]}
    envs = {"d1": "dev", "d2": "dev", "p3": "prod", "d3": "dev"}
    got = wave_policies(settings, waves, envs)
    assert [(p.bake_s, p.approval) for p in got.values()] == [(30, False), (120, False), (600, True)]
    assert got[3].why == "approval: rollout.environments.prod; bake: rollout.environments.prod"
    forced = wave_policies(settings, waves, envs, bake=5)
    assert [p.bake_s for p in forced.values()] == [5, 5, 5] and forced[3].approval


def test_a_rollout_killed_during_a_bake_continues_the_same_wait_when_run_again() -> None:
    fleet = six()
    clock = Clock()

    class Killed(BaseException):
        pass

    def die() -> None:
        raise Killed

    fleet.hooks[("bake", "c1")] = die
    with pytest.raises(Killed):
        run(fleet, clock, rev="B", bake="10m", max_parallel=1)
    j = load_current()
    assert j is not None and j.waves[0].state == "baking"
    assert j.waves[0].bake_until == (T0 + timedelta(minutes=10)).isoformat(timespec="microseconds")
    del fleet.hooks[("bake", "c1")]
    fleet.calls.clear()
    fleet.bakes.clear()
    clock.t = T0 + timedelta(minutes=4)  # run again 4 minutes later
    view = Lines()
    res = run(fleet, clock, view, rev="B", bake="10m", max_parallel=1)
    assert res.outcome == "succeeded"
    assert not fleet.touched("c1")[:1] or fleet.touched("c1")[0][0] == "bake"  # wave 1 not synced again
    w1 = [u for c, _r, u in fleet.bakes if c in ("c1", "c2")]
    assert w1 == [T0 + timedelta(minutes=10)] * 2  # the same end: 6 minutes left, not 10
    assert any("continuing the bake of wave 1" in ln and "(6m00s left)" in ln for ln in view.out.lines)


# -- approvals ---------------------------------------------------------------------------------------


def approval(fleet: FakeFleet, res: Any, wave: int, who: str = "Approver <a@fleet.test>", rev: str = B) -> None:
    fleet.approved.append(Approval(res.id, wave, rev, who, T0, "looks good"))


def test_a_wave_that_needs_an_approval_pauses_the_rollout_until_it_is_approved() -> None:
    fleet = six()
    fleet.settings = RolloutSettings(waves={2: WavePolicySettings(approval=True)})
    view = Lines()
    res = roll(fleet, view, rev="B")
    assert res.outcome == "paused"
    assert [w.state for w in res.report.waves] == ["passed", "waiting-approval", "pending"]
    assert not fleet.touched("c3")
    line = next(ln for ln in view.out.lines if "to continue, run:" in ln)
    assert f"fleet rollout approve {res.id} --wave 2" in line
    st = rollout_status()
    assert [w.state for w in st.waves] == ["done", "waiting-approval", "not-started"]
    assert st.next_step.startswith(f"fleet rollout approve {res.id} --wave 2")
    again = roll(fleet, rev="B")  # run again without an approval: still paused, nothing run
    assert again.outcome == "paused" and again.id == res.id and not fleet.touched("c3")
    approval(fleet, res, 2)
    done = roll(fleet, rev="B")
    assert done.outcome == "succeeded" and done.id == res.id
    assert fleet.applied["c6"] == B and fleet.touched("c1") == [c for c in fleet.touched("c1")]  # wave 1 once
    assert sum(1 for c in fleet.calls if c[:2] == ("sync", "c1")) == 1
    w2 = json.loads((rollout_dir(res.id) / "journal.json").read_text())["waves"][1]
    assert w2["approved"]["by"] == "Approver <a@fleet.test>" and w2["approved"]["reason"] == "looks good"


def test_an_approval_under_another_revision_or_rollout_does_not_carry_over() -> None:
    fleet = six()
    fleet.settings = RolloutSettings(waves={2: WavePolicySettings(approval=True)})
    res = roll(fleet, rev="B")
    approval(fleet, res, 2, rev=A)  # this rollout's id, another revision
    approval(fleet, res, 3)  # another wave
    fleet.approved.append(Approval("20261207T000000Z-000000", 2, B, "X <x@fleet.test>", T0, ""))  # another rollout
    assert roll(fleet, rev="B").outcome == "paused"
    approval(fleet, res, 2)
    assert roll(fleet, rev="B").outcome == "succeeded"
    later = roll(fleet, rev="A")  # a new rollout (another revision): its wave 2 waits again
    assert later.outcome == "paused" and later.id != res.id


def test_a_rollout_killed_as_it_paused_continues_once_approved() -> None:
    """SIGKILL right after the pause was journaled, before the rollout recorded its end, leaves the journal
    saying running with the wave waiting-approval: run again, it pauses at the same wave without running
    anything; approved, the next run starts that wave and not wave 1 again."""
    fleet = six()
    fleet.settings = RolloutSettings(waves={2: WavePolicySettings(approval=True)})
    first = roll(fleet, rev="B")
    j = load_current()
    assert j is not None and first.outcome == "paused"
    j.state, j.ended = "running", None  # what the kill leaves: the pause journaled, the end not
    j.save()
    fleet.calls.clear()
    again = roll(fleet, rev="B")
    assert again.outcome == "paused" and again.id == j.id and not [c for c in fleet.calls if c[0] != "probe"]
    approval(fleet, again, 2)
    assert roll(fleet, rev="B").outcome == "succeeded" and fleet.applied["c6"] == B
    assert sum(1 for c in fleet.calls if c[:2] == ("sync", "c1")) == 0  # wave 1 was not run again


def test_the_starter_cannot_approve_when_fleet_yaml_says_so() -> None:
    fleet = six()
    fleet.settings = RolloutSettings(waves={2: WavePolicySettings(approval=True)}, approverNotStarter=True)
    res = roll(fleet, rev="B")
    approval(fleet, res, 2, who=fleet.who)
    assert roll(fleet, rev="B").outcome == "paused"
    approval(fleet, res, 2)
    assert roll(fleet, rev="B").outcome == "succeeded"


def test_approval_lines_are_found_only_for_their_rollout_and_revision() -> None:
    mine = Approval("r1", 2, B, "A <a@x>", T0, "ok")
    note = "\n".join([
        '{"cluster":"c1","revision":"' + B + '"}',  # a last-good record on the same commit
        mine.to_json(),
        Approval("r1", 2, A, "A <a@x>", T0, "").to_json(),
        Approval("r2", 2, B, "A <a@x>", T0, "").to_json(),
        Approval("r1", 2, B, "\x1b[2J Mallory <m@x>", T0, "").to_json(),  # not fleet's: control characters
        "not json",
    ])
    assert approvals_in(note, "r1", B) == [mine]


# -- status and report ------------------------------------------------------------------------------


def test_status_shows_a_wave_baking_until_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = six()
    clock = Clock()

    class Killed(BaseException):
        pass

    def die() -> None:
        raise Killed

    fleet.hooks[("bake", "c3")] = die
    with pytest.raises(Killed):
        run(fleet, clock, rev="B", bake=300, max_failures=1)
    st = rollout_status(now=T0 + timedelta(seconds=60))
    assert st.state == "interrupted"
    assert [w.state for w in st.waves] == ["done", "baking", "not-started"]
    assert st.waves[1].summary.startswith("baking until 2026-12-07T06:05:00") and "(4m00s left)" in st.waves[1].summary


def test_status_of_a_rollout_that_does_not_exist_is_bad_input() -> None:
    with pytest.raises(InputError, match='rollout "nope" not found'):
        rollout_status("nope")


def test_the_report_shows_waves_as_lanes_with_bake_approval_and_budget() -> None:
    fleet = six()
    fleet.settings = RolloutSettings(waves={2: WavePolicySettings(approval=True)})
    fleet.fail[("c1", B)] = "gates"
    res = run(fleet, Clock(), rev="B", max_failures=1, bake=1)
    approval(fleet, res, 2)
    res = run(fleet, Clock(), rev="B", max_failures=1, bake=1)
    rep = res.report
    w1, w2, _w3 = rep.waves
    assert (w1.failed, w1.allowed, w1.bake_s) == (1, 1, 1)
    assert w2.approval and w2.approved_by == "Approver <a@fleet.test>" and w2.waiting_s is not None
    md = to_markdown(rep)
    assert "| wave | state | clusters | start | duration | slowest member | failed | budget | bake | approval |" in md
    assert "| 1 | tolerated |" in md and "1 of 1 allowed" in md
    svg = to_svg(rep)
    assert svg.count('class="lane"') == 3  # a lane per wave
    assert 'class="bake"' in svg and 'class="approval"' in svg


# -- fleet.yaml -----------------------------------------------------------------------------------------


def test_fleet_yaml_rollout_policy_parses_and_a_bad_bake_names_file_line_and_key() -> None:
    ok = parse_settings("rollout:\n  bake: 10m\n  waves:\n    2: {approval: true, bake: 90s}\n"
                        "  environments:\n    prod: {approval: true}\n  approverNotStarter: true\n")
    assert ok.rollout.bake == 600 and ok.rollout.waves[2] == WavePolicySettings(approval=True, bake=90)
    assert ok.rollout.environments["prod"].approval and ok.rollout.approverNotStarter
    with pytest.raises(ConfigError) as e:
        parse_settings("name: f\nrollout:\n  waves:\n    2: {bake: soon}\n")
    assert str(e.value.message).startswith("fleet.yaml:4:") and "bake" in e.value.message
    assert FailureBudget(None, 10).allowed(25) == 2
