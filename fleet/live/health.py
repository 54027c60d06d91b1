"""Is this live object healthy? Pure functions over object dicts, shared by gates and status.

Each returns a :class:`Health`: ``ok``, ``waiting`` (may still get there) or ``failed`` (will not
without a change: a failed Job, a Deployment past its progress deadline).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.live.objects import split_api_version

__all__ = ["Health", "condition", "condition_lines", "fleet_judges_all", "health_of", "workload_kinds"]

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Health:
    state: str  # "ok" | "waiting" | "failed"
    message: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"


OK = "ok"
WAITING = "waiting"
FAILED = "failed"

# (group, kind) whose health fleet judges on its own
workload_kinds = frozenset({
    ("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
})


# (group, kind) that kstatus (the status rules of Flux's health checks, fluxcd/cli-utils pkg/kstatus) calls
# Current as soon as they exist: no status to wait for (ConfigMap, Secret and CronJob are "alwaysReady" there,
# a Service is Current once it has a cluster IP, which the API server gives it on creation; the others have
# no status conditions, so kstatus's generic rules find nothing in progress).
current_on_creation = frozenset({
    ("", "ConfigMap"), ("", "Secret"), ("", "ServiceAccount"), ("", "Namespace"), ("", "Service"),
    ("", "ResourceQuota"), ("", "LimitRange"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"), ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"), ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "StorageClass"), ("batch", "CronJob"),
})


def fleet_judges_all(objects: Iterable[Obj]) -> bool:
    """Whether fleet's own gates judge the health of every one of ``objects`` as the operator's health
    checks would: each is a workload kind fleet gates (:data:`workload_kinds`) or a kind kstatus calls
    Current on creation. Any other kind (a PersistentVolumeClaim, a Pod, a custom resource, a nested Flux
    Kustomization or HelmRelease) leaves the verdict to the operator, and so do no objects at all: a caller that
    gates none (``fleet status`` evaluates the operator gate alone) judges nothing."""
    seen = False
    for obj in objects:
        seen = True
        key = (split_api_version(str(obj.get("apiVersion") or ""))[0], str(obj.get("kind") or ""))
        if key not in workload_kinds and key not in current_on_creation:
            return False
    return seen


def condition(obj: Obj, ctype: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def condition_lines(obj: Obj) -> list[str]:
    """The object's conditions as 'Type=Status (Reason): message' lines."""
    out = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        reason = f" ({c['reason']})" if c.get("reason") else ""
        msg = f": {c['message']}" if c.get("message") else ""
        out.append(f"{c.get('type')}={c.get('status')}{reason}{msg}")
    return out


def _generation_seen(obj: Obj) -> bool:
    gen = (obj.get("metadata") or {}).get("generation")
    seen = (obj.get("status") or {}).get("observedGeneration")
    return gen is None or (seen is not None and int(seen) >= int(gen))


def _n(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key) or 0)


def deployment(obj: Obj) -> Health:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(FAILED, f"progress deadline exceeded: {progressing.get('message', '')}".strip())
    if not _generation_seen(obj):
        return Health(WAITING, "the controller has not seen the latest spec yet")
    updated, total = _n(st, "updatedReplicas"), _n(st, "replicas")
    ready, available = _n(st, "readyReplicas"), _n(st, "availableReplicas")
    if updated < want:
        return Health(WAITING, f"{updated} of {want} replicas updated")
    if total > updated:
        return Health(WAITING, f"{total - updated} old replicas pending termination")
    if ready < want:
        return Health(WAITING, f"{ready} of {want} replicas ready")
    if available < want:
        return Health(WAITING, f"{available} of {want} replicas available")
    return Health(OK, f"{available} of {want} replicas available")


def statefulset(obj: Obj) -> Health:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    if not _generation_seen(obj):
        return Health(WAITING, "the controller has not seen the latest spec yet")
    rolling = ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"
    if rolling and _n(st, "updatedReplicas") < want:
        return Health(WAITING, f"{_n(st, 'updatedReplicas')} of {want} replicas updated")
    if _n(st, "readyReplicas") < want:
        return Health(WAITING, f"{_n(st, 'readyReplicas')} of {want} replicas ready")
    if "availableReplicas" in st and _n(st, "availableReplicas") < want:
        return Health(WAITING, f"{_n(st, 'availableReplicas')} of {want} replicas available")
    if rolling and st.get("updateRevision") and st.get("currentRevision") != st.get("updateRevision"):
        return Health(WAITING, "rolling update in progress")
    return Health(OK, f"{_n(st, 'readyReplicas')} of {want} replicas ready")


def daemonset(obj: Obj) -> Health:
    st = obj.get("status") or {}
    if not _generation_seen(obj):
        return Health(WAITING, "the controller has not seen the latest spec yet")
    want = _n(st, "desiredNumberScheduled")
    for key, what in (("updatedNumberScheduled", "updated"), ("numberReady", "ready"),
                      ("numberAvailable", "available")):
        if _n(st, key) < want:
            return Health(WAITING, f"{_n(st, key)} of {want} pods {what}")
    return Health(OK, f"{want} of {want} pods available")


def job(obj: Obj) -> Health:
    failed = condition(obj, "Failed")
    if failed and failed.get("status") == "True":
        return Health(FAILED, f"job failed ({failed.get('reason', '')}): {failed.get('message', '')}".strip())
    complete = condition(obj, "Complete")
    if complete and complete.get("status") == "True":
        return Health(OK, "complete")
    st = obj.get("status") or {}
    counts = f"{_n(st, 'succeeded')} succeeded, {_n(st, 'active')} active, {_n(st, 'failed')} failed"
    return Health(WAITING, counts)


def crd(obj: Obj) -> Health:
    est = condition(obj, "Established")
    if est and est.get("status") == "True":
        return Health(OK, "established")
    names = condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return Health(FAILED, f"names not accepted: {names.get('message', '')}")
    return Health(WAITING, "not established yet")


def custom(obj: Obj, ctype: str, status: str = "True") -> Health:
    c = condition(obj, ctype)
    if c is None:
        return Health(WAITING, f"no {ctype} condition yet")
    if c.get("status") == status:
        return Health(OK, f"{ctype}={status}")
    return Health(WAITING, f"{ctype}={c.get('status')} ({c.get('reason', '')}): {c.get('message', '')}")


_BY_KIND = {
    ("apps", "Deployment"): deployment,
    ("apps", "StatefulSet"): statefulset,
    ("apps", "DaemonSet"): daemonset,
    ("batch", "Job"): job,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd,
}


def health_of(group: str, kind: str, obj: Obj | None) -> Health:
    """Health of a workload kind (see :data:`workload_kinds`); a missing object is waiting."""
    if obj is None:
        return Health(WAITING, "not found in the cluster")
    fn = _BY_KIND.get((group, kind))
    if fn is None:
        return Health(OK, "exists")
    return fn(obj)
