"""The DR pipeline's own logic, with a fake of its Services interface (no clusters, no engine):
journaling and resume, budgets and retries, failure reports, the already-recovered check, locks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap.pipeline import STEPS, BootstrapRequest, Plan, Resolved, run_bootstrap
from fleet.errors import GateFailed, InputError, Unreachable
from fleet.output import SilentReporter
from fleet.stepkit.journal import locked_journal
from fleet.stepkit.steps import Budget

REV = "a" * 40


class Crash(BaseException):
    """Stands for SIGKILL: nothing in the pipeline catches it, so the journal stays as it was."""


@dataclass
class FakeServices:
    fail: dict[str, list[BaseException]] = field(default_factory=dict)  # step -> errors to raise, in order
    calls: list[str] = field(default_factory=list)
    recovered: bool = True

    def _call(self, step: str) -> None:
        self.calls.append(step)
        errors = self.fail.get(step)
        if errors:
            raise errors.pop(0)

    def resolve(self, cluster: str, to: str | None) -> Resolved:
        if to == "nope":
            raise InputError('revision "nope" not found')
        return Resolved(REV, "--to" if to else "last good", "a commit")

    def plan(self, cluster: str, resolved: Resolved, sync_mode: Any, gate_timeout: float | None) -> Plan:
        return Plan(cluster, "local", "eu", "prod", resolved.revision, resolved.source, resolved.subject,
                    "direct", cluster, ("a cluster",), 4, ("1 Deployment rollout",), 30.0, {})

    def already_recovered(self, cluster: str, revision: str) -> bool:
        self.calls.append("already_recovered")
        return self.recovered

    def provision(self, cluster: str, revision: str, reporter: Any) -> str:
        self._call("provision")
        return "cluster: 1 create"

    def install_operator(self, cluster: str, revision: str, reporter: Any) -> str:
        self._call("operator")
        return "operator: 3 create"

    def sync(self, cluster: str, revision: str, mode: str, reporter: Any) -> str:
        self._call("sync")
        return "4 objects applied"

    def gates(self, cluster: str, revision: str, timeout: float, reporter: Any) -> tuple[dict[str, Any], ...]:
        self._call("gates")
        return ({"name": "rollout Deployment/ns/hello", "passed": True, "status": "passed", "detail": "ok"},)

    def record(self, cluster: str, revision: str, run_id: str, gates: Any, duration_s: float) -> str:
        self._call("record")
        return "recorded"


def req(tmp_path: Path, **kw: Any) -> BootstrapRequest:
    budgets = {s: Budget(3, 30) for s in STEPS}
    return BootstrapRequest(repo=tmp_path, cluster="eu-1", to=kw.pop("to", REV), budgets=budgets, **kw)


def journal_of(home: Path) -> dict[str, Any]:
    return json.loads((home / "bootstrap" / "eu-1" / "journal.json").read_text())


def test_a_run_does_every_step_once_and_writes_the_report(tmp_path: Path, fleet_home: Path) -> None:
    svc = FakeServices()
    res = run_bootstrap(req(tmp_path), svc, SilentReporter())
    assert res.outcome == "recovered"
    assert svc.calls == ["provision", "operator", "sync", "gates", "record"]
    rep = res.report
    assert rep is not None and rep.revision == REV and rep.resumed == 0
    assert [s.state for s in rep.steps] == ["done"] * len(STEPS)
    md = Path(rep.files["markdown"]).read_text()
    assert "# Recovery of cluster `eu-1`: ✔ recovered" in md and "| provision | done |" in md
    assert Path(rep.files["timeline"]).read_text().startswith("<svg")
    assert json.loads(Path(rep.files["json"]).read_text())["outcome"] == "recovered"
    assert journal_of(fleet_home)["state"] == "recovered"


def test_a_killed_run_resumes_from_the_step_it_was_in_without_redoing_done_steps(
    tmp_path: Path, fleet_home: Path
) -> None:
    svc = FakeServices(fail={"sync": [Crash()]})
    with pytest.raises(Crash):
        run_bootstrap(req(tmp_path), svc, SilentReporter())
    j = journal_of(fleet_home)
    assert {s["name"]: s["state"] for s in j["steps"]}["sync"] == "running"
    svc.calls.clear()
    res = run_bootstrap(req(tmp_path, to=None), svc, SilentReporter())  # same command, no --to
    assert res.outcome == "recovered"
    assert svc.calls == ["sync", "gates", "record"]  # provision and operator were done
    assert res.report is not None and res.report.resumed == 1


def test_transient_errors_are_retried_within_the_budget_others_fail_at_once(tmp_path: Path) -> None:
    # transient as the kube adapter marks it: the runner reads the mark, not the type
    svc = FakeServices(fail={"provision": [Unreachable("api server not up yet", transient=True)]})
    res = run_bootstrap(req(tmp_path), svc, SilentReporter())
    assert res.outcome == "recovered"
    assert res.report is not None
    prov = next(s for s in res.report.steps if s.name == "provision")
    assert prov.attempts == 2

    svc = FakeServices(fail={"sync": [InputError("manifest rejected")]}, recovered=False)
    res = run_bootstrap(req(tmp_path), svc, SilentReporter())
    assert res.outcome == "failed"
    assert svc.calls.count("sync") == 1


def test_a_failed_gate_fails_the_run_with_a_report_naming_the_step_and_next_action(tmp_path: Path) -> None:
    err = GateFailed("1 of 1 gates failed: Deployment/ns/hello: 0 of 3 available", hint="inspect it")
    err.results = ({"name": "rollout Deployment/ns/hello", "passed": False, "status": "failed",  # type: ignore[attr-defined]
                    "detail": "0 of 3 available"},)
    svc = FakeServices(fail={"gates": [err]})
    res = run_bootstrap(req(tmp_path), svc, SilentReporter())
    assert res.outcome == "failed" and res.report is not None
    assert res.report.failure == {"step": "gates", "cause": err.message, "next": "inspect it"}
    assert res.report.gates[0]["status"] == "failed"
    assert "record" not in svc.calls
    md = Path(res.report.files["markdown"]).read_text()
    assert "## Failure" in md and "FAILED" in md


def test_bad_input_is_refused_before_any_journal_exists(tmp_path: Path, fleet_home: Path) -> None:
    with pytest.raises(InputError):
        run_bootstrap(req(tmp_path, to="nope"), FakeServices(), SilentReporter())
    assert not (fleet_home / "bootstrap" / "eu-1" / "journal.json").exists()


def test_dry_run_plans_and_changes_nothing(tmp_path: Path, fleet_home: Path) -> None:
    svc = FakeServices()
    res = run_bootstrap(req(tmp_path, dry_run=True), svc, SilentReporter())
    assert res.outcome == "planned" and res.report is None
    assert res.plan.budgets["provision"] == {"attempts": 3, "seconds": 30}
    assert svc.calls == []
    assert not (fleet_home / "bootstrap" / "eu-1" / "journal.json").exists()


def test_a_second_run_after_success_is_already_recovered_unless_the_cluster_was_lost_again(
    tmp_path: Path,
) -> None:
    svc = FakeServices()
    assert run_bootstrap(req(tmp_path), svc, SilentReporter()).outcome == "recovered"
    svc.calls.clear()
    assert run_bootstrap(req(tmp_path), svc, SilentReporter()).outcome == "already-recovered"
    assert svc.calls == ["already_recovered"]
    svc.recovered = False  # lost again
    svc.calls.clear()
    res = run_bootstrap(req(tmp_path), svc, SilentReporter())
    assert res.outcome == "recovered" and "provision" in svc.calls


def test_a_second_concurrent_run_for_the_same_cluster_is_refused(tmp_path: Path) -> None:
    with locked_journal("eu-1"), pytest.raises(InputError, match="another bootstrap"):
        run_bootstrap(req(tmp_path), FakeServices(), SilentReporter())
