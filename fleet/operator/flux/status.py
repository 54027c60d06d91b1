"""What Flux says of a cluster, and the two requests fleet makes of it: move the pin, reconcile now.

fleet's operator objects are one GitRepository and one Kustomization, both ``flux-system/fleet``, or
``flux-system/flux-system`` on a cluster of a Flux directory (:mod:`fleet.operator.flux.install`; :func:`object_name`
reads which off the cluster). Their status is the operator's own account of what it fetched and applied;
fleet reads it for ``fleet status``, the bootstrap's sync step and the recovery report, and never
takes a controller Deployment's readiness for it.

Promotion is a move of the pin: ``spec.ref.commit`` of the GitRepository, which the cluster's Pulumi
stack owns (its one owner: ``fleet.provision`` with ``pin_revision``, for sync, bootstrap and rollout
alike), then a reconcile requested as ``flux reconcile`` does (the ``reconcile.fluxcd.io/requestedAt``
annotation on both objects).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import GateFailed
from fleet.live.watch import Query
from fleet.output import Reporter
from fleet.rendering.fluxtree import FLUX_DIRECTORY_OPERATOR_NAME, OPERATOR_NAME

__all__ = [
    "FLUX_NAMESPACE",
    "KUSTOMIZE_API",
    "OBJECT_NAME",
    "SOURCE_API",
    "FluxStatus",
    "commit_of",
    "object_name",
    "read_status",
    "request_reconcile",
    "status_of",
    "wait_applied",
]

FLUX_NAMESPACE = "flux-system"
OBJECT_NAME = OPERATOR_NAME
CLUSTER_LABEL = "fleet.dev/cluster"  # on fleet's operator objects (fleet.operator.flux.install)
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
# The reconcile request's own field manager: it owns the annotation, nothing else (the pin is the stack's).
RECONCILE_MANAGER = "fleet-reconcile"


def commit_of(revision: str) -> str:
    """The commit of a Flux revision: ``main@sha1:abc...`` or ``sha1:abc...`` gives ``abc...``."""
    return revision.rsplit(":", 1)[-1] if revision else ""


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


# Ready=False for these reasons means Flux could not apply the revision at all (not a health matter).
APPLY_FAILURES = ("ArtifactFailed", "BuildFailed", "ReconciliationFailed", "PruneFailed", "DependencyNotReady")


@dataclass(frozen=True)
class FluxStatus:
    """The GitRepository's pin and fetched artifact, the Kustomization's applied revision and Ready."""

    installed: bool  # the objects exist
    pinned: str  # spec.ref.commit ("" when it follows the branch)
    branch: str
    fetched: str  # commit of status.artifact.revision
    fetched_at: str
    applied: str  # commit of status.lastAppliedRevision
    attempted: str  # commit of status.lastAttemptedRevision
    ready: str  # "True" | "False" | "Unknown" | ""
    reason: str
    message: str
    ready_since: str
    source_message: str  # the GitRepository's Ready message (a fetch that failed says why here)
    health_message: str = ""  # the Kustomization's Healthy condition (with `wait: true`)
    health_since: str = ""
    health: str = ""  # that condition's status: "True" | "False" | "Unknown" | ""
    reconciling_message: str = ""  # the Reconciling condition's message while it is True ("" otherwise)

    def applied_at(self, commit: str) -> bool:
        """Applied and Ready (health checks passed) at ``commit``: Ready at the revision it last attempted.
        kustomize-controller writes a status in two requests, conditions first: at the end of a reconcile,
        Ready=True comes a moment before ``lastAppliedRevision`` moves to the revision (``lastAttemptedRevision``
        already names it), and at the start of the next one, Ready turns Unknown before the attempted revision
        moves; so Ready at the attempted revision is that revision passed, in every look."""
        return bool(commit) and self.ready == "True" and (self.attempted or self.applied) == commit

    def rechecking(self, commit: str) -> bool:
        """Flux is re-reconciling ``commit``, which it last applied with its health checks passed (it sets
        ``lastAppliedRevision`` only then) and attempts again: its periodic re-check, not a new revision."""
        return bool(commit) and self.ready == "Unknown" and self.reason == "Progressing" \
            and self.applied == commit == self.attempted

    def objects_applied(self, commit: str) -> bool:
        """Flux applied the objects of ``commit``; its health checks may still run (or have failed):
        that is the gates' matter. Flux says so with its Healthy condition, set once it applied."""
        if not commit:
            return False
        if self.applied == commit or self.applied_at(commit):
            return True
        return self.attempted == commit and (
            commit in self.health_message or self.reason == "HealthCheckFailed")

    def checking_health(self, commit: str) -> bool:
        """Flux applied the objects of ``commit`` (its inventory lists them) and runs its health checks of them
        (Healthy Unknown, "Running health checks for revision <commit> ..."), or has just passed them and not yet
        written Ready (Healthy True while Reconciling still says it runs the health checks of that revision: the
        status is written in two requests, conditions first). Its Ready follows at its next poll (every 5 s) once
        they are healthy. A Healthy True left from an earlier revision while ``commit`` is fetched, built or
        applied does not count: Reconciling then says "Fetching", "Building" or "Detecting drift"."""
        if not commit or self.attempted != commit or self.ready == "False" or self.health == "False":
            return False
        if self.health == "Unknown":
            return commit in self.health_message
        return self.health == "True" and "health checks for revision" in self.reconciling_message \
            and commit in self.reconciling_message

    def apply_failed(self, commit: str) -> bool:
        """Flux took ``commit`` and could not build or apply it."""
        return self.attempted == commit and self.ready == "False" and self.reason in APPLY_FAILURES

    def summary(self) -> str:
        if not self.installed:
            return "Flux objects not installed"
        what = f"applied {self.applied[:12]}" if self.applied else "nothing applied yet"
        state = {"True": "Ready", "False": "not Ready"}.get(self.ready, "reconciling")
        msg = f": {self.message}" if self.message and self.ready != "True" else ""
        return f"{what}, {state}{msg}"


def object_name(kube: Kube, namespace: str = FLUX_NAMESPACE) -> str:
    """The name of fleet's operator objects on this cluster: ``fleet``, else ``flux-system`` when the
    GitRepository of that name is fleet's (it carries fleet's cluster label), as on a cluster of a Flux
    directory."""
    if kube.get(SOURCE_API, "GitRepository", OBJECT_NAME, namespace) is not None:
        return OBJECT_NAME
    src = kube.get(SOURCE_API, "GitRepository", FLUX_DIRECTORY_OPERATOR_NAME, namespace)
    if src is not None and CLUSTER_LABEL in ((src.get("metadata") or {}).get("labels") or {}):
        return FLUX_DIRECTORY_OPERATOR_NAME
    return OBJECT_NAME


def read_status(kube: Kube, namespace: str = FLUX_NAMESPACE, name: str | None = None) -> FluxStatus:
    name = name or object_name(kube, namespace)
    return status_of(kube.get(SOURCE_API, "GitRepository", name, namespace),
                     kube.get(KUSTOMIZE_API, "Kustomization", name, namespace))


def status_of(src: dict[str, Any] | None, ks: dict[str, Any] | None) -> FluxStatus:
    sst, kst = (src or {}).get("status") or {}, (ks or {}).get("status") or {}
    ref = ((src or {}).get("spec") or {}).get("ref") or {}
    artifact = sst.get("artifact") or {}
    ready = _condition(ks, "Ready")
    healthy = _condition(ks, "Healthy")
    return FluxStatus(
        installed=src is not None and ks is not None,
        pinned=str(ref.get("commit") or ""),
        branch=str(ref.get("branch") or ""),
        fetched=commit_of(str(artifact.get("revision") or "")),
        fetched_at=str(artifact.get("lastUpdateTime") or ""),
        applied=commit_of(str(kst.get("lastAppliedRevision") or "")),
        attempted=commit_of(str(kst.get("lastAttemptedRevision") or "")),
        ready=str(ready.get("status") or ""),
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
        ready_since=str(ready.get("lastTransitionTime") or ""),
        source_message=str(_condition(src, "Ready").get("message") or ""),
        health_message=str(healthy.get("message") or ""),
        health_since=str(healthy.get("lastTransitionTime") or ""),
        health=str(healthy.get("status") or ""),
        reconciling_message=_reconciling_message(ks),
    )


def _reconciling_message(ks: dict[str, Any] | None) -> str:
    rec = _condition(ks, "Reconciling")
    return str(rec.get("message") or "") if rec.get("status") == "True" else ""


def request_reconcile(kube: Kube, namespace: str = FLUX_NAMESPACE, name: str | None = None) -> str:
    """Ask both controllers to reconcile now (what ``flux reconcile kustomization --with-source`` does)."""
    name = name or object_name(kube, namespace)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for api, kind in ((SOURCE_API, "GitRepository"), (KUSTOMIZE_API, "Kustomization")):
        kube.apply({"apiVersion": api, "kind": kind,
                    "metadata": {"name": name, "namespace": namespace, "annotations": {REQUESTED_AT: now}}},
                   field_manager=RECONCILE_MANAGER)
    return now


def wait_applied(target: KubeTarget, revision: str, *, timeout: float, reporter: Reporter,
                 kube: Kube | None = None) -> FluxStatus:
    """Wait (watch-driven, one timeout) until Flux fetched ``revision`` and applied its objects; say
    when. Health is not waited for here: the gates do (Flux's Ready at the revision, the workloads).
    A revision Flux cannot build or apply fails at once, and every failure quotes Flux's own messages
    (the source's and the Kustomization's) and its recent events."""
    from fleet.live.watch import Watcher

    own = kube is None
    kube = kube or Kube.connect(target)
    try:
        reporter.wait(f"waiting for Flux to fetch and apply {revision[:12]}")
        name = object_name(kube)
        queries = [Query(SOURCE_API, "GitRepository", FLUX_NAMESPACE, name),
                   Query(KUSTOMIZE_API, "Kustomization", FLUX_NAMESPACE, name)]
        fetched_said = False
        causes: set[str] = set()

        def current(snap: dict[Any, Any]) -> FluxStatus:
            src = next((o for k, o in snap.items() if k[1] == "GitRepository"), None)
            ks = next((o for k, o in snap.items() if k[1] == "Kustomization"), None)
            return status_of(src, ks)

        def done(snap: dict[Any, Any]) -> bool:
            nonlocal fetched_said
            st = current(snap)
            if st.fetched == revision and not fetched_said:
                fetched_said = True
                reporter.ok(f"Flux fetched {revision[:12]} at {st.fetched_at or '?'}")
            cause = _cause(snap, name, revision)
            if cause and cause not in causes:  # the latest cause, said when it first appears
                causes.add(cause)
                reporter.warn(cause)
            return st.objects_applied(revision) or st.apply_failed(revision)

        with Watcher(kube, queries, deadline=time.monotonic() + timeout) as w:
            finished = w.wait(done)
            st = current(w.snapshot)
        if not finished or st.apply_failed(revision):
            why = "; ".join(x for x in (
                f"GitRepository: {st.source_message}" if st.source_message
                else "GitRepository: no status (source-controller has not reconciled it: is it running?)",
                f"Kustomization: {st.message}" if st.message else "",
                *(f"event {e}" for e in kube.events_for("Kustomization", name, FLUX_NAMESPACE, limit=3)),
            ) if x)
            what = "could not apply" if st.apply_failed(revision) else f"did not apply within {timeout:.0f}s"
            raise GateFailed(
                f"Flux {what} {revision[:12]} (fetched: {st.fetched[:12] or 'nothing'}, "
                f"applied: {st.applied[:12] or 'nothing'})" + (f": {why}" if why else ""),
                hint="see the controllers' logs (`fleet local list` shows where, for local clusters); "
                     "`--sync direct` applies without the operator (break-glass)",
            )
        when = st.health_since if st.applied != revision else st.ready_since
        reporter.ok(f"Flux applied {revision[:12]} at {when or '?'}")
        return st
    finally:
        if own:
            kube.close()


def _cause(snap: dict[Any, Any], name: str, revision: str) -> str:
    """Why Flux has not applied ``revision`` yet, in its own words: the GitRepository's failed fetch
    ("connection refused", "repository not found"), else the Kustomization's failure."""
    for k, o in snap.items():
        ready = _condition(o, "Ready")
        if ready.get("status") != "False" or not ready.get("message"):
            continue
        if k[1] == "GitRepository":
            return f"waiting for GitRepository {FLUX_NAMESPACE}/{name}: {ready['message']}"
        if k[1] == "Kustomization" and ready.get("reason") not in _PASSING_REASONS \
                and not str(ready["message"]).startswith(_NO_ARTIFACT_YET):
            return f"waiting for Kustomization {FLUX_NAMESPACE}/{name}: {ready['message']}"
    return ""


# A Kustomization's Ready=False that says nothing is wrong: a reconcile under way, or the health checks of the
# previous revision cancelled for the new one (kustomize-controller's CancelHealthCheckOnNewRevision). Nor is
# "Source artifact not found, retrying": the source had not fetched yet when the Kustomization looked, and its
# fetch enqueues the Kustomization again (the message stays until then); a fetch that fails is the
# GitRepository's own failure, said instead.
_PASSING_REASONS = ("Progressing", "HealthCheckCanceled")
_NO_ARTIFACT_YET = "Source artifact not found"
