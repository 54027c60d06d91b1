"""``fleet gate``: is the cluster healthy at the expected revision?

Gates: rollout complete for Deployments, StatefulSets and DaemonSets; Jobs complete; CRDs
Established; the inventory says the expected revision was applied; the operator's gate (what the
fleet's operator says it applied and whether it is Ready at that revision: :class:`OperatorGates`,
implemented per operator in :mod:`fleet.operator`; when it actually runs: ``operator_gate="auto"``;
``"on"`` requires it, ``"off"`` skips it); and the custom gates of the registry (a condition on any
object).

Waiting is watch-driven with one deadline (:class:`fleet.live.watch.Watcher`); a terminal failure
(a failed Job, a Deployment past its progress deadline) ends it early. ``timeout=0`` evaluates once.
What failed comes with the object's conditions and recent Events (and its pods', for workloads).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import GateFailed
from fleet.live import health as h
from fleet.live.inventory import INVENTORY_NAME, INVENTORY_NAMESPACE
from fleet.live.objects import ObjectRef
from fleet.live.watch import Key, Query, Snapshot, Watcher, queries_for, snapshot_once
from fleet.output import Reporter
from fleet.registry.model import ClusterSpec, CustomGate, FleetSettings

__all__ = ["Gate", "GateConfig", "GateReport", "GateResult", "OperatorGates", "gate_config", "run_gates"]

class OperatorGates(Protocol):
    """What the gates need of the fleet's operator (:mod:`fleet.operator` implements it for each kind):
    whether it runs on a cluster, the gate that it applied a revision and is Ready at it, and what to
    watch for that gate."""

    kind: str
    gate_label: str  # what the gate's result names, e.g. "Kustomization/flux-system/*"

    def runs(self, kube: Kube) -> tuple[bool, str]: ...

    def gate(self, revision: str, *, recheck_is_ready: bool = False, fleet_judges: bool = False) -> Gate: ...

    def queries(self) -> list[Query]: ...


@dataclass(frozen=True)
class GateConfig:
    operator: OperatorGates | None = None  # the fleet's operator (None: fleet.yaml says operator.kind none)
    operator_gate: str = "auto"  # "auto" | "on" | "off"
    custom: tuple[CustomGate, ...] = ()
    check_inventory: bool = True
    # A look, not a gate (``fleet status``): a Kustomization re-checking the very revision it last applied
    # and found healthy (Flux does so every interval; Ready is Unknown, "Reconciliation in progress", for
    # that moment) counts as ready. Gates that decide a rollout or a recovery wait for Flux's fresh word.
    recheck_is_ready: bool = False


def gate_config(settings: FleetSettings, cluster: ClusterSpec | None = None, *,
                operator_gate: str | None = None, operator: OperatorGates | None) -> GateConfig:
    """The gates the registry declares for ``cluster`` (fleet-wide custom gates, then its own); the
    operator gate as ``operator_gate`` says, else the cluster's ``gates.operator``, else fleet.yaml's.
    ``operator``: the fleet's operator, always said (None: no operator gate); callers use
    :func:`fleet.operator.gate_config`, which passes the one fleet.yaml names."""
    custom = tuple(settings.gates.custom)
    mode: str = settings.gates.operator
    if cluster is not None and cluster.gates is not None:
        custom += tuple(cluster.gates.custom)
        if "operator" in cluster.gates.model_fields_set:  # said in the cluster's file, not a default
            mode = cluster.gates.operator
    return GateConfig(operator=operator, operator_gate=operator_gate or mode, custom=custom)


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
class Gate:
    gate: str
    label: str
    evaluate: Callable[[Snapshot], h.Health]
    key: Key | None = None


def _workload_gate(ref: ObjectRef) -> Gate:
    names = {"Deployment": "rollout", "StatefulSet": "rollout", "DaemonSet": "rollout", "Job": "job",
             "CustomResourceDefinition": "crd"}
    return Gate(names[ref.kind], str(ref), lambda s: h.health_of(ref.group, ref.kind, s.get(ref.key)),
                 ref.key)


def _inventory_gate(revision: str) -> Gate:
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

    return Gate("inventory", f"ConfigMap/{INVENTORY_NAMESPACE}/{INVENTORY_NAME}", evaluate, key)


def _custom_ref(g: CustomGate) -> ObjectRef:
    meta = {"name": g.name, "namespace": g.namespace}
    manifest = {"apiVersion": g.apiVersion, "kind": g.kind, "metadata": meta}
    return ObjectRef.of(manifest, namespaced=g.namespace is not None)


def _custom_gate(g: CustomGate) -> Gate:
    ref = _custom_ref(g)
    return Gate("custom", f"{ref} {g.condition}={g.status}",
                 lambda s: h.custom(s[ref.key], g.condition, g.status) if ref.key in s
                 else h.Health(h.WAITING, "not found in the cluster"), ref.key)


def _details(kube: Kube, gate: Gate, snap: Snapshot) -> tuple[str, ...]:
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
           reporter: Reporter) -> tuple[list[Gate], list[Query], list[GateResult]]:
    gates: list[Gate] = []
    refs: list[ObjectRef] = []
    skipped: list[GateResult] = []
    seen: set[Key] = set()
    objects = list(objects)  # read twice: for the workload gates and what the operator gate may leave to them
    for obj in objects:
        ref = ObjectRef.of(obj)
        if (ref.group, ref.kind) in h.workload_kinds and ref.key not in seen:
            seen.add(ref.key)
            refs.append(ref)
            gates.append(_workload_gate(ref))
    op = cfg.operator
    label = op.gate_label if op is not None else "operator"
    operator = False
    if op is None or cfg.operator_gate == "off":
        why = "turned off" if op is not None else 'the fleet\'s operator is "none"'
        skipped.append(GateResult("operator", label, "skipped", why))
    else:
        operator, why = (True, "required") if cfg.operator_gate == "on" else op.runs(kube)
        if operator:
            gates.append(op.gate(revision, recheck_is_ready=cfg.recheck_is_ready,
                                 fleet_judges=h.fleet_judges_all(objects)))
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
    if operator and op is not None:
        queries += op.queries()
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
        said: dict[int, str] = {}

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
                if not hh.ok and g.gate == "operator" and said.get(i) != hh.message:
                    said[i] = hh.message  # what the operator waits on, as soon as it says (a source's error)
                    reporter.wait(f"{g.label}: {hh.message}")
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
