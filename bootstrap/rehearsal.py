"""``fleet drill``: rehearse the rebuild of a cluster, as if it had been lost, into a scratch cluster.

    lock -> clean what an earlier drill left -> prove (signature, SOPS) -> run_bootstrap (scratch) ->
    prove (operator reached the repo) -> judge against the objective -> remove the scratch -> report, note

The rebuild is the DR pipeline itself (:func:`bootstrap.pipeline.run_bootstrap`: the same steps, operator
path and gates) run for the scratch identity ``<cluster>-drill`` (:mod:`fleet.registry.scratch`): its own
Pulumi stack, local cluster, kubeconfig, journal and operator endpoint, at the cluster's last good revision.
The live cluster, its stack, kubeconfig and last good are never touched: :class:`DrillServices` renders
the live cluster's manifests and its record step moves nothing.

One drill per cluster at a time (a lock: the second refuses at once). A drill killed at any point (SIGKILL
included) leaves its scratch cluster and stack behind; the next drill of that cluster removes them first
(or ``fleet drill --cleanup CLUSTER``), and Ctrl-C removes them before the process exits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bootstrap.pipeline import BootstrapRequest, BootstrapResult, Resolved, run_bootstrap
from bootstrap.report import RecoveryReport
from bootstrap.services import RealServices
from clusters import program as cluster_program
from fleet import provision as prov
from fleet.access import kubeconfig_cache_path
from fleet.adapters.pulumi_auto import Engine, EngineSettings
from fleet.drills import PHASES, DrillRecord, drill_records, objective_for, write_drill_record
from fleet.errors import FleetError, InputError
from fleet.good import get_good
from fleet.output import Reporter, to_plain
from fleet.paths import fleet_home, write_private
from fleet.registry.load import load_registry, open_repo
from fleet.registry.model import RecoveryObjective
from fleet.registry.scratch import scratch_identity, scratch_name
from fleet.rendering.build import Rendered
from fleet.rendering.cluster import render_cluster
from fleet.stepkit.journal import exclusive_lock, journal_dir, new_run_id

__all__ = ["DrillRequest", "DrillResult", "DrillServices", "Proof", "cleanup", "drill_dir", "run_drill"]

Result = Literal["passed", "failed", "over-rto"]


def drill_dir(cluster: str) -> Path:
    """Where a cluster's drills keep their lock and (without --report-dir) their reports."""
    return fleet_home() / "drills" / cluster


@dataclass(frozen=True)
class DrillRequest:
    repo: Path
    cluster: str
    keep: bool = False
    report_dir: Path | None = None  # the reports go here (default: $FLEET_HOME/drills/<cluster>/<run id>)
    gate_timeout: float | None = None


@dataclass(frozen=True)
class Proof:
    """One more thing a drill proves, beside the rebuild: a line of the report."""

    name: str  # signature | sops | operator
    status: Literal["passed", "failed", "not required", "not run"]
    detail: str


@dataclass(frozen=True)
class DrillResult:
    cluster: str
    scratch: str
    run_id: str
    result: Result
    revision: str
    last_good: str
    by: str
    started_at: str
    objective: dict[str, Any]  # {"rto": "15m", "rto_s": 900, "drill_every": "7d", "drill_every_s": ...}
    recovery_s: float | None
    margin_s: float | None  # under (positive) or over (negative) the objective
    phases: dict[str, float]  # provision, operator, sync, gates: seconds
    phase_share: dict[str, float]  # each phase's share of the recovery time (0..1)
    previous_phases: dict[str, float]  # the phases of the cluster's last passing drill before this one ({}: none)
    proofs: tuple[Proof, ...]
    failure: dict[str, str] | None
    cleaned_before: tuple[str, ...]  # what an earlier, killed or kept, drill had left and this one removed
    removed: str  # how the scratch cluster went away ("removed in 4.2s", "kept: ...")
    recovery: RecoveryReport | None = None
    files: dict[str, str] = field(default_factory=dict)
    report_sha256: str | None = None


class DrillServices(RealServices):
    """The DR pipeline's services for a scratch cluster: the live cluster's render and last good, the
    scratch cluster's stack and kubeconfig, and a record step that moves no last good."""

    def __init__(self, repo: Path, *, engine: EngineSettings, live: str, scratch: str) -> None:
        super().__init__(repo, engine=engine)
        self.live, self.scratch = live, scratch

    def _rendered(self, cluster: str, revision: str) -> Rendered:
        # the scratch cluster runs what the live one does (FLEET_CLUSTER stays the live name)
        return render_cluster(self.git, self.live if cluster == self.scratch else cluster, revision)

    def resolve(self, cluster: str, to: str | None) -> Resolved:
        res = super().resolve(self.live if cluster == self.scratch else cluster, to)
        return replace(res, source=f"last good of {self.live}") if to is None else res

    def already_recovered(self, cluster: str, revision: str) -> bool:
        return False  # a drill always rebuilds: the scratch cluster is made for it

    def provision(self, cluster: str, revision: str, reporter: Reporter) -> str:
        """One update brings up the scratch cluster and its operator pinned to ``revision`` (the drill removed
        whatever an earlier one left, so the stack is new: there is no operator to keep as it is); the
        operator step then finds it installed by the stack's outputs and makes no second update. Nothing to
        refresh: the stack is new, or (this step tried again) holds what this run made seconds before, and
        the local provider's diff looks at the cluster's health itself."""
        from fleet.operator import operator_for
        from fleet.sops import require_intact_commit

        if operator_for(self.registry().settings).kind != "none":
            # the pin moves only to a commit whose SOPS MACs verify (as in the operator step)
            require_intact_commit(self.registry().settings, self.git.root,
                                  self._rendered(cluster, revision).objects, f"commit {revision[:12]}")
        res = prov.provision(self.git, cluster, program=cluster_program, reporter=reporter, pin_revision=revision,
                             refresh=False, phase="all", engine=self.engine)
        self.note_pinned(cluster, revision, res.outputs)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(res.changes.items()) if n and k != "same") or "no changes"
        return f"cluster and operator pinned to {revision[:12]}: {parts} ({res.duration_s:.1f}s)"

    def record(self, cluster: str, revision: str, run_id: str, gates: tuple[dict[str, Any], ...],
               duration_s: float) -> str:
        return f'a drill moves no last good: "{self.live}" stays at {revision[:12]}'


def _objective(o: RecoveryObjective | None) -> dict[str, Any]:
    if o is None:
        return {}
    return {"rto": o.rto, "rto_s": o.rto_s, "drill_every": o.drill_every, "drill_every_s": o.drill_every_s}


def cleanup(repo: Path, cluster: str, *, engine: EngineSettings, reporter: Reporter) -> tuple[str, ...]:
    """Remove the scratch cluster of ``cluster`` and everything a drill made for it: its stack (the stale
    locks a killed drill's engine left removed first), its local cluster with the operator's processes, its
    kubeconfig and journal. Says what it removed. The caller holds the cluster's drill lock."""
    live = load_registry(open_repo(repo)).get(cluster)
    scratch = scratch_name(live.name)
    removed: list[str] = []
    with scratch_identity(live.name, scratch):
        eng = Engine(engine)
        if eng.exists(scratch):
            with contextlib.suppress(FleetError):  # a backend with no lock files
                eng.unlock(scratch)  # the stale locks of a killed drill's engine (dead processes of this host)
            _forget_objects(eng, scratch)
            prov.destroy(scratch, program=cluster_program, reporter=reporter, engine=engine)
            removed.append(f'stack "{scratch}"')
        if live.provider == "local":
            from fleet.local.clusters import LocalClusters

            lc = LocalClusters()
            running = lc.operator.state(scratch)
            if lc.delete(scratch):
                removed.append(f'local cluster "{scratch}"')
            elif running:
                removed.append(f'the operator\'s processes of "{scratch}"')
        kubeconfig = kubeconfig_cache_path(scratch)
        if kubeconfig.exists():
            kubeconfig.unlink()
            removed.append(f"kubeconfig {kubeconfig}")
        jdir = journal_dir(scratch)
        if jdir.exists():
            shutil.rmtree(jdir, ignore_errors=True)
    return tuple(removed)


def _forget_objects(eng: Engine, scratch: str) -> None:
    """The scratch cluster goes whole, and its Kubernetes objects (the operator's install set, source and
    Kustomization) with it: they leave the stack's state untouched, so its destroy deletes the cluster
    alone instead of each object through the API server first. Nothing else ever uses a scratch cluster."""
    with contextlib.suppress(FleetError):  # the destroy deletes them one by one then, as before
        eng.forget(scratch, ("kubernetes:*", "pulumi:providers:kubernetes", "fleet:operator:*"))


def _signature_proof(repo: Path, revision: str) -> Proof:
    from fleet.verify import require

    try:
        signed = require(repo, revision)
    except FleetError as e:
        return Proof("signature", "failed", e.message)
    if signed is None:
        return Proof("signature", "not required", "fleet.yaml verify.mode is none: no signature required")
    return Proof("signature", "passed", signed.describe())


def _sops_proof(services: DrillServices, revision: str) -> Proof:
    from fleet.sops import decrypt_objects, is_encrypted, key_for

    try:
        rendered = services._rendered(services.live, revision)
    except FleetError as e:
        return Proof("sops", "failed", f"the revision does not render: {e.message}")
    encrypted = [o for o in rendered.objects if is_encrypted(o)]
    if not encrypted:
        return Proof("sops", "not required", "no SOPS-encrypted object in the render")
    reg = services.registry()
    try:
        key = key_for(reg.settings, services.git.root)
        if key is None:
            return Proof("sops", "failed", f"{len(encrypted)} SOPS-encrypted objects, and fleet.yaml names no key")
        decrypt_objects(encrypted, [key])
    except FleetError as e:
        return Proof("sops", "failed", e.message)
    return Proof("sops", "passed", f"{len(encrypted)} SOPS-encrypted objects decrypt with the age identity of "
                                   f"{key.recipient} (from {key.source})")


def _operator_proof(services: DrillServices, bootstrap: BootstrapResult | None) -> Proof:
    reg = services.registry()
    from fleet.operator import operator_for

    if not operator_for(reg.settings).needs_repo_url:  # no operator clones the repo (operator.kind none)
        return Proof("operator", "not required", "fleet.yaml operator.kind none: fleet applies directly")
    url = reg.settings.git.url or services.git.remote_url(reg.settings.git.remote) or str(services.git.root)
    report = bootstrap.report if bootstrap is not None else None
    if bootstrap is None or report is None:
        return Proof("operator", "not run", f"the rebuild did not reach the operator ({url})")
    if bootstrap.plan.sync_mode != "operator":
        return Proof("operator", "not required", f"sync {bootstrap.plan.sync_mode}: the operator did not fetch")
    sync = next((s for s in report.steps if s.name == "sync"), None)
    if sync is None or sync.state != "done":
        cause = (report.failure or {}).get("cause", "") if report.failure and report.failure.get("step") == "sync" \
            else "the rebuild stopped before the sync step"
        return Proof("operator", "failed" if sync is not None and sync.state == "failed" else "not run",
                     f"{url}: {cause}")
    return Proof("operator", "passed", f"the GitRepository was Ready from {url}: {sync.detail}")


def _judge(report: RecoveryReport | None, objective: RecoveryObjective | None, proofs: tuple[Proof, ...]
           ) -> tuple[Result, float | None]:
    if report is None or report.outcome not in ("recovered",) or any(p.status == "failed" for p in proofs):
        return "failed", None
    rto = objective.rto_s if objective is not None else None
    if rto is None or report.recovery_time_s is None:
        return "passed", None
    margin = round(rto - report.recovery_time_s, 3)
    return ("passed" if margin >= 0 else "over-rto"), margin


def run_drill(req: DrillRequest, *, engine: EngineSettings, reporter: Reporter) -> DrillResult:
    """Rehearse the rebuild of ``req.cluster`` (see the module's docstring). Bad input (an unknown cluster,
    no last good, an objective that does not parse) raises before anything is created."""
    g = open_repo(req.repo)
    reg = load_registry(g)  # the working tree: a bad objective is refused here, naming file, line and key
    spec = reg.get(req.cluster)
    scratch = scratch_name(spec.name)
    good = get_good(g, spec.name)
    if good is None:
        raise InputError(
            f'cluster "{spec.name}" has no last good revision to rehearse a rebuild at',
            hint=f"a drill rebuilds at the last good revision: `fleet good {spec.name} --set REV` records one",
        )
    objective = objective_for(reg.settings, spec)
    name, email = g.identity()
    run_id = new_run_id()
    out_dir = req.report_dir or drill_dir(spec.name) / run_id
    with exclusive_lock(
        drill_dir(spec.name) / "lock",
        f'another drill of cluster "{spec.name}" is running',
        "two drills of one cluster never run at once: wait for it, or schedule drills further apart",
    ):
        cleaned = cleanup(req.repo, spec.name, engine=engine, reporter=reporter)
        if cleaned:
            reporter.warn(f"removed what an earlier drill left: {', '.join(cleaned)}")
        started = datetime.now(UTC)
        with scratch_identity(spec.name, scratch):
            services = DrillServices(req.repo, engine=engine, live=spec.name, scratch=scratch)
            reporter.step(f'drill {run_id}: rebuilding "{spec.name}" as if lost, into scratch cluster "{scratch}" '
                          f"at its last good {good.revision[:12]}")
            proofs = [_signature_proof(req.repo, good.revision), _sops_proof(services, good.revision)]
            for p in proofs:
                _say(reporter, p)
            boot: BootstrapResult | None = None
            removed = ""
            try:
                if not any(p.status == "failed" for p in proofs):
                    boot = run_bootstrap(
                        BootstrapRequest(repo=req.repo, cluster=scratch, gate_timeout=req.gate_timeout,
                                         report_dir=out_dir),
                        services, reporter)
                    proofs.append(_operator_proof(services, boot))
                    _say(reporter, proofs[-1])
            finally:  # Ctrl-C included: the scratch cluster goes before the process does
                removed = _remove_scratch(req, spec.name, scratch, engine, reporter)
        report = boot.report if boot is not None else None
        result, margin = _judge(report, objective, tuple(proofs))
        failure = report.failure if report is not None and report.failure else None
        if failure is None and any(p.status == "failed" for p in proofs):
            bad = next(p for p in proofs if p.status == "failed")
            failure = {"step": bad.name, "cause": bad.detail, "next": "fix the cause, then run the drill again"}
        phases = {s.name: s.duration_s or 0.0 for s in (report.steps if report else ()) if s.name in PHASES}
        total = report.recovery_time_s if report is not None else None
        passes = [r for r in drill_records(g, spec.name) if r.result == "passed"]
        drill = DrillResult(
            cluster=spec.name, scratch=scratch, run_id=run_id, result=result, revision=good.revision,
            last_good=good.revision, by=f"{name} <{email}>", started_at=started.isoformat(timespec="seconds"),
            objective=_objective(objective), recovery_s=total, margin_s=margin, phases=phases,
            phase_share={k: round(v / total, 3) for k, v in phases.items()} if total else {},
            previous_phases=dict(passes[-1].phases) if passes else {},
            proofs=tuple(proofs), failure=failure, cleaned_before=cleaned, removed=removed, recovery=report,
        )
        drill = _write_report(drill, out_dir)
        write_drill_record(g, DrillRecord(
            cluster=spec.name, scratch=scratch, run_id=run_id, revision=good.revision, last_good=good.revision,
            started_at=started, by=drill.by, result=result, recovery_s=total,
            rto_s=objective.rto_s if objective is not None else None, phases=phases,
            failed_step=failure.get("step") if failure else None, cause=failure.get("cause") if failure else None,
            report_sha256=drill.report_sha256,
        ))
        _verdict(reporter, drill)
        return drill


def _remove_scratch(req: DrillRequest, live: str, scratch: str, engine: EngineSettings, reporter: Reporter) -> str:
    if req.keep:
        how = f"`fleet drill --cleanup {live}` (or the next drill of {live}) removes it"
        reporter.warn(f'kept scratch cluster "{scratch}" and its stack for inspection '
                      f"(kubeconfig {kubeconfig_cache_path(scratch)}); {how}")
        return f"kept; {how}"
    t0 = time.monotonic()
    reporter.step(f'removing scratch cluster "{scratch}" and its stack')
    try:
        cleanup(req.repo, live, engine=engine, reporter=reporter)
    except FleetError as e:
        reporter.fail(f'could not remove scratch cluster "{scratch}": {e.message}; the next drill of {live} '
                      f"(or `fleet drill --cleanup {live}`) removes it")
        return f"NOT removed: {e.message}"
    took = time.monotonic() - t0
    reporter.ok(f'scratch cluster "{scratch}" removed in {took:.1f}s')
    return f"removed in {took:.1f}s"


def _say(r: Reporter, p: Proof) -> None:
    if p.status == "failed":
        r.fail(f"{p.name}: {p.detail}")
    else:
        r.ok(f"{p.name}: {p.detail}")


def _verdict(r: Reporter, d: DrillResult) -> None:
    rto = d.objective.get("rto")
    if d.result == "passed":
        over = f", {d.margin_s:.1f}s under its objective of {rto}" if d.margin_s is not None else \
            " (no recovery objective declared)"
        r.ok(f'drill of "{d.cluster}" passed: rebuilt in {d.recovery_s or 0:.1f}s{over}')
    elif d.result == "over-rto":
        slow = max(d.phases.items(), key=lambda kv: kv[1])[0] if d.phases else "?"
        r.fail(f'drill of "{d.cluster}" is over its objective: rebuilt in {d.recovery_s or 0:.1f}s, '
               f"{-(d.margin_s or 0):.1f}s over {rto} (slowest phase: {slow})")
    else:
        f = d.failure or {}
        r.fail(f'drill of "{d.cluster}" failed at {f.get("step", "?")}: {f.get("cause", "")}')


def to_markdown(d: DrillResult) -> str:
    icon = {"passed": "✔", "failed": "✗", "over-rto": "✗"}[d.result]
    rto = d.objective.get("rto")
    lines = [
        f"# Drill of cluster `{d.cluster}`: {icon} {d.result}",
        "",
        f"- rebuilt as if lost into scratch cluster `{d.scratch}` (its own stack and cluster; the live one untouched)",
        f"- revision: `{d.revision}` (the last good of `{d.cluster}` at the time)",
        f"- by {d.by}, started {d.started_at}, run `{d.run_id}`",
        f"- recovery time: **{_s(d.recovery_s)}**"
        + (f" against an objective of {rto} ({_s(d.objective.get('rto_s'))}): "
           + (f"{d.margin_s:.1f}s under" if (d.margin_s or 0) >= 0 else f"{-(d.margin_s or 0):.1f}s over")
           if rto is not None and d.margin_s is not None else " (no objective declared)" if rto is None else ""),
        f"- scratch cluster: {d.removed}",
    ]
    if d.cleaned_before:
        lines.append(f"- removed first what an earlier drill left: {', '.join(d.cleaned_before)}")
    rto_s = d.objective.get("rto_s")
    slowest = max(d.phases, key=lambda k: d.phases[k]) if d.phases else None
    lines += ["", "## Phases", "",
              "| phase | duration | share of the recovery | of the rto | vs the last passing drill |",
              "|---|---:|---:|---:|---:|"]
    for ph in PHASES:
        if ph in d.phases:
            v = d.phases[ph]
            of_rto = f"{v / rto_s * 100:.0f}%" if rto_s else "-"
            before = d.previous_phases.get(ph)
            delta = f"{v - before:+.1f}s" if before is not None else "-"
            mark = " (slowest)" if ph == slowest else ""
            lines.append(f"| {ph}{mark} | {_s(v)} | {d.phase_share.get(ph, 0) * 100:.0f}% | {of_rto} | {delta} |")
    lines += ["", "## Also proved", "", "| check | result | detail |", "|---|---|---|"]
    for p in d.proofs:
        lines.append(f"| {p.name} | {p.status} | {p.detail.replace('|', '/')} |")
    if d.failure:
        lines += ["", "## Failure", "", f"- step: {d.failure.get('step')}", f"- cause: {d.failure.get('cause')}",
                  f"- next: {d.failure.get('next')}"]
    if d.recovery is not None:
        lines += ["", f"The rebuild's own report: {d.recovery.files.get('markdown', '-')} "
                      f"(timeline {d.recovery.files.get('timeline', '-')})."]
    return "\n".join(lines) + "\n"


def _s(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}s"


def _write_report(d: DrillResult, directory: Path) -> DrillResult:
    """drill.json and drill.md beside the rebuild's report.json, report.md and timeline.svg; the SHA-256
    of drill.json goes into the evidence note."""
    files = {"json": str(directory / "drill.json"), "markdown": str(directory / "drill.md")}
    if d.recovery is not None:
        files.update({f"recovery_{k}": v for k, v in d.recovery.files.items()})
    d = replace(d, files=files)
    text = json.dumps(to_plain(d), indent=2) + "\n"
    write_private(Path(files["json"]), text)
    write_private(Path(files["markdown"]), to_markdown(d))
    return replace(d, report_sha256=hashlib.sha256(text.encode()).hexdigest())
