"""The local cluster really runs Kubernetes: Deployments become Available, namespaces really go away."""

from __future__ import annotations

import pytest
from live_support import deployment, make_namespace, wait_until

from fleet.adapters.kube import Kube, KubeTarget
from fleet.live.gates import GateConfig, run_gates
from fleet.output import SilentReporter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def test_deployment_reaches_available(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    make_namespace(kube, ns)
    kube.apply(deployment(ns, "web", replicas=2))
    report = run_gates(
        live_target,
        [deployment(ns, "web", replicas=2)],
        "0" * 40,
        GateConfig(check_inventory=False),
        timeout=60,
        reporter=SilentReporter(),
    )
    assert report.passed, report.results
    live = kube.get("apps/v1", "Deployment", "web", ns)
    assert live is not None
    available = [c for c in live["status"]["conditions"] if c["type"] == "Available"]
    assert available and available[0]["status"] == "True"
    assert live["status"]["availableReplicas"] == 2
    pods = kube.list_objects("v1", "Pod", namespace=ns, label_selector="app=web").items
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)


def test_namespace_deletion_really_finishes(kube: Kube, ns: str) -> None:
    make_namespace(kube, ns)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": ns},
            "data": {"k": "v"},
        }
    )
    kube.apply(deployment(ns, "web"))
    assert kube.delete("v1", "Namespace", ns)
    # the namespace controller empties it and removes the finalizer: the namespace is really gone
    wait_until(f"namespace {ns} to be gone", lambda: kube.get("v1", "Namespace", ns) is None, timeout=90)
    assert kube.get("v1", "ConfigMap", "c", ns) is None
