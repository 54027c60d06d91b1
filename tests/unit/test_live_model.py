"""The live layer's pure parts: object references, fleet's marks, inventory chunks, health rules,
diff normalisation, durations, and where a cluster's kubeconfig comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet.access import kubeconfig_cache_path, kubeconfig_for
from fleet.cli.gate import parse_duration
from fleet.errors import InputError, NotFound
from fleet.live import health as h
from fleet.live.diff import _unified, normalize
from fleet.live.inventory import CHUNK_BYTES, _split
from fleet.live.objects import (
    ANN_CLUSTER,
    ANN_REVISION,
    LABEL_MANAGED,
    ObjectRef,
    owned_by_fleet,
    stamp,
    validate,
)
from fleet.live.watch import Query, queries_for
from fleet.registry.model import ClusterSpec, KubeAccess


def test_object_refs_round_trip_and_identity_ignores_the_version() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    ref = ObjectRef.of(dep)
    assert ref == ObjectRef("apps", "v1", "Deployment", "default", "web")  # namespaced: default
    assert str(ref) == "Deployment/default/web"
    assert ObjectRef.from_line(ref.to_line()) == ref
    ns = ObjectRef.of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "y"}})
    assert (
        ns.namespace == "" and ns.to_line() == "/v1/Namespace//x" and ObjectRef.from_line(ns.to_line()) == ns
    )
    beta = ObjectRef("apps", "v1beta2", "Deployment", "default", "web")
    assert beta.key == ref.key and beta != ref
    with pytest.raises(ValueError):
        ObjectRef.from_line("v1/ConfigMap/x")


def test_validate_names_the_bad_manifest() -> None:
    with pytest.raises(InputError, match=r"manifest #2 \(ConfigMap\): metadata.name: missing"):
        validate(
            [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
            ]
        )
    with pytest.raises(InputError, match=r"manifest #3: ConfigMap/default/a is also manifest #1"):
        validate(
            [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}},
            ]
        )


def test_stamp_marks_a_copy_and_only_marked_objects_are_fleets() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}}}
    out = stamp(obj, cluster="eu-1", revision="abc")
    assert "annotations" not in obj["metadata"] and obj["metadata"]["labels"] == {"app": "x"}
    assert out["metadata"]["labels"] == {"app": "x", LABEL_MANAGED: "fleet"}
    assert out["metadata"]["annotations"] == {ANN_REVISION: "abc", ANN_CLUSTER: "eu-1"}
    assert owned_by_fleet(out, "eu-1")
    assert not owned_by_fleet(out, "us-2")  # another cluster's object
    assert not owned_by_fleet(obj, "eu-1")


def test_inventory_chunks_stay_under_the_limit_and_keep_every_line() -> None:
    lines = [
        ObjectRef("", "v1", "ConfigMap", "ns", f"object-{i:06d}-" + "x" * 40).to_line() for i in range(12000)
    ]
    chunks = _split(lines)
    assert len(chunks) > 1
    assert all(len(c) <= CHUNK_BYTES for c in chunks)
    assert [ln for c in chunks for ln in c.splitlines()] == lines
    assert _split([]) == [""]


def deployment(want: int = 2, gen: int = 2, observed: int = 2, **status: int) -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": want},
        "status": {"observedGeneration": observed, **status},
    }


def test_deployment_health() -> None:
    full = dict(replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)
    assert h.deployment(deployment(**full)).ok
    assert (
        h.deployment(deployment(observed=1, **full)).message
        == "the controller has not seen the latest spec yet"
    )
    assert h.deployment(deployment(**{**full, "updatedReplicas": 1})).message == "1 of 2 replicas updated"
    assert h.deployment(deployment(**{**full, "replicas": 3})).message == "1 old replicas pending termination"
    assert h.deployment(deployment(**{**full, "availableReplicas": 0})).message == "0 of 2 replicas available"
    assert h.deployment(deployment(want=0)).ok
    stuck = deployment()
    stuck["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "too slow",
        }
    ]
    assert h.deployment(stuck).state == "failed"


def test_other_kinds_health() -> None:
    job_failed = {
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    }
    assert h.job(job_failed).state == "failed"
    assert h.job({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).ok
    assert h.job({"status": {"active": 1}}).state == "waiting"
    sts = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "currentRevision": "a",
            "updateRevision": "b",
        },
    }
    assert h.statefulset(sts).message == "rolling update in progress"
    sts["status"]["currentRevision"] = "b"
    assert h.statefulset(sts).ok
    ds = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 2,
            "updatedNumberScheduled": 2,
            "numberReady": 1,
            "numberAvailable": 1,
        },
    }
    assert h.daemonset(ds).message == "1 of 2 pods ready"
    assert h.crd({"status": {"conditions": [{"type": "Established", "status": "True"}]}}).ok
    assert h.health_of("apps", "Deployment", None).message == "not found in the cluster"
    assert (
        h.custom(
            {
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "reason": "Oops", "message": "bad"}]
                }
            },
            "Ready",
        ).message
        == "Ready=False (Oops): bad"
    )


def test_normalize_drops_what_the_server_owns() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "status": {"x": 1},
        "data": {"a": "1"},
        "metadata": {
            "name": "a",
            "uid": "u",
            "resourceVersion": "7",
            "generation": 3,
            "creationTimestamp": "t",
            "managedFields": [{}],
            "annotations": {ANN_REVISION: "abc"},
            "labels": {"k": "v"},
        },
    }
    assert normalize(live) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"a": "1"},
        "metadata": {"name": "a", "labels": {"k": "v"}},
    }
    assert live["metadata"]["uid"] == "u"  # not changed in place


def test_a_diff_never_prints_what_a_secret_holds() -> None:
    def secret(**data: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"},
                "data": dict(data), "stringData": {"token": data.get("password", "")}}

    live, desired = secret(password="b2xkLXB3", user="YWRtaW4="), secret(password="bmV3LXB3", user="YWRtaW4=")
    text = _unified("Secret/app/db", live, desired)
    for value in ("b2xkLXB3", "bmV3LXB3", "YWRtaW4="):
        assert value not in text
    assert "-  password: '*** (before)'" in text and "+  password: '*** (after)'" in text
    assert "  user: '***'" in text and "user: '*** (" not in text  # unchanged: no -/+ line
    created = _unified("Secret/app/db", None, desired)
    assert "bmV3LXB3" not in created and "+  password: '*** (after)'" in created
    assert live["data"] == {"password": "b2xkLXB3", "user": "YWRtaW4="}  # the objects are not changed
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "shown"}}
    assert "+  k: shown" in _unified("ConfigMap/c", None, cm)


def test_queries_cover_refs_with_few_watches() -> None:
    refs = [
        ObjectRef("apps", "v1", "Deployment", "a", "x"),
        ObjectRef("apps", "v1", "Deployment", "a", "y"),
        ObjectRef("batch", "v1", "Job", "b", "j"),
        ObjectRef("", "v1", "ConfigMap", "c", "1"),
        ObjectRef("", "v1", "ConfigMap", "d", "2"),
    ]
    assert queries_for(refs) == [
        Query("apps/v1", "Deployment", "a"),
        Query("batch/v1", "Job", "b", "j"),
        Query("v1", "ConfigMap"),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2.5s", 2.5)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m", "-3s"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(InputError, match="is not a duration"):
        parse_duration(text)


def test_kubeconfig_for_prefers_the_provisioned_file_then_registry_access(
    fleet_home: Path, tmp_path: Path
) -> None:
    bare = ClusterSpec(name="eu-1", environment="dev")
    with pytest.raises(NotFound, match='no kubeconfig for cluster "eu-1"') as e:
        kubeconfig_for(bare)
    assert (
        e.value.hint is not None
        and "fleet provision eu-1" in e.value.hint
        and "access.context" in e.value.hint
    )

    mine = tmp_path / "my.kubeconfig"
    spec = ClusterSpec(
        name="eu-1", environment="dev", access=KubeAccess(context="prod-eu", kubeconfig=str(mine))
    )
    t = kubeconfig_for(spec)
    assert (t.cluster, t.kubeconfig, t.context) == ("eu-1", mine, "prod-eu")
    ctx_only = kubeconfig_for(ClusterSpec(name="eu-1", environment="dev", access=KubeAccess(context="c")))
    assert ctx_only.kubeconfig is None and ctx_only.context == "c"  # the default kubeconfig, that context

    cached = kubeconfig_cache_path("eu-1")
    assert cached == fleet_home / "kubeconfigs" / "eu-1.yaml"
    cached.parent.mkdir(parents=True)
    cached.write_text("apiVersion: v1\nkind: Config\n")
    t = kubeconfig_for(spec)
    assert t.kubeconfig == cached and t.context is None and t.source.startswith("provisioned")


def test_gate_config_layers_fleet_and_cluster_settings() -> None:
    from fleet.live.gates import gate_timeout
    from fleet.operator import gate_config
    from fleet.registry.model import CustomGate, FleetSettings, GateSettings

    ready = CustomGate(apiVersion="v1", kind="ConfigMap", name="x", namespace="y")
    fleet = FleetSettings.model_validate(
        {"gates": {"timeout": 120, "operator": "off", "custom": [ready.model_dump()]}}
    )
    plain = ClusterSpec(name="a", environment="dev")
    assert gate_config(fleet, plain).operator_gate == "off" and gate_timeout(fleet, plain) == 120
    own = ClusterSpec(
        name="b", environment="dev", gates=GateSettings.model_validate({"custom": [ready.model_dump()]})
    )
    cfg = gate_config(fleet, own)
    assert (
        cfg.operator_gate == "off" and len(cfg.custom) == 2 and gate_timeout(fleet, own) == 120
    )  # defaults don't win
    strict = ClusterSpec(name="c", environment="dev", gates=GateSettings(operator="on", timeout=30))
    assert gate_config(fleet, strict).operator_gate == "on" and gate_timeout(fleet, strict) == 30
    assert gate_config(fleet, strict, operator_gate="auto").operator_gate == "auto"  # the CLI flag wins
    assert gate_config(fleet, plain).operator.kind == "flux"  # type: ignore[union-attr]


def _ks(name: str, ready: str, reason: str, applied: str, attempted: str) -> dict[str, Any]:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "fleet"}},
            "status": {"lastAppliedRevision": f"main@sha1:{applied}", "lastAttemptedRevision": f"main@sha1:{attempted}",
                       "conditions": [{"type": "Ready", "status": ready, "reason": reason,
                                       "message": "Reconciliation in progress" if ready == "Unknown" else "done"}]}}


def test_flux_rechecking_the_revision_it_applied_is_healthy_for_a_look_but_not_for_a_gate() -> None:
    from fleet.operator.flux.gate import operator_gate as _operator_gate

    rev, new = "a" * 40, "b" * 40

    def health(k: dict[str, Any], *, look: bool) -> str:
        key = ("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", k["metadata"]["name"])
        return _operator_gate(rev, "flux-system", recheck_is_ready=look).evaluate({key: k}).state

    recheck = _ks("fleet", "Unknown", "Progressing", rev, rev)  # Flux's periodic re-check of what it applied
    assert health(recheck, look=True) == "ok"
    assert health(recheck, look=False) != "ok"  # a rollout's or a recovery's gate waits for Flux's fresh word
    assert health(_ks("fleet", "True", "ReconciliationSucceeded", rev, rev), look=False) == "ok"
    # not a re-check: a new revision in progress, a failure, a revision never applied healthy
    assert health(_ks("fleet", "Unknown", "Progressing", rev, new), look=True) != "ok"
    assert health(_ks("fleet", "False", "HealthCheckFailed", rev, rev), look=True) != "ok"
    assert health(_ks("fleet", "Unknown", "Progressing", new, new), look=True) != "ok"
