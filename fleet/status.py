"""``fleet status``: where every cluster of the fleet stands, in one table.

Per cluster: desired revision (HEAD), applied revision (Flux's lastAppliedRevision where the operator
applies, else the inventory of fleet's direct sync), Flux's Ready message, last good revision
(Git), health (the gates of what the inventory lists, evaluated once, never waited for), drift (only
with ``drift=True``: a server-side dry run is expensive), and whether the API server answered.
Clusters are asked in parallel with a short connect timeout, so one that is down shows as
unreachable within seconds and never holds up the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.access import kubeconfig_for
from fleet.adapters.kube import FAST, Kube
from fleet.errors import FleetError, InputError, Unreachable
from fleet.good import get_good
from fleet.live.diff import diff
from fleet.live.gates import GateConfig, run_gates
from fleet.live.inventory import read_inventory
from fleet.live.objects import ObjectRef
from fleet.operator import AppliedState, Operator, gate_config, operator_for
from fleet.output import Reporter, SilentReporter
from fleet.registry.load import load_registry, open_repo
from fleet.registry.model import ClusterSpec, FleetSettings
from fleet.rendering.build import Rendered
from fleet.rendering.cluster import render_all
from fleet.sops import AgeKey, key_for

__all__ = ["ClusterStatus", "FleetStatus", "cluster_status", "fleet_status"]


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    environment: str
    region: str
    wave: int
    desired: str  # short sha of HEAD
    applied: str | None  # short sha the inventory records
    applied_state: str | None  # applied | applying
    last_good: str | None
    health: str  # healthy | progressing | unhealthy | unknown
    drift: str  # yes | no | unknown | - (not computed)
    reachable: str  # yes | no | no access
    message: str  # what is wrong, in a few words
    seconds: float
    applied_by: str = "-"  # fleet (direct sync, its inventory) | flux (the operator's own status) | -
    operator: str = "-"  # Flux's account: "Ready", "reconciling", "checking health", "not Ready: <its message>",
    # "not running", or -


@dataclass(frozen=True)
class FleetStatus:
    revision: str
    clusters: tuple[ClusterStatus, ...]
    duration_s: float


def _objects_of(refs: Iterable[ObjectRef]) -> list[dict[str, Any]]:
    """Objects as the gates read them, from their references (an inventory's, the operator's)."""
    return [
        {"apiVersion": e.api_version, "kind": e.kind,
         "metadata": {"name": e.name, **({"namespace": e.namespace} if e.namespace else {})}}
        for e in refs
    ]


def cluster_status(
    spec: ClusterSpec,
    settings: FleetSettings,
    head: str,
    *,
    last_good: str | None = None,
    rendered: Rendered | None = None,
    drift: bool = False,
    age_keys: Sequence[AgeKey] = (),
) -> ClusterStatus:
    """One cluster's row. Never raises for the cluster's own trouble: it goes into ``message``."""
    t0 = time.monotonic()

    def row(**kw: Any) -> ClusterStatus:
        base: dict[str, Any] = dict(
            name=spec.name, environment=spec.environment, region=spec.region, wave=spec.wave,
            desired=head[:12], applied=None, applied_state=None,
            last_good=last_good[:12] if last_good else None,
            health="unknown", drift="-" if not drift else "unknown", reachable="yes", message="",
        )
        base.update(kw)
        return ClusterStatus(**base, seconds=round(time.monotonic() - t0, 3))

    try:
        target = kubeconfig_for(spec)
    except InputError as e:
        return row(reachable="no access", message=e.message)
    op = operator_for(settings)
    try:
        kube = Kube.connect(target, policy=FAST, pool_size=4)
        inv = read_inventory(kube)
        flux = _operator(op, kube) if op.kind != "none" else None
    except Unreachable as e:
        return row(reachable="no", message=e.message.split(": ")[-1])
    except FleetError as e:
        return row(message=e.message)
    if flux is not None and flux[0].installed and (inv is None or flux[1]):
        return _operator_row(row, op, flux[0], flux[1], target, settings, spec, kube,
                             _drift(target, rendered, drift, age_keys, op))
    if inv is None:
        return row(message="never synced by fleet", drift=_drift(target, rendered, drift, age_keys, op))
    applied, state = inv.revision[:12], inv.state
    cfg: GateConfig = gate_config(settings, spec)
    cfg = GateConfig(operator=cfg.operator, operator_gate=cfg.operator_gate, custom=cfg.custom,
                     check_inventory=False)
    try:
        report = run_gates(target, _objects_of(inv.entries), inv.revision, cfg, timeout=0,
                           reporter=SilentReporter(), kube=kube)
    except FleetError as e:
        return row(applied=applied, applied_state=state, message=e.message)
    if report.passed:
        health, message = "healthy", ""
    else:
        bad = report.failures
        health = "unhealthy" if any(r.status == "failed" for r in bad) else "progressing"
        message = f"{bad[0].object}: {bad[0].message}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
    if state != "applied":
        unfinished = f"sync of {applied} did not finish"
        message = f"{unfinished}; {message}" if message else unfinished
    return row(applied=applied, applied_state=state, health=health, message=message,
               drift=_drift(target, rendered, drift, age_keys, op), applied_by="fleet")


def _operator(op: Operator, kube: Kube) -> tuple[AppliedState, bool]:
    """The operator's account of the cluster, and whether a controller reconciles it."""
    st = op.read(kube)
    return st, st.installed and op.runs(kube)[0]


def operator_word(st: AppliedState, current: str) -> str:
    """The operator's Ready in a word: Unknown is work in progress (its periodic re-check, a new revision being
    applied, or the health checks of what it applied), not a failure; only False quotes the operator's message."""
    if st.ready == "True":
        return "Ready"
    if st.ready == "False":
        return f"not Ready: {st.message or st.reason or '?'}"
    return "checking health" if st.checking_health(current) else "reconciling"


def _operator_row(row: Callable[..., ClusterStatus], op: Operator, st: AppliedState, runs: bool, target: Any,
                  settings: FleetSettings, spec: ClusterSpec, kube: Kube, drift: str) -> ClusterStatus:
    """The operator applies this cluster: the applied revision and health are the operator's own account."""
    if not runs:
        return row(applied=st.applied[:12] or None, applied_by=op.kind, operator="not running", health="unknown",
                   message=f"{op.title}'s controllers do not run (fleet local create restarts a local cluster's)",
                   drift=drift)
    # The cluster runs the objects of the revision Flux last applied, or of the one it attempted when it
    # applied its objects and only their health checks are running or failed.
    current = st.attempted if st.attempted and st.objects_applied(st.attempted) else st.applied
    operator = operator_word(st, current)
    if not current:
        return row(applied_by=op.kind, operator=operator, health="progressing",
                   message=st.message or st.source_message or f"{op.title} has applied nothing yet", drift=drift)
    cfg = gate_config(settings, spec, operator_gate="on")
    cfg = GateConfig(operator=cfg.operator, operator_gate="on", custom=cfg.custom, check_inventory=False,
                     recheck_is_ready=True)  # the operator re-checking what it applied: still healthy
    # While the operator checks the health of what it applied, the gates judge the objects it lists, as a
    # recovery's and a rollout's gates do (fleet.live.health.fleet_judges_all): the same answer a second later.
    checking = st.checking_health(current)
    objects = _objects_of(op.applied_refs(kube)) if checking else []
    try:
        report = run_gates(target, objects, current, cfg, timeout=0, reporter=SilentReporter(), kube=kube)
    except FleetError as e:
        return row(applied=current[:12], applied_by=op.kind, operator=operator, message=e.message, drift=drift)
    applied = st.applied_at(current) or st.rechecking(current) or (checking and report.passed)
    state = "applied" if applied else "applying"
    if report.passed:
        health, message = "healthy", ""
    else:
        bad = report.failures
        health = "unhealthy" if st.ready == "False" and st.reason != "Progressing" else "progressing"
        message = st.message or f"{bad[0].object}: {bad[0].message}"
    return row(applied=current[:12], applied_state=state, applied_by=op.kind, operator=operator,
               health=health, message=message, drift=drift)


def _drift(target: Any, rendered: Rendered | None, wanted: bool, age_keys: Sequence[AgeKey] = (),
           op: Operator | None = None) -> str:
    if not wanted:
        return "-"
    if rendered is None:
        return "unknown"
    try:
        result = diff(target, rendered.objects, rendered.revision, reporter=SilentReporter(), age_keys=age_keys,
                      via=op)
        return "yes" if result.drift else "no"
    except FleetError:
        return "unknown"


def fleet_status(
    repo: str | Path,
    *,
    selector: str | None = None,
    drift: bool = False,
    workers: int = 16,
    reporter: Reporter | None = None,
) -> FleetStatus:
    """Every (selected) cluster's status at HEAD of the fleet repo, asked in parallel."""
    t0 = time.monotonic()
    g = open_repo(repo)
    head = g.resolve("HEAD")
    registry = load_registry(g, head)
    specs: Sequence[ClusterSpec] = sorted(registry.select(selector), key=lambda c: (c.wave, c.name))
    goods = {}
    for s in specs:
        rec = get_good(g, s.name)
        goods[s.name] = rec.revision if rec else None
    rendered: dict[str, Rendered] = {}
    if drift and specs:
        try:
            rendered = {r.cluster: r for r in render_all(g, head, names=[s.name for s in specs])}
        except FleetError as e:
            if reporter is not None:
                reporter.warn(f"drift unknown: {e.message}")
    keys: list[AgeKey] = []
    if rendered and registry.settings.secrets.sops is not None:
        try:  # a fleet that uses SOPS: compared decrypted in memory, as `fleet diff` does
            key = key_for(registry.settings, g.root)
            keys = [key] if key else []
        except FleetError as e:
            if reporter is not None:
                reporter.warn(f"drift of encrypted Secrets unknown: {e.message}")
    if reporter is not None:
        reporter.step(f"asking {len(specs)} clusters")

    def one(spec: ClusterSpec) -> ClusterStatus:
        return cluster_status(spec, registry.settings, head, last_good=goods.get(spec.name),
                              rendered=rendered.get(spec.name), drift=drift, age_keys=keys)

    if len(specs) > 1:
        size = max(1, min(workers, len(specs)))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="status") as pool:
            rows = list(pool.map(one, specs))
    else:
        rows = [one(s) for s in specs]
    return FleetStatus(revision=head, clusters=tuple(rows), duration_s=round(time.monotonic() - t0, 3))
