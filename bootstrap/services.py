"""The real services of the DR pipeline: the registry, the Pulumi program, the live layer.

This is the only place the pipeline meets the world; each method is idempotent, so a step that
is run again after a crash does no harm.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bootstrap.pipeline import Plan, Resolved, SyncMode
from clusters import program as cluster_program
from fleet import provision as prov
from fleet.access import kubeconfig_for
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.errors import FleetError, GateFailed, InputError
from fleet.good import get_good, history, record_good
from fleet.live.apply import hand_over
from fleet.live.apply import sync as live_sync
from fleet.live.gates import gate_timeout, run_gates
from fleet.live.inventory import read_inventory
from fleet.operator import decide_sync, gate_config, operator_for
from fleet.output import Reporter, SilentReporter
from fleet.registry.load import Registry, load_registry, open_repo
from fleet.rendering.build import Rendered, overlay_dir
from fleet.rendering.cluster import render_cluster
from fleet.sops import key_for, require_intact, require_intact_commit

__all__ = ["RealServices"]

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CustomResourceDefinition")


class RealServices:
    """The DR pipeline's services on the real world. ``engine``: where the Pulumi state is and how it is
    encrypted, resolved by the caller (the CLI, from the environment); nothing here reads the environment."""

    def __init__(self, repo: Path, *, engine: EngineSettings) -> None:
        self.repo = repo
        self.engine = engine
        self.git = open_repo(repo)
        self.verified: dict[str, str] = {}  # revision -> who signed it (fleet.yaml's verify:)
        # cluster -> the revision its stack's last update (this process's provision step) pinned the operator to,
        # read from that update's outputs
        self.pinned: dict[str, str] = {}

    # -- helpers --------------------------------------------------------------------------
    def registry(self) -> Registry:
        return load_registry(self.git)

    def select(self, selector: str | None) -> list[str]:
        return [c.name for c in self.registry().select(selector)]

    def resolve_rev(self, rev: str) -> str:
        return self.git.resolve(rev)

    def _rendered(self, cluster: str, revision: str) -> Rendered:
        return render_cluster(self.git, cluster, revision)

    # -- the steps --------------------------------------------------------------------------
    def resolve(self, cluster: str, to: str | None) -> Resolved:
        self.registry().get(cluster)  # NotFound with a hint, before anything else
        if to is not None:
            sha = self.git.resolve(to)  # NotFound: revision "x" not found
            source = "--to"
        else:
            good = get_good(self.git, cluster)
            if good is None:
                candidates = [f"{h.revision[:12]} {h.subject}" for h in history(self.git, cluster, limit=3)]
                raise InputError(
                    f'cluster "{cluster}" has no last good revision to rebuild at',
                    hint="name one with --to REV"
                    + (f"; recent changes: {'; '.join(candidates)}" if candidates else "")
                    + f" (see `fleet history {cluster}`)",
                )
            sha, source = good.revision, "last good"
        from fleet.verify import require

        signed = require(self.git, sha)  # fleet.yaml's verify: refused here, before anything is created
        if signed is not None:
            self.verified[sha] = signed.describe()
        entry = self.git.log(rev=sha, max_count=1)
        return Resolved(sha, source, entry[0].subject if entry else "")

    def plan(self, cluster: str, resolved: Resolved, sync_mode: SyncMode, gate_timeout_s: float | None) -> Plan:
        reg = self.registry()
        spec = reg.get(cluster)
        rendered = self._rendered(cluster, resolved.revision)  # an overlay kustomize rejects fails here
        # Provider settings, the operator's git URL and manifest source: refused now, not mid-run.
        cluster_program.check(prov.stack_config(self.git, cluster, pin_revision=resolved.revision))
        op = operator_for(reg.settings)
        decision = decide_sync(sync_mode, op, cluster)  # the operator is installed by this run
        mode = decision.mode
        notes: list[str] = [f"sync {mode}: {decision.reason}", *op.plan_notes(spec.provider)]
        if resolved.revision in self.verified:
            notes.append(self.verified[resolved.revision])
        kinds = Counter(o.get("kind", "?") for o in rendered.objects)
        gates = [f"{n} {k} rollout" if k != "CustomResourceDefinition" else f"{n} CRD established"
                 for k, n in sorted(kinds.items()) if k in _WORKLOADS]
        gates.append(f"inventory at {resolved.revision[:12]}")
        cfg = gate_config(reg.settings, spec)
        gates += [f"custom: {g.kind}/{g.name} {g.condition}={g.status}" for g in cfg.custom]
        if mode == "operator":
            gates.append("operator: Kustomization Ready at the revision")
        rendered_from = spec.source.flux if spec.source else overlay_dir(spec.environment, reg.layout)
        creates = [f"Pulumi stack \"{cluster}\" ({spec.provider} cluster in {spec.region}, refreshed first)"]
        # The fleet uses SOPS: the age key must be at hand now (exit 2, nothing created), and the plan
        # names its public recipient, never the key.
        age_key = key_for(reg.settings, self.git.root)
        # a commit whose SOPS MACs do not verify is refused here, before a pin could move to it
        require_intact(rendered.objects, [age_key] if age_key else [], f"commit {resolved.revision[:12]}")
        if age_key is not None and op.takes_age_key:
            creates.append(f"Secret flux-system/sops-age: the age identity of {age_key.recipient} "
                           f"(from {age_key.source}); {op.title} decrypts SOPS secrets with it")
        elif age_key is not None:
            creates.append(f"SOPS secrets decrypted in memory by fleet with the age identity of {age_key.recipient}")
        creates += op.plan_lines(spec, resolved.revision, rendered_from, reg.settings.operator.source)
        if mode == "direct":
            creates.append(f"{len(rendered.objects)} objects applied by fleet (server-side apply, inventory, prune)")
        else:
            creates.append(f"{len(rendered.objects)} objects fetched and applied by {op.title} "
                           f"at {resolved.revision[:12]}")
        return Plan(
            cluster=cluster, provider=spec.provider, region=spec.region, environment=spec.environment,
            revision=resolved.revision, revision_source=resolved.source, revision_subject=resolved.subject,
            sync_mode=mode, stack=cluster, creates=tuple(creates), objects=len(rendered.objects),
            gates=tuple(gates),
            gate_timeout_s=float(gate_timeout_s if gate_timeout_s is not None else gate_timeout(reg.settings, spec)),
            budgets={}, notes=tuple(notes), rendered_from=rendered_from,
        )

    def already_recovered(self, cluster: str, revision: str) -> bool:
        """Reachable, inventory applied at ``revision``, and every gate passing right now."""
        from fleet.adapters.kube import Kube

        try:
            reg = self.registry()
            spec = reg.get(cluster)
            target = kubeconfig_for(spec)
            kube = Kube.connect(target)
            op = operator_for(reg.settings)
            if op.kind != "none":
                st = op.read(kube)  # applied at the revision; its health checks may still run: the gates judge
                if not (st.applied_at(revision) or st.checking_health(revision)):
                    return False
            else:
                inv = read_inventory(kube)
                if inv is None or inv.revision != revision or inv.state != "applied":
                    return False
            report = run_gates(target, self._rendered(cluster, revision).objects, revision,
                               gate_config(reg.settings, spec), timeout=0, reporter=SilentReporter())
            return report.passed
        except FleetError:
            return False

    def provision(self, cluster: str, revision: str, reporter: Reporter) -> str:
        res = prov.provision(self.git, cluster, program=cluster_program, reporter=reporter,
                             pin_revision=revision, refresh=True, phase="cluster", engine=self.engine)
        self.note_pinned(cluster, revision, res.outputs)
        return _changes("cluster", res.changes, res.duration_s)

    def note_pinned(self, cluster: str, revision: str, outputs: dict[str, Any]) -> None:
        """Keep what a provision's update said of the operator (its outputs), for the operator step."""
        if prov.operator_pinned(outputs, operator_for(self.registry().settings).kind, revision):
            self.pinned[cluster] = revision

    def install_operator(self, cluster: str, revision: str, reporter: Reporter) -> str:
        op = operator_for(self.registry().settings)
        if op.kind == "none":
            return "no operator (fleet.yaml operator.kind none)"
        # the pin moves only to a commit whose SOPS MACs verify (a rollout's pin step, a resumed bootstrap)
        require_intact_commit(self.registry().settings, self.git.root, self._rendered(cluster, revision).objects,
                              f"commit {revision[:12]}")
        if self._operator_pinned(cluster, op.kind, revision):
            # The provision step brought the whole stack up (a stack that had its operator, or a drill's new
            # scratch stack): a second update would report no changes. Its controllers run, as after an update.
            prov.ensure_local_controllers(self.git.root, cluster, reporter)
            return (f"operator pinned to {revision[:12]}: installed by the provision step's update "
                    "(the stack's outputs say so), no second update")
        res = prov.provision(self.git, cluster, program=cluster_program, reporter=reporter, pin_revision=revision,
                             engine=self.engine)
        return _changes(f"operator pinned to {revision[:12]}", res.changes, res.duration_s)

    def _operator_pinned(self, cluster: str, kind: str, revision: str) -> bool:
        """The stack's outputs (its last update's) say the operator is installed and pinned to ``revision``."""
        if self.pinned.get(cluster) == revision:  # the outputs of this process's provision step
            return True
        try:
            outputs = prov.stack_outputs(cluster, engine=self.engine, show_secrets=False)
        except FleetError:
            return False  # no stack yet, or its outputs unreadable: the update decides
        return prov.operator_pinned(outputs, kind, revision)

    def sync(self, cluster: str, revision: str, mode: str, reporter: Reporter) -> str:
        reg = self.registry()
        spec = reg.get(cluster)
        target = kubeconfig_for(spec)
        if mode == "operator":
            op = operator_for(reg.settings)
            said = op.wait_applied(target, revision, timeout=gate_timeout(reg.settings, spec), reporter=reporter)
            handed = hand_over(target, reporter)
            return said + (f"; {handed}" if handed else "")
        rendered = self._rendered(cluster, revision)
        key = key_for(reg.settings, self.git.root)
        res = live_sync(target, rendered.objects, revision, prune=True, reporter=reporter,
                        age_keys=[key] if key else ())
        return f"{len(rendered.objects)} objects applied at {revision[:12]}" + (
            f", {len(res.pruned)} pruned" if res.pruned else "")

    def gates(self, cluster: str, revision: str, timeout: float, reporter: Reporter) -> tuple[dict[str, Any], ...]:
        reg = self.registry()
        spec = reg.get(cluster)
        target = kubeconfig_for(spec)
        report = run_gates(target, self._rendered(cluster, revision).objects, revision,
                           gate_config(reg.settings, spec), timeout=timeout, reporter=reporter)
        results = tuple(
            {"name": f"{r.gate} {r.object}", "passed": r.status in ("passed", "skipped"), "status": r.status,
             "detail": r.message + ("; " + "; ".join(r.details) if r.details else "")}
            for r in report.results
        )
        if not report.passed:
            bad = [r for r in report.results if r.status in ("failed", "waiting")]
            err = GateFailed(
                f"{len(bad)} of {len(report.results)} gates failed: "
                + "; ".join(f"{r.object}: {r.message}" for r in bad[:3]),
                hint=f"inspect with `fleet gate {cluster}`; rebuild at another revision with --to REV",
            )
            err.results = results  # type: ignore[attr-defined]  # the report shows every gate
            raise err
        return results

    def record(self, cluster: str, revision: str, run_id: str, gates: tuple[dict[str, Any], ...],
               duration_s: float) -> str:
        rec = record_good(self.git, cluster, revision, reason=f"fleet bootstrap (run {run_id})",
                          gates=list(gates), duration_s=round(duration_s, 3))
        return f"last good of \"{cluster}\" is {rec.revision[:12]}"


def _changes(what: str, changes: dict[str, int], seconds: float) -> str:
    parts = ", ".join(f"{n} {k}" for k, n in sorted(changes.items()) if n and k != "same") or "no changes"
    return f"{what}: {parts} ({seconds:.1f}s)"

