"""What goes wrong, said clearly: an unreachable API server, RBAC refusals, rejected manifests, a
flaky API server (fault-injecting proxy), a failed sync that must not lose track of objects."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml
from faultproxy import FaultProxy, Faults
from helpers import run_cli
from live_support import configmap, deployment, live_repo, namespace

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import Forbidden, KubeError, Unreachable
from fleet.live.apply import sync
from fleet.live.inventory import read_inventory
from fleet.local.clusters import LocalCluster
from fleet.output import SilentReporter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def dead_kubeconfig(src: Path, dest: Path) -> Path:
    """``src`` pointed at a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = yaml.safe_load(src.read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dest.write_text(yaml.safe_dump(cfg))
    return dest


def test_unreachable_api_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live_cluster: LocalCluster
) -> None:
    kubeconfig = dead_kubeconfig(live_cluster.kubeconfig, tmp_path / "dead.yaml")
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as e:
        sync(
            KubeTarget("it-dead", kubeconfig),
            [configmap("default", "x")],
            "5" * 40,
            reporter=SilentReporter(),
        )
    assert time.monotonic() - t0 < 40
    assert "unreachable" in e.value.message and "refused" in e.value.message.lower()

    repo = live_repo(tmp_path, "it-dead", kubeconfig, [configmap("default", "x")])
    code, _, err = run_cli(capsys, "sync", "it-dead", "--repo", str(repo))
    assert code == 1 and "unreachable" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "diff", "it-dead", "--repo", str(repo))
    assert code == 2 and "unreachable" in err


def limited_kubeconfig(kube: Kube, src: Path, dest: Path, ns: str) -> Path:
    """A ServiceAccount that may keep fleet's inventory and write ConfigMaps in ``ns``, nothing else."""
    sa, rbac = "fleet-limited", "rbac.authorization.k8s.io/v1"
    for obj in (
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"{ns}-ns-reader"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-ns-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{ns}-ns-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "inventory", "namespace": "fleet-system"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": f"{ns}-inventory", "namespace": "fleet-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "inventory"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "configmaps", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "configmaps", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmaps"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
    ):
        kube.apply(obj)
    token = kube.request_token(ns, sa)
    cfg = yaml.safe_load(src.read_text())
    cfg["users"][0]["user"] = {"token": token}
    dest.write_text(yaml.safe_dump(cfg))
    return dest


def test_forbidden_apply_is_reported_and_tracked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kube: Kube, live_cluster: LocalCluster, ns: str
) -> None:
    kube.apply(namespace(ns))
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleet-system"}})
    kubeconfig = limited_kubeconfig(kube, live_cluster.kubeconfig, tmp_path / "limited.yaml", ns)
    objects = [configmap(ns, "allowed"), deployment(ns, "refused")]
    with pytest.raises(Forbidden) as e:
        sync(KubeTarget("it-rbac", kubeconfig), objects, "6" * 40, reporter=SilentReporter())
    msg = e.value.message
    assert 'deployments.apps "refused" is forbidden' in msg
    assert "system:serviceaccount" in msg and "inventory kept at applying" in msg
    assert kube.get("v1", "ConfigMap", "allowed", ns) is not None  # what it may do, it did
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applying"
    assert {str(x) for x in inv.entries} == {f"ConfigMap/{ns}/allowed", f"Deployment/{ns}/refused"}

    repo = live_repo(tmp_path, "it-rbac", kubeconfig, objects)
    code, _, err = run_cli(capsys, "sync", "it-rbac", "--repo", str(repo))
    assert code == 1 and "is forbidden" in err and "Traceback" not in err


def test_rejected_manifest_passes_on_the_api_message_and_keeps_the_union(
    kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    r = SilentReporter()
    sync(live_target, [namespace(ns), configmap(ns, "a"), configmap(ns, "b")], "7" * 40, reporter=r)
    bad = deployment(ns, "bad")
    bad["spec"]["replicas"] = -1
    with pytest.raises(KubeError) as e:
        sync(live_target, [namespace(ns), configmap(ns, "b"), configmap(ns, "c"), bad], "8" * 40, reporter=r)
    assert "spec.replicas: Invalid value: -1" in e.value.message
    assert f"Deployment {ns}/bad" in e.value.message
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applying" and inv.revision == "8" * 40
    # the union: "a" is still tracked although the new revision dropped it
    assert {str(x) for x in inv.entries} == {
        f"Namespace/{ns}",
        f"ConfigMap/{ns}/a",
        f"ConfigMap/{ns}/b",
        f"ConfigMap/{ns}/c",
        f"Deployment/{ns}/bad",
    }
    assert kube.get("v1", "ConfigMap", "a", ns) is not None  # nothing pruned after a failure

    fixed = sync(live_target, [namespace(ns), configmap(ns, "b")], "9" * 40, reporter=r)
    assert set(fixed.pruned) == {f"ConfigMap/{ns}/a", f"ConfigMap/{ns}/c"}
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applied"
    assert {str(x) for x in inv.entries} == {f"Namespace/{ns}", f"ConfigMap/{ns}/b"}


def test_sync_converges_through_a_flaky_api_server(
    tmp_path: Path, kube: Kube, live_cluster: LocalCluster, ns: str
) -> None:
    pki = live_cluster.workdir / "kwok" / "clusters" / live_cluster.name / "pki"
    faults = Faults(status_503=0.08, status_429=0.02, reset_before=0.05, reset_after=0.05, retry_after="1")
    objects = [namespace(ns), deployment(ns, "web"), *[configmap(ns, f"c{i}", i=str(i)) for i in range(40)]]
    with FaultProxy(live_cluster.kubeconfig, pki, tmp_path / "proxy", faults) as proxy:
        target = KubeTarget("it-flaky", proxy.kubeconfig)
        sync(target, objects[:20], "a" * 40, reporter=SilentReporter())
        result = sync(target, objects, "b" * 40, reporter=SilentReporter())
        injected = {k: proxy.count(k) for k in ("503", "429", "reset-before", "reset-after")}
    assert sum(injected.values()) >= 5, injected
    assert result.objects == 42
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applied" and inv.revision == "b" * 40 and len(inv.entries) == 42
    assert (
        len(
            kube.list_objects(
                "v1", "ConfigMap", namespace=ns, label_selector="fleet.dev/managed-by=fleet"
            ).items
        )
        == 40
    )


def test_a_dead_api_server_behind_the_proxy_fails_clearly(
    tmp_path: Path, kube: Kube, live_cluster: LocalCluster, ns: str
) -> None:
    pki = live_cluster.workdir / "kwok" / "clusters" / live_cluster.name / "pki"
    sync(
        KubeTarget("it-503", live_cluster.kubeconfig),
        [namespace(ns), configmap(ns, "a")],
        "c" * 40,
        reporter=SilentReporter(),
    )
    with FaultProxy(live_cluster.kubeconfig, pki, tmp_path / "proxy", Faults(status_503=1.0)) as proxy:
        t0 = time.monotonic()
        with pytest.raises(KubeError) as e:
            sync(
                KubeTarget("it-503", proxy.kubeconfig),
                [namespace(ns), configmap(ns, "b")],
                "d" * 40,
                reporter=SilentReporter(),
            )
        assert time.monotonic() - t0 < 60
        assert proxy.count("503") >= 3  # retried, then gave up
    assert "ServiceUnavailable" in e.value.message or "injected" in e.value.message
    inv = read_inventory(kube)
    assert inv is not None and inv.revision == "c" * 40 and inv.state == "applied"  # untouched


def test_gate_that_times_out_says_so(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    from fleet.live.gates import GateConfig, run_gates

    objects = [namespace(ns), deployment(ns, "never", replicas=2, node_selector={"zone": "nowhere"})]
    sync(live_target, objects, "e" * 40, reporter=SilentReporter())
    t0 = time.monotonic()
    report = run_gates(live_target, objects, "e" * 40, GateConfig(), timeout=3, reporter=SilentReporter())
    assert 3 <= time.monotonic() - t0 < 60  # one deadline (generous upper bound: CI machines are busy)
    assert not report.passed and report.timed_out
    failed = [r for r in report.results if r.status == "failed"]
    assert [r.object for r in failed] == [f"Deployment/{ns}/never"]
    assert "did not pass within 3s" in failed[0].message
    assert any("node affinity/selector" in d for d in failed[0].details)
    with pytest.raises(Exception, match="1 gate timed out"):
        report.raise_for_failure()
