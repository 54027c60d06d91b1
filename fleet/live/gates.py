"""``fleet gate``: is the cluster healthy at the expected revision?

Gates: rollout complete for Deployments, StatefulSets and DaemonSets; Jobs complete; CRDs
Established; the inventory says the expected revision was applied; the operator's Kustomizations
Ready at that revision (Flux, when it is the fleet's operator, its CRDs exist and its controllers
actually run: ``operator_gate="auto"``; ``"on"`` requires it, ``"off"`` skips it); and the custom
gates of the registry (a condition on any object).

Waiting is watch-driven with one deadline (:class:`fleet.live.watch.Watcher`); a terminal failure
(a failed Job, a Deployment past its progress deadline) ends it early. ``timeout=0`` evaluates once.
What failed comes with the object's conditions and recent Events (and its pods', for workloads).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import GateFailed
from fleet.live import health as h
from fleet.live.inventory import INVENTORY_NAME, INVENTORY_NAMESPACE
from fleet.live.objects import ObjectRef
from fleet.live.watch import Key, Query, Snapshot, Watcher, queries_for, snapshot_once
from fleet.output import Reporter
from fleet.registry.model import ClusterSpec, CustomGate, FleetSettings

__all__ = ["GateConfig", "GateReport", "GateResult", "gate_config", "run_gates"]

FLUX_API = "kustomize.toolkit.fluxcd.io/v1"


@dataclass(frozen=True)
class GateConfig:
    operator: str = "none"  # the fleet's operator: "flux" | "none"
    operator_gate: str = "auto"  # "auto" | "on" | "off"
    custom: tuple[CustomGate, ...] = ()
    check_inventory: bool = True
    flux_namespace: str = "flux-system"
    # A look, not a gate (``fleet status``): a Kustomization re-checking the very revision it last applied
    # and found healthy (Flux does so every interval; Ready is Unknown, "Reconciliation in progress", for
    # that moment) counts as ready. Gates that decide a rollout or a recovery wait for Flux's fresh word.
    recheck_is_ready: bool = False


def gate_config(settings: FleetSettings, cluster: ClusterSpec | None = None, *,
                operator_gate: str | None = None) -> GateConfig:
    """The gates the registry declares for ``cluster`` (fleet-wide custom gates, then its own); the
    operator gate as ``operator_gate`` says, else the cluster's ``gates.operator``, else fleet.yaml's."""
    custom = tuple(settings.gates.custom)
    mode: str = settings.gates.operator
    if cluster is not None and cluster.gates is not None:
        custom += tuple(cluster.gates.custom)
        if "operator" in cluster.gates.model_fields_set:  # said in the cluster's file, not a default
            mode = cluster.gates.operator
    return GateConfig(operator=settings.operator.kind, operator_gate=operator_gate or mode, custom=custom)


def gate_timeout(settings: FleetSettings, cluster: ClusterSpec | None = None) -> int:
    """Seconds all gates may take together, as the registry says."""
    if cluster is not None and cluster.gates is not None and "timeout" in cluster.gates.model_fields_set:
        return cluster.gates.timeout
    return settings.gates.timeout


@dataclass(frozen=True)
class GateResult:
    gate: str  # rollout | job | crd | inventory | operator | custom
    object: str
    status: str  # passed | waiting | failed | skipped
    message: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateReport:
    cluster: str
    revision: str
    passed: bool
    timed_out: bool
    duration_s: float
    results: tuple[GateResult, ...]

    @property
    def failures(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if r.status in ("failed", "waiting"))

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    def raise_for_failure(self) -> None:
        if self.passed:
            return
        bad = self.failures
        first = "; ".join(f"{r.object}: {r.message}" for r in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        why = "timed out" if self.timed_out else "failed"
        gates = f"{len(bad)} gate{'s' if len(bad) != 1 else ''}"
        raise GateFailed(f'cluster "{self.cluster}": {gates} {why} at {self.revision[:12]}: {first}{more}')


@dataclass(frozen=True)
class _Gate:
    gate: str
    label: str
    evaluate: Callable[[Snapshot], h.Health]
    key: Key | None = None


def _workload_gate(ref: ObjectRef) -> _Gate:
    names = {"Deployment": "rollout", "StatefulSet": "rollout", "DaemonSet": "rollout", "Job": "job",
             "CustomResourceDefinition": "crd"}
    return _Gate(names[ref.kind], str(ref), lambda s: h.health_of(ref.group, ref.kind, s.get(ref.key)),
                 ref.key)


def _inventory_gate(revision: str) -> _Gate:
    key: Key = ("", "ConfigMap", INVENTORY_NAMESPACE, INVENTORY_NAME)

    def evaluate(s: Snapshot) -> h.Health:
        cm = s.get(key)
        if cm is None:
            return h.Health(h.WAITING, "no inventory: fleet never synced this cluster")
        data = cm.get("data") or {}
        applied, state = str(data.get("revision", "")), str(data.get("state", ""))
        if not applied or not (applied.startswith(revision) or revision.startswith(applied)):
            return h.Health(h.WAITING, f"applied revision is {applied[:12] or 'none'} ({state}), "
                                       f"expected {revision[:12]}")
        if state != "applied":
            return h.Health(h.WAITING, f"revision {revision[:12]} is {state}: a sync is running or failed")
        return h.Health(h.OK, f"revision {revision[:12]} applied at {data.get('time', '?')}")

    return _Gate("inventory", f"ConfigMap/{INVENTORY_NAMESPACE}/{INVENTORY_NAME}", evaluate, key)


def _from_fleet_repo(k: Mapping[str, Any]) -> bool:
    """Whether a Flux Kustomization applies the fleet repo (fleet's ``fleet`` GitRepository, or the
    ``flux-system`` one of an adopted Flux repo); one of an OCI artifact or another repository is only
    required Ready (docs/adopting.md)."""
    ref = (k.get("spec") or {}).get("sourceRef") or {}
    return ref.get("kind", "GitRepository") == "GitRepository" and ref.get("name") in ("fleet", "flux-system")


def _rechecking(k: Mapping[str, Any], revision: str) -> bool:
    """Flux is re-reconciling ``revision``, which it last applied with its health checks passed (it sets
    ``lastAppliedRevision`` only then) and is the one it attempts now: not a new revision in progress
    (:meth:`fleet.live.flux.FluxStatus.rechecking` says the same of fleet's own Kustomization)."""
    st = k.get("status") or {}
    ready = h.condition(k, "Ready") or {}
    applied, attempted = str(st.get("lastAppliedRevision") or ""), str(st.get("lastAttemptedRevision") or "")
    return (ready.get("status") == "Unknown" and ready.get("reason") == "Progressing"
            and revision in applied and applied == attempted)


def _operator_gate(revision: str, namespace: str, *, recheck_is_ready: bool = False) -> _Gate:
    def evaluate(s: Snapshot) -> h.Health:
        ks = [o for k, o in s.items() if k[0] == "kustomize.toolkit.fluxcd.io" and k[1] == "Kustomization"
              and k[2] == namespace]
        if not ks:
            return h.Health(h.WAITING, f"no Flux Kustomization in {namespace}")
        for k in ks:
            name = k["metadata"]["name"]
            ready = h.condition(k, "Ready")
            applied = str((k.get("status") or {}).get("lastAppliedRevision") or "")
            if recheck_is_ready and _rechecking(k, revision):
                continue
            if not ready or ready.get("status") != "True":
                msg = (ready or {}).get("message", "no Ready condition yet")
                return h.Health(h.WAITING, f"Kustomization {name} not ready: {msg}")
            if revision not in applied and _from_fleet_repo(k):  # another source has its own revisions
                return h.Health(h.WAITING, f"Kustomization {name} applied {applied or 'nothing'}, "
                                           f"expected {revision[:12]}")
        return h.Health(h.OK, f"{len(ks)} Kustomizations ready at {revision[:12]}")

    return _Gate("operator", f"Kustomization/{namespace}/*", evaluate)


def _custom_ref(g: CustomGate) -> ObjectRef:
    meta = {"name": g.name, "namespace": g.namespace}
    manifest = {"apiVersion": g.apiVersion, "kind": g.kind, "metadata": meta}
    return ObjectRef.of(manifest, namespaced=g.namespace is not None)


def _custom_gate(g: CustomGate) -> _Gate:
    ref = _custom_ref(g)
    return _Gate("custom", f"{ref} {g.condition}={g.status}",
                 lambda s: h.custom(s[ref.key], g.condition, g.status) if ref.key in s
                 else h.Health(h.WAITING, "not found in the cluster"), ref.key)


def _recent(ts: Any, seconds: float) -> bool:
    try:
        when = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (datetime.now(UTC) - when).total_seconds() < seconds


def operator_runs(kube: Kube, namespace: str = "flux-system") -> tuple[bool, str]:
    """Whether Flux's controllers run on this cluster: a fresh leader lease, or status they wrote."""
    if kube.find_resource(FLUX_API, "Kustomization") is None:
        return False, "the Flux Kustomization CRD is not installed"
    for lease in kube.list_objects("coordination.k8s.io/v1", "Lease", namespace=namespace).items:
        name = lease["metadata"]["name"]
        if "kustomize-controller" in name and _recent((lease.get("spec") or {}).get("renewTime"), 120):
            return True, f"lease {name} is held"
    for k in kube.list_objects(FLUX_API, "Kustomization", namespace=namespace).items:
        status = k.get("status") or {}
        seen = status.get("observedGeneration")
        # The CRD defaults observedGeneration to -1 until a reconcile finished; a controller at work on
        # its first one has written its conditions (and the revision it attempts) already.
        if (isinstance(seen, int) and seen >= 1) or status.get("conditions") or status.get("lastAttemptedRevision"):
            return True, "Kustomizations carry controller status"
    return False, "the Flux controllers are not running (no fresh leader lease, no Kustomization status)"


def _details(kube: Kube, gate: _Gate, snap: Snapshot) -> tuple[str, ...]:
    """Conditions and recent Events of the object, and of a few of its pods that are not ready."""
    if gate.key is None:
        return ()
    obj = snap.get(gate.key)
    if obj is None:
        return ()
    _, kind, ns, name = gate.key
    out = [f"condition {c}" for c in h.condition_lines(obj)]
    out += [f"event {e}" for e in kube.events_for(kind, name, ns or None, limit=3)]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job") and selector:
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = kube.list_objects("v1", "Pod", namespace=ns, label_selector=sel).items
        unready = [p for p in pods if (h.condition(p, "Ready") or {}).get("status") != "True"]
        for p in unready[:2]:
            pname = p["metadata"]["name"]
            phase = (p.get("status") or {}).get("phase", "?")
            out.append(f"pod {pname}: {phase}")
            out += [f"pod {pname} condition {c}" for c in h.condition_lines(p) if "=True" not in c]
            out += [f"pod {pname} event {e}" for e in kube.events_for("Pod", pname, ns, limit=3)]
    return tuple(out)


def _gates(objects: Iterable[Mapping[str, Any]], revision: str, cfg: GateConfig, kube: Kube,
           reporter: Reporter) -> tuple[list[_Gate], list[Query], list[GateResult]]:
    gates: list[_Gate] = []
    refs: list[ObjectRef] = []
    skipped: list[GateResult] = []
    seen: set[Key] = set()
    for obj in objects:
        ref = ObjectRef.of(obj)
        if (ref.group, ref.kind) in h.workload_kinds and ref.key not in seen:
            seen.add(ref.key)
            refs.append(ref)
            gates.append(_workload_gate(ref))
    label = f"Kustomization/{cfg.flux_namespace}/*"
    operator = False
    if cfg.operator != "flux" or cfg.operator_gate == "off":
        why = "turned off" if cfg.operator == "flux" else f'the fleet\'s operator is "{cfg.operator}"'
        skipped.append(GateResult("operator", label, "skipped", why))
    else:
        operator, why = (True, "required") if cfg.operator_gate == "on" \
            else operator_runs(kube, cfg.flux_namespace)
        if operator:
            gates.append(_operator_gate(revision, cfg.flux_namespace, recheck_is_ready=cfg.recheck_is_ready))
        else:
            skipped.append(GateResult("operator", label, "skipped", why))
            reporter.warn(f"operator gate skipped: {why}")
    inventory_label = f"ConfigMap/{INVENTORY_NAMESPACE}/{INVENTORY_NAME}"
    if cfg.check_inventory and not operator:
        gates.append(_inventory_gate(revision))
        refs.append(ObjectRef("", "v1", "ConfigMap", INVENTORY_NAMESPACE, INVENTORY_NAME))
    elif cfg.check_inventory:  # the operator applies: its Kustomizations say which revision is applied
        skipped.append(GateResult("inventory", inventory_label, "skipped",
                                  "the operator applies this cluster: the operator gate checks the revision"))
    for g in cfg.custom:
        gate = _custom_gate(g)
        gates.append(gate)
        refs.append(_custom_ref(g))
    queries = queries_for(refs)
    if operator:
        queries.append(Query(FLUX_API, "Kustomization", cfg.flux_namespace))
    return gates, queries, skipped


def run_gates(
    target: KubeTarget,
    objects: Iterable[Mapping[str, Any]],
    revision: str,
    settings: GateConfig,
    *,
    timeout: float,
    reporter: Reporter,
    kube: Kube | None = None,
) -> GateReport:
    """Evaluate the gates of ``objects`` (the rendered revision) until all pass, one fails for good,
    or ``timeout`` seconds pass (0: evaluate once). Never raises for failed gates: see
    :meth:`GateReport.raise_for_failure`."""
    t0 = time.monotonic()
    kube = kube or Kube.connect(target)
    gates, queries, skipped = _gates(objects, revision, settings, kube, reporter)
    timed_out = False
    if timeout <= 0:
        snap = snapshot_once(kube, queries)
    else:
        reporter.wait(f'waiting for {len(gates)} gates on "{target.cluster}" at {revision[:12]} '
                      f"(timeout {timeout:.0f}s)")
        passed: set[int] = set()

        def done(s: Snapshot) -> bool:
            """Every gate passes in one and the same snapshot (or one failed for good). A gate that passed
            earlier does not count: an object can pass on its previous spec and start rolling out when the
            operator applies the revision later (a Flux Kustomization that waited for its dependencies)."""
            terminal, every = False, True
            for i, g in enumerate(gates):
                hh = g.evaluate(s)
                if hh.ok and i not in passed:
                    passed.add(i)
                    reporter.ok(f"{g.label}: {hh.message}")
                every = every and hh.ok
                terminal = terminal or hh.state == h.FAILED
            return terminal or every

        with Watcher(kube, queries, deadline=t0 + timeout) as w:
            finished = w.wait(done)
            snap = dict(w.snapshot)
        timed_out = not finished
    results: list[GateResult] = []
    for g in gates:
        hh = g.evaluate(snap)
        if hh.ok:
            results.append(GateResult(g.gate, g.label, "passed", hh.message))
            continue
        status = "failed" if hh.state == h.FAILED or timeout > 0 else "waiting"
        message = f"did not pass within {timeout:.0f}s: {hh.message}" if timed_out and hh.state != h.FAILED \
            else hh.message
        details = _details(kube, g, snap) if timeout > 0 else ()
        results.append(GateResult(g.gate, g.label, status, message, details))
        if timeout > 0:
            reporter.fail(f"{g.label}: {message}")
            for d in details:
                reporter.fail(f"  {d}")
    results += skipped
    report = GateReport(
        cluster=target.cluster, revision=revision,
        passed=all(r.status in ("passed", "skipped") for r in results),
        timed_out=timed_out, duration_s=round(time.monotonic() - t0, 3), results=tuple(results),
    )
    if timeout > 0 and report.passed:
        reporter.ok(f'all {len(gates)} gates passed on "{target.cluster}" in {report.duration_s:.1f}s')
    return report
