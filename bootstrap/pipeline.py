"""``fleet bootstrap``: rebuild a lost cluster from the repo, at its last good commit.

    resolve -> plan -> provision -> operator -> sync -> gates -> record -> report

Every step is idempotent and journaled (fleet.stepkit.journal): a run killed at any point, SIGKILL
included, is resumed by running the same command again, and skips the steps that are done. The
pipeline talks to the world only through :class:`Services` (bootstrap.services wires the real ones).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from bootstrap.report import RecoveryReport, build_report, write_report
from fleet.errors import FleetError, StepFailed
from fleet.locks import cluster_lock
from fleet.output import Reporter
from fleet.stepkit import journal as journal_mod
from fleet.stepkit.journal import Journal, journal_dir, locked_journal, now_iso
from fleet.stepkit.steps import Budget, run_step
from fleet.stepkit.team import TeamRun, TeamRuns

__all__ = [
    "STEPS",
    "BootstrapRequest",
    "BootstrapResult",
    "Plan",
    "Resolved",
    "Services",
    "run_bootstrap",
]

STEPS = ["resolve", "plan", "provision", "operator", "sync", "gates", "record", "report"]
SyncMode = Literal["auto", "operator", "direct"]

DEFAULT_BUDGETS: dict[str, Budget] = {
    "resolve": Budget(1, 60),
    "plan": Budget(1, 120),
    "provision": Budget(3, 900),
    "operator": Budget(3, 600),
    "sync": Budget(3, 600),
    "gates": Budget(1, 900),
    "record": Budget(3, 60),
    "report": Budget(1, 60),
}


@dataclass(frozen=True)
class BootstrapRequest:
    repo: Path
    cluster: str
    to: str | None = None
    dry_run: bool = False
    sync: SyncMode = "auto"
    gate_timeout: float | None = None
    report_dir: Path | None = None
    budgets: dict[str, Budget] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    # A shared backend's runs (fleet.stepkit.team): the cluster's lease and the journal in its bucket;
    # None: the journal and lock of this fleet home only (the file backend).
    team: TeamRuns | None = None


@dataclass(frozen=True)
class Resolved:
    revision: str  # full sha
    source: str  # "--to" | "last good"
    subject: str  # the commit's first line


@dataclass(frozen=True)
class Plan:
    cluster: str
    provider: str
    region: str
    environment: str
    revision: str
    revision_source: str
    revision_subject: str
    sync_mode: str
    stack: str
    creates: tuple[str, ...]
    objects: int
    gates: tuple[str, ...]
    gate_timeout_s: float
    budgets: dict[str, dict[str, float]]
    notes: tuple[str, ...] = ()
    steps: tuple[str, ...] = tuple(STEPS)
    rendered_from: str = ""  # the overlay directory, or the cluster's Flux directory


class Services(Protocol):
    """What the pipeline needs from fleet and from the Pulumi program; each call is idempotent."""

    def resolve(self, cluster: str, to: str | None) -> Resolved: ...
    def plan(self, cluster: str, resolved: Resolved, sync_mode: SyncMode, gate_timeout: float | None) -> Plan: ...
    def already_recovered(self, cluster: str, revision: str) -> bool: ...
    def provision(self, cluster: str, revision: str, reporter: Reporter) -> str: ...
    def install_operator(self, cluster: str, revision: str, reporter: Reporter) -> str: ...
    def sync(self, cluster: str, revision: str, mode: str, reporter: Reporter) -> str: ...
    def gates(self, cluster: str, revision: str, timeout: float, reporter: Reporter) -> tuple[dict[str, Any], ...]: ...
    def record(
        self, cluster: str, revision: str, run_id: str, gates: tuple[dict[str, Any], ...], duration_s: float
    ) -> str: ...


@dataclass(frozen=True)
class BootstrapResult:
    outcome: Literal["recovered", "already-recovered", "planned", "failed"]
    plan: Plan
    report: RecoveryReport | None
    error: FleetError | None = None


_NEXT = {
    "provision": "check the provider's credentials and quota, then run the same command again to resume",
    "operator": "check the operator's manifest source (fleet.yaml operator.source), then run the same command again",
    "sync": "look at the rejected objects above (`fleet diff CLUSTER --rev REV`), fix the repo or the cluster, "
    "then run the same command again",
    "gates": "inspect the failing objects (`fleet gate CLUSTER`), or rebuild at another revision with --to REV",
    "record": "run `fleet good CLUSTER --set REV` once the cause is fixed",
}


def _plan_budgets(b: dict[str, Budget]) -> dict[str, dict[str, float]]:
    return {k: {"attempts": v.attempts, "seconds": v.seconds} for k, v in b.items()}


def run_bootstrap(req: BootstrapRequest, services: Services, reporter: Reporter) -> BootstrapResult:
    """Run (or resume) the DR pipeline for one cluster."""
    # 1. resolve and 2. plan happen before anything is created or journaled, so bad input
    # (an unknown revision, a cluster with no last good) is refused with nothing changed.
    reporter.step(f'resolving the target revision of cluster "{req.cluster}"')
    if req.dry_run:  # a dry run writes nothing at all: not even the journal's lock file (nor a lease)
        seen = req.team.journal(req.cluster) if req.team is not None else None
        existing = _parse(seen, journal_dir(req.cluster) / "journal.json", req.cluster) if seen else None
        return BootstrapResult("planned", _resolve_and_plan(req, services, reporter,
                                                            existing or journal_mod.load(req.cluster)), None)
    command = f"fleet bootstrap {req.cluster}"
    with cluster_lock(req.cluster, command), locked_journal(req.cluster) as jpath, \
            _team_run(req, command, reporter) as team:
        existing = _existing(req.cluster, jpath, team)
        plan = _resolve_and_plan(req, services, reporter, existing)
        if (
            existing is not None
            and existing.state == "recovered"
            and existing.revision == plan.revision
            and services.already_recovered(req.cluster, plan.revision)
        ):
            reporter.ok(f'cluster "{req.cluster}" is already recovered at {plan.revision[:12]}; nothing to do')
            return BootstrapResult("already-recovered", plan, None)

        j = _open_journal(existing, jpath, req, plan, reporter, team)
        return _execute(j, req, plan, services, reporter)


def _team_run(req: BootstrapRequest, command: str, reporter: Reporter) -> AbstractContextManager[TeamRun | None]:
    """The cluster's lease on a shared backend (refused at once when a live run holds it); nothing otherwise."""
    if req.team is None:
        return nullcontext(None)
    return req.team.hold(req.cluster, "bootstrap", command, reporter)


def _existing(cluster: str, jpath: Path, team: TeamRun | None) -> Journal | None:
    """The journal to resume: on a shared backend the one in its bucket (whoever started the run), else this
    home's."""
    if team is None:
        return journal_mod.load(cluster)
    data = team.journal()
    j = _parse(data, jpath, cluster) if data is not None else None
    if j is not None:
        j.remote = team
    return j


def _parse(data: dict[str, Any], path: Path, cluster: str) -> Journal | None:
    """The journal in ``data`` (read from the bucket: untrusted); None for anything that is not one of this
    cluster's (a hand-edited object is not trusted: a new run starts)."""
    try:
        j = Journal.from_dict(data, path)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return j if j.cluster == cluster and all(isinstance(s.name, str) for s in j.steps) else None


def _resolve_and_plan(req: BootstrapRequest, services: Services, reporter: Reporter,
                      existing: Journal | None) -> Plan:
    to = req.to
    if to is None and existing is not None and existing.state != "recovered":
        to = existing.revision  # resume what the interrupted run was rebuilding
    resolved = services.resolve(req.cluster, to)
    reporter.ok(f"target revision {resolved.revision[:12]} ({resolved.source}): {resolved.subject}")
    plan = services.plan(req.cluster, resolved, req.sync, req.gate_timeout)
    return replace(plan, budgets=_plan_budgets(req.budgets))


def _open_journal(existing: Journal | None, jpath: Path, req: BootstrapRequest, plan: Plan, r: Reporter,
                  team: TeamRun | None = None) -> Journal:
    if existing is not None and existing.state != "recovered" and existing.revision == plan.revision:
        existing.resumed += 1
        existing.state = "running"
        existing.path = jpath
        done = [s.name for s in existing.steps if s.state == "done"]
        r.step(f"resuming run {existing.run_id}" + (f" (done: {', '.join(done)})" if done else ""))
        existing.save()
        return existing
    if existing is not None:
        existing.path = jpath
        existing.archive()
    j = Journal.new(req.cluster, plan.revision, plan.sync_mode, STEPS)
    j.path = jpath
    j.remote = team
    j.save()
    r.step(f"run {j.run_id}: rebuilding cluster \"{req.cluster}\" at {plan.revision[:12]}")
    return j


def _execute(j: Journal, req: BootstrapRequest, plan: Plan, services: Services, r: Reporter) -> BootstrapResult:
    rev = plan.revision
    gate_results: tuple[dict[str, Any], ...] = tuple(j.step("gates").data.get("results", ()))

    def step(name: str, fn: Callable[[], Any], describe: Callable[[Any], str] = str) -> Any:
        rec = j.step(name)
        if rec.state == "done":
            r.ok(f"{name}: done in an earlier attempt ({rec.detail})")
            return None
        r.step(name)
        out = run_step(j, name, fn, budget=req.budgets[name], reporter=r,
                       next_action=_NEXT.get(name, "run the same command again to resume"), describe=describe)
        r.ok(f"{name}: {j.step(name).detail}" if j.step(name).detail else name)
        return out

    try:
        step("resolve", lambda: f"{rev[:12]} ({plan.revision_source})")
        step("plan", lambda: f"{len(plan.creates)} to create, {plan.objects} objects, sync {plan.sync_mode}")
        step("provision", lambda: services.provision(req.cluster, rev, r))
        step("operator", lambda: services.install_operator(req.cluster, rev, r))
        step("sync", lambda: services.sync(req.cluster, rev, plan.sync_mode, r))

        def gates() -> str:
            nonlocal gate_results
            try:
                gate_results = services.gates(req.cluster, rev, plan.gate_timeout_s, r)
            except FleetError as e:
                gate_results = tuple(getattr(e, "results", ()))
                raise
            finally:
                j.step("gates").data["results"] = list(gate_results)
            counts = Counter(str(g.get("status", "passed")) for g in gate_results)
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no gates"

        step("gates", gates)
        work = sum(s.duration_s or 0.0 for s in j.steps)
        step("record", lambda: services.record(req.cluster, rev, j.run_id, gate_results, work))
    except (StepFailed, FleetError) as e:
        j.state = "failed"
        j.ended = now_iso()
        failed = next((s.name for s in j.steps if s.state == "failed"), "?")
        cause = e.cause if isinstance(e, StepFailed) else e
        message = str(getattr(cause, "message", None) or cause)
        fail = {"step": failed, "cause": message,
                "next": getattr(cause, "hint", None) or e.hint or _NEXT.get(failed, "run the same command again")}
        report = _finish(j, req, plan, "failed", gate_results, fail)
        r.fail(f"recovery of \"{req.cluster}\" failed at step {failed}: {message}")
        return BootstrapResult("failed", plan, report, e)

    j.state = "recovered"
    j.ended = now_iso()
    report = _finish(j, req, plan, "recovered", gate_results, None)
    r.ok(f'cluster "{req.cluster}" recovered at {rev[:12]} in {report.recovery_time_s:.1f}s')
    return BootstrapResult("recovered", plan, report)


def _finish(
    j: Journal, req: BootstrapRequest, plan: Plan, outcome: str,
    gates: tuple[dict[str, Any], ...], failure: dict[str, str] | None,
) -> RecoveryReport:
    rec = j.step("report")
    rec.state, rec.started, rec.attempts = "done", now_iso(), rec.attempts + 1
    rec.ended, rec.duration_s, rec.detail = rec.started, 0.0, "report written"
    j.save()
    report = build_report(j, outcome=outcome, gates=gates, notes=plan.notes, failure=failure)
    out_dir = req.report_dir or (journal_dir(req.cluster) / "runs" / j.run_id)
    report = write_report(report, out_dir)
    j.archive()
    return report
