"""The operator gate may leave Flux's health checks to fleet's own gates, only when those judge every object
of the revision as kstatus would (fleet.live.health.fleet_judges_all), and only for a Kustomization of the
fleet repo that applied the revision and is running its health checks of it."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.live import health as h
from fleet.operator.flux.gate import operator_gate

REV, OLD = "c" * 40, "d" * 40
KEY = ("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system")


def _obj(api: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": "apps"}, **extra}


@pytest.mark.parametrize("objects,judged", [
    ([], False),  # no objects: nothing judged (fleet status evaluates the operator gate alone)
    ([_obj("apps/v1", "Deployment"), _obj("v1", "ConfigMap"), _obj("v1", "Service"), _obj("v1", "Secret"),
      _obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), _obj("v1", "Namespace"),
      _obj("networking.k8s.io/v1", "NetworkPolicy"), _obj("batch/v1", "CronJob"), _obj("batch/v1", "Job"),
      _obj("apiextensions.k8s.io/v1", "CustomResourceDefinition"), _obj("apps/v1", "StatefulSet")], True),
    ([_obj("apps/v1", "Deployment"), _obj("v1", "PersistentVolumeClaim")], False),  # Bound is kstatus's
    ([_obj("v1", "Pod")], False),
    ([_obj("policy/v1", "PodDisruptionBudget")], False),
    ([_obj("helm.toolkit.fluxcd.io/v2", "HelmRelease")], False),
    ([_obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization")], False),  # a nested one: its own Ready
    ([_obj("example.com/v1", "Widget")], False),  # a custom resource's conditions: not fleet's to judge
    ([_obj("v2/v1", "ConfigMap")], False),  # a ConfigMap of another group is not the core one
    ([{"kind": "ConfigMap"}], True),  # no apiVersion: the core group, as ObjectRef reads it
])
def test_fleet_judges_only_the_kinds_it_gates_and_those_current_on_creation(objects: Any, judged: bool) -> None:
    assert h.fleet_judges_all(objects) is judged
    assert h.fleet_judges_all(iter(objects)) is judged  # a single pass is enough


def _ks(*, ready: str = "Unknown", reason: str = "Progressing", applied: str = OLD, attempted: str = REV,
        healthy: tuple[str, str, str] | None = ("Unknown", "Progressing", REV), source: str = "fleet",
        name: str = "fleet", reconciling: str | None = None) -> dict[str, Any]:
    conds = [{"type": "Ready", "status": ready, "reason": reason, "message": "Reconciliation in progress"}]
    if healthy is not None:
        status, why, rev = healthy
        msg = f"Running health checks for revision main@sha1:{rev} with a timeout of 9m30s" if status != "True" \
            else "Health check passed in 1.2s"
        conds.append({"type": "Healthy", "status": status, "reason": why, "message": msg})
    if reconciling is not None:
        conds.append({"type": "Reconciling", "status": "True", "reason": "Progressing", "message": reconciling})
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": source}},
            "status": {"lastAppliedRevision": f"main@sha1:{applied}" if applied else "",
                       "lastAttemptedRevision": f"main@sha1:{attempted}", "conditions": conds}}


def _state(*ks: dict[str, Any], judges: bool) -> h.Health:
    snap = {(*KEY, k["metadata"]["name"]): k for k in ks}
    return operator_gate(REV, "flux-system", fleet_judges=judges).evaluate(snap)


def test_a_kustomization_checking_the_health_of_the_revision_it_applied_passes_when_fleet_judges() -> None:
    got = _state(_ks(), judges=True)
    assert got.ok and "health checks" in got.message and "fleet" in got.message
    assert not _state(_ks(), judges=False).ok  # otherwise Flux's Ready at the revision, as before
    # its checks just passed: Healthy written, Ready and lastAppliedRevision not yet (a second status write)
    passed = _ks(healthy=("True", "Succeeded", REV),
                 reconciling=f"Running health checks for revision main@sha1:{REV} with a timeout of 9m30s")
    assert _state(passed, judges=True).ok


@pytest.mark.parametrize("ks", [
    _ks(healthy=("Unknown", "Progressing", OLD)),  # checking another revision's health
    _ks(attempted=OLD),  # the revision is not the one it attempts
    _ks(healthy=("False", "HealthCheckFailed", REV), ready="False", reason="HealthCheckFailed"),
    _ks(healthy=None),  # applying, not yet checking: no Healthy condition
    _ks(ready="False", reason="BuildFailed", healthy=None),
    _ks(source="other-repo"),  # another source: only its own Ready says anything
    # Healthy True left from the previous revision while this one is fetched, built or applied
    _ks(healthy=("True", "Succeeded", OLD), reconciling=f"Building manifests for revision main@sha1:{REV} with a "
                                                          "timeout of 9m30s"),
    _ks(healthy=("True", "Succeeded", OLD), reconciling=None),
    _ks(healthy=("True", "Succeeded", OLD), reconciling=f"Running health checks for revision main@sha1:{OLD} with "
                                                          "a timeout of 9m30s"),
])
def test_anything_else_still_waits_for_flux(ks: dict[str, Any]) -> None:
    assert not _state(ks, judges=True).ok


def test_every_kustomization_counts_and_a_ready_one_still_passes() -> None:
    ready = _ks(name="apps", ready="True", reason="ReconciliationSucceeded", applied=REV, healthy=None)
    assert _state(ready, _ks(), judges=True).ok
    assert not _state(ready, _ks(healthy=None), judges=True).ok
    assert _state(ready, judges=False).ok


def test_flux_status_says_when_flux_checks_the_health_of_what_it_applied() -> None:
    from fleet.operator.flux.status import status_of

    src = {"spec": {"ref": {"commit": REV}}, "status": {"artifact": {"revision": f"main@sha1:{REV}"}}}
    assert status_of(src, _ks()).checking_health(REV)
    assert not status_of(src, _ks()).checking_health(OLD)
    assert not status_of(src, _ks(healthy=("Unknown", "Progressing", OLD))).checking_health(REV)
    assert not status_of(src, _ks(healthy=None)).checking_health(REV)  # still applying
    passed = _ks(healthy=("True", "Succeeded", REV),
                 reconciling=f"Running health checks for revision main@sha1:{REV} with a timeout of 9m30s")
    assert status_of(src, passed).checking_health(REV)  # passed, Ready not yet written
    stale = _ks(healthy=("True", "Succeeded", OLD),
                reconciling=f"Fetching manifests for revision main@sha1:{REV} with a timeout of 9m30s")
    assert not status_of(src, stale).checking_health(REV)
    failed = _ks(healthy=("False", "HealthCheckFailed", REV), ready="False", reason="HealthCheckFailed")
    assert not status_of(src, failed).checking_health(REV)


def test_the_status_operator_column_says_work_in_progress_not_a_failure_while_ready_is_unknown() -> None:
    from fleet.operator.flux.status import status_of
    from fleet.status import operator_word

    src = {"spec": {"ref": {"commit": REV}}, "status": {"artifact": {"revision": f"main@sha1:{REV}"}}}
    assert operator_word(status_of(src, _ks()), REV) == "checking health"
    assert operator_word(status_of(src, _ks(healthy=None)), REV) == "reconciling"
    ready = _ks(ready="True", reason="ReconciliationSucceeded", applied=REV, healthy=None)
    assert operator_word(status_of(src, ready), REV) == "Ready"
    failed = _ks(healthy=("False", "HealthCheckFailed", REV), ready="False", reason="HealthCheckFailed")
    assert operator_word(status_of(src, failed), REV) == "not Ready: Reconciliation in progress"


def test_the_sync_step_warns_of_flux_failures_not_of_its_transient_states() -> None:
    from fleet.operator.flux.status import _cause

    def ks(reason: str, message: str) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": message}]}}

    def src(artifact: bool, failure: str = "") -> dict[str, Any]:
        conds = [{"type": "Ready", "status": "False", "reason": "GitOperationFailed", "message": failure}] \
            if failure else []
        return {"status": {"conditions": conds, **({"artifact": {"revision": REV}} if artifact else {})}}

    def cause(k: dict[str, Any], s: dict[str, Any]) -> str:
        return _cause({("source.toolkit.fluxcd.io", "GitRepository", "flux-system", "fleet"): s,
                       ("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", "fleet"): k}, "fleet", REV)

    not_yet = ks("ArtifactFailed", "Source artifact not found, retrying in 5s")
    assert cause(not_yet, src(False)) == ""  # the source has not fetched yet: nothing wrong
    assert "connection refused" in cause(not_yet, src(False, "connection refused"))  # the source's own failure
    assert cause(not_yet, src(True)) == ""  # fetched meanwhile: the fetch enqueues the Kustomization again
    wrong = ks("ArtifactFailed", "kustomization path not found: stat /tmp/x/apps: no such file or directory")
    assert "kustomization path not found" in cause(wrong, src(True))  # an ArtifactFailed that is a failure
    assert cause(ks("HealthCheckCanceled", "New reconciliation triggered by Kustomization/flux-system/fleet"),
                 src(True)) == ""
    assert "kustomize build failed" in cause(ks("BuildFailed", "kustomize build failed: x"), src(True))


def test_ready_at_the_attempted_revision_is_that_revision_passed_even_before_last_applied_moves() -> None:
    """Flux writes conditions and the rest of its status in two requests: Ready=True first, lastAppliedRevision a
    moment later; a watch (a bake) sees that moment."""
    from fleet.operator.flux.status import status_of

    src = {"spec": {"ref": {"commit": REV}}, "status": {"artifact": {"revision": f"main@sha1:{REV}"}}}
    gap = _ks(ready="True", reason="ReconciliationSucceeded", applied=OLD, attempted=REV,
              healthy=("True", "Succeeded", REV))
    for judges in (False, True):
        assert _state(gap, judges=judges).ok
    st = status_of(src, gap)
    assert st.applied_at(REV) and not st.applied_at(OLD) and st.objects_applied(REV)
    # Ready at the old revision, the new one not attempted yet: not at the new one
    before = _ks(ready="True", reason="ReconciliationSucceeded", applied=OLD, attempted=OLD, healthy=None)
    assert not _state(before, judges=True).ok and not status_of(src, before).applied_at(REV)
    assert status_of(src, before).applied_at(OLD)
