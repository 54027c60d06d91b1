"""Flux's gate: every Flux Kustomization of the namespace Ready at the revision (those of the fleet repo
having applied it), and whether Flux's controllers run on a cluster at all."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fleet.adapters.kube import Kube
from fleet.live import health as h
from fleet.live.gates import Gate
from fleet.live.watch import Snapshot
from fleet.operator.flux.status import status_of

__all__ = ["FLUX_API", "SOURCE_API", "operator_gate", "operator_runs"]

FLUX_API = "kustomize.toolkit.fluxcd.io/v1"
SOURCE_API = "source.toolkit.fluxcd.io/v1"


def _from_fleet_repo(k: Mapping[str, Any]) -> bool:
    """Whether a Flux Kustomization applies the fleet repo (fleet's ``fleet`` GitRepository, or the
    ``flux-system`` one of an adopted Flux repo); one of an OCI artifact or another repository is only
    required Ready (docs/adopting.md)."""
    ref = (k.get("spec") or {}).get("sourceRef") or {}
    return ref.get("kind", "GitRepository") == "GitRepository" and ref.get("name") in ("fleet", "flux-system")


def operator_gate(revision: str, namespace: str, *, recheck_is_ready: bool = False,
                  fleet_judges: bool = False) -> Gate:
    """Every Flux Kustomization of ``namespace`` Ready at ``revision``. With ``fleet_judges`` (fleet's own gates
    judge the health of every object of the revision as Flux's health checks would:
    :func:`fleet.live.health.fleet_judges_all`), a Kustomization of the fleet repo that applied the revision
    and is still running its health checks passes too: kustomize-controller polls the objects' health every
    5 s (not configurable), so its Ready comes up to 5 s after the objects are healthy, and the gates, which
    pass only when every gate passes in one and the same look, find that out themselves."""
    def evaluate(s: Snapshot) -> h.Health:
        ks = [o for k, o in s.items() if k[0] == "kustomize.toolkit.fluxcd.io" and k[1] == "Kustomization"
              and k[2] == namespace]
        if not ks:
            return h.Health(h.WAITING, f"no Flux Kustomization in {namespace}")
        checking: list[str] = []
        for k in ks:
            name = k["metadata"]["name"]
            ready = h.condition(k, "Ready")
            fs = status_of(None, k)  # what Flux says of it, read as fleet's own Kustomization is (FluxStatus)
            if recheck_is_ready and fs.rechecking(revision):
                continue
            if fleet_judges and _from_fleet_repo(k) and fs.checking_health(revision):
                checking.append(name)
                continue
            if not ready or ready.get("status") != "True":
                msg = (ready or {}).get("message", "no Ready condition yet")
                return h.Health(h.WAITING, f"Kustomization {name} not ready: {msg}{_source_errors(s, namespace)}")
            if _from_fleet_repo(k) and not fs.applied_at(revision):  # another source: its own revisions
                applied = str((k.get("status") or {}).get("lastAppliedRevision") or "")
                return h.Health(h.WAITING, f"Kustomization {name} applied {applied or 'nothing'}, "
                                           f"expected {revision[:12]}")
        if checking:
            return h.Health(h.OK, f"{len(ks)} Kustomizations at {revision[:12]}: {', '.join(checking)} applied it, "
                                  "Flux's health checks of its objects still running (fleet's gates judge them)")
        return h.Health(h.OK, f"{len(ks)} Kustomizations ready at {revision[:12]}")

    return Gate("operator", f"Kustomization/{namespace}/*", evaluate)


def _source_errors(s: Snapshot, namespace: str) -> str:
    """The sources' own errors (a GitRepository that cannot fetch says why: "connection refused",
    "repository not found"), quoted beside a Kustomization that waits on them."""
    out = []
    for k, o in sorted(s.items()):
        if k[0] == "source.toolkit.fluxcd.io" and k[2] == namespace:
            ready = h.condition(o, "Ready") or {}
            if ready.get("status") == "False" and ready.get("message"):
                out.append(f"; {k[1]} {namespace}/{k[3]}: {ready['message']}")
    return "".join(out)


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
