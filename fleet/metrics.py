"""``fleet metrics``: the fleet in Prometheus text format, for a node-exporter textfile collector or a push
gateway. Written with the Prometheus Python client (``prometheus_client``), so the output is what its
own parser reads.

Per cluster (label ``cluster``, plus ``environment``):

    fleet_drill_last_pass_timestamp_seconds  when the last passing drill started (absent: never passed)
    fleet_drill_recovery_seconds             the newest drill's recovery time
    fleet_drill_ok                           1 unless the drill column says failed, over-rto, stale, or never
                                             with an objective declared (what ``fleet status --check`` fails on)
    fleet_recovery_objective_seconds         the declared rto (absent: none declared)
    fleet_drill_interval_seconds             the declared drill_every
    fleet_last_good_age_seconds              seconds since the cluster's last good was recorded
    fleet_cluster_reachable                  1 when its API server answered
    fleet_at_desired_revision                1 when it runs HEAD's revision
    fleet_operator_ready                     1 when its operator's Kustomization is Ready (absent: no operator)
    fleet_drift_objects                      with --drift: objects that differ from HEAD's render
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.drills import DrillState, drill_records, drill_state, latest_records, objective_for
from fleet.errors import FleetError
from fleet.good import get_good
from fleet.operator import operator_for
from fleet.output import Reporter, SilentReporter
from fleet.registry.load import load_registry, open_repo

if TYPE_CHECKING:
    from fleet.adapters.git import GitRepo
    from fleet.sops import AgeKey

__all__ = ["ClusterMetrics", "cluster_metrics", "metrics_text"]


@dataclass(frozen=True)
class ClusterMetrics:
    cluster: str
    environment: str
    drill: DrillState
    rto_s: int | None
    drill_every_s: int | None
    last_good_age_s: float | None
    reachable: bool | None  # None: not asked
    at_desired: bool | None
    operator_ready: bool | None
    drift_objects: int | None


def cluster_metrics(repo: str | Path, *, selector: str | None = None, live: bool = True, drift: bool = False,
                    reporter: Reporter | None = None, now: datetime | None = None) -> list[ClusterMetrics]:
    """The metrics of every (selected) cluster; ``live`` asks the clusters (``fleet status``), ``drift``
    counts the objects that drift from HEAD's render (a server-side dry run per cluster)."""
    now = now or datetime.now(UTC)
    g = open_repo(repo)
    head = g.resolve("HEAD")
    reg = load_registry(g, head)
    wt = load_registry(g)  # objectives as the working tree declares them, as `fleet drill` reads them
    specs = sorted(reg.select(selector), key=lambda c: (c.wave, c.name))
    by_cluster = latest_records(drill_records(g))
    rows = {}
    if live:
        from fleet.status import fleet_status

        rows = {c.name: c for c in fleet_status(g.root, selector=selector, reporter=reporter).clusters}
    counts = _drift_counts(g, head, [s.name for s in specs], reporter) if drift else {}
    out: list[ClusterMetrics] = []
    for spec in specs:
        current = wt.clusters.get(spec.name, spec)
        objective = objective_for(wt.settings, current)
        good = get_good(g, spec.name)
        row = rows.get(spec.name)
        out.append(ClusterMetrics(
            cluster=spec.name, environment=spec.environment,
            drill=drill_state(by_cluster.get(spec.name, []), objective, now),
            rto_s=objective.rto_s if objective else None,
            drill_every_s=objective.drill_every_s if objective else None,
            last_good_age_s=round((now - good.recorded_at).total_seconds(), 3) if good else None,
            reachable=(row.reachable == "yes") if row is not None else None,
            at_desired=(row.applied == head[:12] and row.applied_state != "applying") if row is not None else None,
            operator_ready=(None if row is None or row.operator == "-" else row.operator == "Ready"),
            drift_objects=counts.get(spec.name),
        ))
    return out


def _drift_counts(g: GitRepo, head: str, names: Sequence[str], reporter: Reporter | None) -> dict[str, int]:
    from fleet.access import kubeconfig_for
    from fleet.live.diff import diff
    from fleet.rendering.cluster import render_all

    reg = load_registry(g, head)
    out: dict[str, int] = {}
    try:
        rendered = render_all(g, head, names=list(names))
    except FleetError as e:
        if reporter is not None:
            reporter.warn(f"drift unknown: {e.message}")
        return out
    keys: list[AgeKey] = []
    if reg.settings.secrets.sops is not None:
        from fleet.sops import key_for

        try:
            key = key_for(reg.settings, reg.root)
            keys = [key] if key else []
        except FleetError:
            pass
    for r in rendered:
        try:
            res = diff(kubeconfig_for(reg.get(r.cluster)), r.objects, r.revision, reporter=SilentReporter(),
                       age_keys=keys, via=operator_for(reg.settings))  # as the fleet's operator applies it
        except FleetError as e:
            if reporter is not None:
                reporter.warn(f"{r.cluster}: drift unknown: {e.message}")
            continue
        out[r.cluster] = res.create + res.update + res.prune
    return out


def metrics_text(rows: Sequence[ClusterMetrics]) -> str:
    """``rows`` in the Prometheus text exposition format (version 0.0.4)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    labels = ["cluster", "environment"]

    def gauge(name: str, doc: str) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    last_pass = gauge("fleet_drill_last_pass_timestamp_seconds", "When the last passing DR drill started (Unix time).")
    recovery = gauge("fleet_drill_recovery_seconds", "The newest DR drill's recovery time.")
    ok = gauge("fleet_drill_ok", "1 unless the cluster's drills are failed, over their objective, stale, or never "
                                 "passed while an objective is declared.")
    rto = gauge("fleet_recovery_objective_seconds", "The declared recovery time objective (rto).")
    every = gauge("fleet_drill_interval_seconds", "The declared drill interval (drill_every).")
    good_age = gauge("fleet_last_good_age_seconds", "Seconds since the cluster's last good revision was recorded.")
    reachable = gauge("fleet_cluster_reachable", "1 when the cluster's API server answered.")
    desired = gauge("fleet_at_desired_revision", "1 when the cluster runs the fleet repo's HEAD revision.")
    operator = gauge("fleet_operator_ready", "1 when the cluster's GitOps operator is Ready.")
    drifting = gauge("fleet_drift_objects", "Objects that differ from what HEAD renders for the cluster.")
    for m in rows:
        lv = (m.cluster, m.environment)
        st = m.drill
        if st.last_pass is not None:
            last_pass.labels(*lv).set(st.last_pass.started_at.timestamp())
        if st.last is not None and st.last.recovery_s is not None:
            recovery.labels(*lv).set(st.last.recovery_s)
        ok.labels(*lv).set(0 if st.bad else 1)
        if m.rto_s is not None:
            rto.labels(*lv).set(m.rto_s)
        if m.drill_every_s is not None:
            every.labels(*lv).set(m.drill_every_s)
        if m.last_good_age_s is not None:
            good_age.labels(*lv).set(m.last_good_age_s)
        for g, v in ((reachable, m.reachable), (desired, m.at_desired), (operator, m.operator_ready)):
            if v is not None:
                g.labels(*lv).set(1 if v else 0)
        if m.drift_objects is not None:
            drifting.labels(*lv).set(m.drift_objects)
    return generate_latest(registry).decode()
