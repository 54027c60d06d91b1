"""The real services of a rollout: the registry, the live layer and the DR pipeline (bootstrap.services).

A cluster "does not exist yet" when fleet cannot reach it: no kubeconfig (not provisioned, no
``access`` in the registry), the API server of a cluster fleet provisioned does not answer, or the
Pulumi stack that provisioned it is gone or has no resources. A cluster reached through the registry's
``access`` is never built by a rollout: when it does not answer, its update fails plainly.
A cluster that does not exist is brought up by :func:`bootstrap.pipeline.run_bootstrap` at the
rollout's revision; any other is synced, gated and recorded in place.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bootstrap.pipeline import BootstrapRequest, run_bootstrap
from bootstrap.services import RealServices
from fleet.access import kubeconfig_for
from fleet.adapters.pulumi_auto import Engine, EngineSettings
from fleet.errors import FleetError, InputError, PulumiError, Unreachable
from fleet.good import get_good, record_good
from fleet.live.gates import gate_timeout
from fleet.operator import decide_sync, operator_for
from fleet.output import Reporter
from fleet.registry.load import load_registry
from fleet.registry.model import RolloutSettings
from fleet.stepkit.journal import StepRecord
from fleet.stepkit.team import team_runs
from rollout.model import BringUp, Probe, SyncMode
from rollout.policy import Approval, approvals_in

__all__ = ["RealRolloutServices"]


class RealRolloutServices:
    def __init__(self, repo: Path, *, engine: EngineSettings) -> None:
        """``engine``: the Pulumi settings the caller resolved (the CLI, from the environment), also the DR
        pipeline's; nothing here reads the environment."""
        self.repo = repo
        self.real = RealServices(repo, engine=engine)
        self.git = self.real.git
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = None
        self.team = team_runs(engine)  # a shared backend: each cluster's lease and bring-up journal in its bucket

    def resolve(self, rev: str) -> tuple[str, str]:
        from fleet.verify import require

        sha = self.git.resolve(rev)
        require(self.git, sha)  # fleet.yaml's verify: refused before any wave (dry runs too)
        entry = self.git.log(rev=sha, max_count=1)
        return sha, entry[0].subject if entry else ""

    def select(self, selector: str | None, revision: str) -> list[tuple[str, int]]:
        return [(c.name, c.wave) for c in load_registry(self.git, revision).select(selector)]

    def last_good(self, cluster: str) -> str | None:
        rec = get_good(self.git, cluster)
        return rec.revision if rec else None

    def probe(self, cluster: str) -> Probe:
        from fleet.adapters.kube import FAST, Kube

        spec = self.real.registry().get(cluster)
        try:
            target = kubeconfig_for(spec)
        except InputError:
            return Probe(False, "no kubeconfig: not provisioned by fleet, no access in the registry")
        provisioned = target.source.startswith("provisioned")
        try:
            Kube.connect(target, policy=FAST, pool_size=4).server_version()
        except Unreachable as e:
            why = e.message.split(": ")[-1]
            if not provisioned:  # not fleet's to build: updating it fails plainly instead
                return Probe(True, f"registry access, but its API server does not answer ({why})")
            return Probe(False, f"its API server does not answer ({why})")
        except FleetError as e:
            return Probe(True, f"reachable ({e.message})")
        if provisioned:
            try:
                count = self._resource_counts().get(cluster)
            except PulumiError as e:
                return Probe(True, f"reachable; its Pulumi stack could not be read ({e.message})")
            if count is None:
                return Probe(False, "its Pulumi stack does not exist")
            if count == 0:
                return Probe(False, "its Pulumi stack has no resources")
        return Probe(True, f"reachable ({target.source.split(' (')[0]})")

    def _resource_counts(self) -> dict[str, int]:
        """The stacks and their resource counts, listed once for the whole rollout (one ``pulumi stack ls``;
        a cluster's own bring-up is the only thing that changes its stack meanwhile)."""
        with self._lock:
            if self._counts is None:
                self._counts = Engine(self.real.engine).resource_counts()
            return self._counts

    def bring_up(self, cluster: str, revision: str, *, sync: SyncMode, gate_timeout: float | None,
                 report_dir: Path, reporter: Reporter) -> BringUp:
        req = BootstrapRequest(repo=self.repo, cluster=cluster, to=revision, sync=sync, gate_timeout=gate_timeout,
                               report_dir=report_dir, team=self.team)
        res = run_bootstrap(req, self.real, reporter)
        if res.outcome == "already-recovered":
            return BringUp(True, f"already up at {revision[:12]}")
        report = res.report
        steps = tuple(
            StepRecord(s.name, s.state, None, None, s.duration_s, s.attempts, s.detail)  # type: ignore[arg-type]
            for s in (report.steps if report else ())
        )
        md = report.files.get("markdown") if report else None
        if res.outcome == "recovered":
            took = report.recovery_time_s if report else None
            return BringUp(True, f"brought up in {took or 0:.1f}s", steps, report=md)
        failure = (report.failure if report else None) or {}
        return BringUp(False, "the DR pipeline failed", steps, failure.get("step"),
                       res.error.message if res.error else failure.get("cause"), md)

    def sync_mode(self, cluster: str, requested: SyncMode) -> str:
        reg = self.real.registry()
        reg.get(cluster)  # NotFound, named
        # the rollout pins the operator through the cluster's stack before it syncs: installed by then
        return decide_sync(requested, operator_for(reg.settings), cluster).mode

    def gate_timeout(self, cluster: str) -> float:
        reg = self.real.registry()
        return float(gate_timeout(reg.settings, reg.get(cluster)))

    def pin_operator(self, cluster: str, revision: str, reporter: Reporter) -> str:
        return self.real.install_operator(cluster, revision, reporter)

    def sync(self, cluster: str, revision: str, mode: str, reporter: Reporter) -> str:
        return self.real.sync(cluster, revision, mode, reporter)

    def gates(self, cluster: str, revision: str, timeout: float, reporter: Reporter) -> tuple[dict[str, Any], ...]:
        return self.real.gates(cluster, revision, timeout, reporter)

    def record(self, cluster: str, revision: str, reason: str, gates: tuple[dict[str, Any], ...],
               duration_s: float) -> str:
        rec = record_good(self.git, cluster, revision, reason=reason, gates=list(gates), duration_s=duration_s)
        return f'last good of "{cluster}" is {rec.revision[:12]}'

    # -- policy ---------------------------------------------------------------------------------
    def at_revision(self, cluster: str, revision: str, mode: str) -> str | None:
        from fleet.adapters.kube import Kube
        from fleet.live.inventory import read_inventory

        kube = Kube.connect(kubeconfig_for(self.real.registry().get(cluster)))
        if mode == "operator":
            from fleet.operator import operator_for

            st = operator_for(self.real.registry().settings).read(kube)
            # Ready at the revision, re-checking it, or having applied its objects and checking their health
            # (the gates, which passed, judged them: fleet.operator.flux.gate); never the previous revision's
            if st.applied_at(revision) or st.rechecking(revision) or st.checking_health(revision):
                return None
            return f"its operator reports {st.summary()}"
        inv = read_inventory(kube)
        if inv is not None and inv.revision == revision and inv.state == "applied":
            return None
        return (f"fleet's inventory says {inv.revision[:12]} ({inv.state})" if inv is not None
                else "fleet never synced it")

    def bake(self, cluster: str, revision: str, mode: str, until: datetime, reporter: Reporter,
             cancel: threading.Event) -> str | None:
        from fleet.live.bake import hold_gates
        from fleet.operator import gate_config
        from fleet.rendering.cluster import render_cluster

        reg = self.real.registry()
        spec = reg.get(cluster)
        objects = render_cluster(self.git, cluster, revision).objects
        seconds = (until - datetime.now(UTC)).total_seconds()
        broken = hold_gates(kubeconfig_for(spec), objects, revision, gate_config(reg.settings, spec),
                            seconds=seconds, reporter=reporter, cancel=cancel)
        if broken is None:
            elsewhere = self.at_revision(cluster, revision, mode)  # still at the revision at the bake's end
            return None if elsewhere is None else f"no longer at {revision[:12]}: {elsewhere}"
        return f"{broken.object}: {broken.message}"

    def rollout_settings(self) -> RolloutSettings:
        return self.real.registry().settings.rollout

    def environments(self, revision: str) -> dict[str, str]:
        return {c.name: c.environment for c in load_registry(self.git, revision).clusters.values()}

    def identity(self) -> str:
        name, email = self.git.identity()
        return f"{name} <{email}>"

    def approvals(self, rollout_id: str, revision: str) -> list[Approval]:
        return approvals_in(self.git.note_show(revision), rollout_id, revision)
