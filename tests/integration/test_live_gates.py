"""fleet gate against a real local cluster: healthy revisions pass and are recorded, broken ones fail
with a message that says why."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from helpers import run_cli
from live_support import configmap, deployment, live_repo, namespace

from fleet.adapters.kube import Kube, KubeTarget
from fleet.good import get_good
from fleet.live.apply import sync
from fleet.live.gates import GateConfig, run_gates
from fleet.operator.flux import FluxOperator
from fleet.output import SilentReporter
from fleet.registry.model import CustomGate

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def job(ns: str, name: str) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "j", "image": "registry.fleet.local/job:1"}],
                }
            }
        },
    }


def test_healthy_revision_passes_and_records_last_good(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live_target: KubeTarget, ns: str
) -> None:
    objects = [namespace(ns), configmap(ns, "settings"), deployment(ns, "web", replicas=2)]
    repo = live_repo(tmp_path, "it-good", live_target.kubeconfig, objects)  # type: ignore[arg-type]
    code, out, err = run_cli(capsys, "sync", "it-good", "--repo", str(repo), "-o", "json")
    assert code == 0, err
    revision = json.loads(out)["revision"]
    assert get_good(repo, "it-good") is None

    code, out, err = run_cli(
        capsys, "gate", "it-good", "--repo", str(repo), "--timeout", "120s", "--mark-good", "-o", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] is True and report["revision"] == revision
    by_gate = {(r["gate"], r["object"]): r["status"] for r in report["results"]}
    assert by_gate[("rollout", f"Deployment/{ns}/web")] == "passed"
    assert by_gate[("inventory", "ConfigMap/fleet-system/fleet-inventory")] == "passed"
    assert by_gate[("operator", "Kustomization/flux-system/*")] == "skipped"  # kwok: Flux never runs
    good = get_good(repo, "it-good")
    assert good is not None and good.revision == revision
    assert good.duration_s is not None and any(g.get("gate") == "rollout" for g in good.gates)
    assert "recorded" in err


def test_broken_deployment_fails_the_gate_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live_target: KubeTarget, ns: str
) -> None:
    objects = [namespace(ns), deployment(ns, "stuck", node_selector={"disktype": "unobtainium"})]
    repo = live_repo(tmp_path, "it-broken", live_target.kubeconfig, objects)  # type: ignore[arg-type]
    assert run_cli(capsys, "sync", "it-broken", "--repo", str(repo))[0] == 0

    t0 = time.monotonic()
    code, out, err = run_cli(
        capsys, "gate", "it-broken", "--repo", str(repo), "--timeout", "6s", "--mark-good"
    )
    took = time.monotonic() - t0
    assert code == 1
    assert took < 60  # the 6 s deadline, plus start-up on a busy machine
    assert f"Deployment/{ns}/stuck" in out and "failed" in out
    assert "did not pass within 6s: 0 of 1 replicas" in out
    # the reason, from the pod's conditions and events
    assert "didn't match Pod's node affinity/selector" in err
    assert "1 gate timed out" in err
    assert get_good(repo, "it-broken") is None  # nothing recorded


def test_jobs_crds_and_custom_gates(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{ns}.example.com"},
        "spec": {
            "group": f"{ns}.example.com",
            "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    gadget = {
        "apiVersion": f"{ns}.example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": ns},
        "spec": {"size": 1},
    }
    objects = [namespace(ns), crd, gadget, job(ns, "migrate")]
    sync(live_target, objects, "4" * 40, reporter=SilentReporter())
    custom = CustomGate(
        apiVersion=f"{ns}.example.com/v1", kind="Gadget", name="g1", namespace=ns, condition="Ready"
    )
    cfg = GateConfig(custom=(custom,))
    report = run_gates(live_target, objects, "4" * 40, cfg, timeout=3, reporter=SilentReporter())
    status = {r.object: r.status for r in report.results}
    assert status[f"CustomResourceDefinition/gadgets.{ns}.example.com"] == "passed"
    assert status[f"Gadget/{ns}/g1 Ready=True"] == "failed"  # nobody set the condition
    assert not report.passed and report.timed_out

    # kwok's fake kubelet runs the Job's pod to completion; a controller reports the gadget Ready
    kube._call(
        "PATCH",
        f"/apis/{ns}.example.com/v1/namespaces/{ns}/gadgets/g1/status",
        body={"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}},
        content_type="application/merge-patch+json",
    )
    report = run_gates(live_target, objects, "4" * 40, cfg, timeout=60, reporter=SilentReporter())
    assert report.passed, [r for r in report.results if r.status != "passed"]
    assert {r.gate for r in report.results} >= {"job", "crd", "custom", "inventory"}


def test_operator_gate_auto_on_and_off(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    from fleet import toolchain

    crd_file = toolchain.flux_manifests_dir() / "kustomize-controller" / "crds"
    crd = next(d for f in sorted(crd_file.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d)
    revision = "5" * 40
    apps = [namespace(ns), configmap(ns, "settings")]
    ks = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": f"fleet-{ns}", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "path": "./environments/it",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "fleet"},
        },
    }
    try:
        sync(live_target, [crd, namespace("flux-system"), ks, *apps], revision, reporter=SilentReporter())
        r = SilentReporter()
        # auto: the CRD is there, but no controller ever wrote status nor holds a lease -> skipped
        report = run_gates(live_target, apps, revision, GateConfig(operator=FluxOperator()), timeout=10, reporter=r)
        status = {r.gate: (r.status, r.message) for r in report.results}
        assert report.passed
        assert status["operator"][0] == "skipped" and "not running" in status["operator"][1]
        assert status["inventory"][0] == "passed"
        # on: required; the Kustomization is not Ready -> fails, saying so; the inventory gate steps aside
        report = run_gates(
            live_target,
            apps,
            revision,
            GateConfig(operator=FluxOperator(), operator_gate="on"),
            timeout=2,
            reporter=r,
        )
        status = {r.gate: (r.status, r.message) for r in report.results}
        assert not report.passed
        assert (
            status["operator"][0] == "failed"
            and f"Kustomization fleet-{ns} not ready" in status["operator"][1]
        )
        assert status["inventory"][0] == "skipped"
        # a controller reports the revision applied: auto now sees a running operator and requires it
        kube._call(
            "PATCH",
            f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/fleet-{ns}/status",
            body={
                "status": {
                    "observedGeneration": 1,
                    "lastAppliedRevision": f"main@sha1:{revision}",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "ReconciliationSucceeded",
                            "message": "Applied revision",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ],
                }
            },
            content_type="application/merge-patch+json",
        )
        report = run_gates(live_target, apps, revision, GateConfig(operator=FluxOperator()), timeout=10, reporter=r)
        status = {r.gate: (r.status, r.message) for r in report.results}
        assert report.passed and status["operator"][0] == "passed", status
        other = run_gates(live_target, apps, "6" * 40, GateConfig(operator=FluxOperator()), timeout=1, reporter=r)
        assert not other.passed
        assert any("expected 666666666666" in x.message for x in other.results if x.gate == "operator")
        off = run_gates(
            live_target,
            apps,
            "6" * 40,
            GateConfig(operator=FluxOperator(), operator_gate="off"),
            timeout=1,
            reporter=r,
        )
        assert [x.status for x in off.results if x.gate == "operator"] == ["skipped"]
    finally:
        kube.delete("kustomize.toolkit.fluxcd.io/v1", "Kustomization", f"fleet-{ns}", "flux-system")
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])


def test_gates_pass_together_not_one_at_a_time(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    """A gate that passed and then regressed (its object changed after it passed: an operator applying
    the revision later, as a Flux Kustomization waiting for its dependencies does) does not count: the
    gates pass only when all hold in one snapshot. The change is made when the first gate passes (the
    reporter's own line), and the regressed object never recovers: the run waits to its deadline."""
    first = deployment(ns, "first")
    second = deployment(ns, "second", node_selector={"fleet.dev/pool": "later"})  # pending until changed
    objects = [namespace(ns), first, second]
    sync(live_target, objects, "f" * 40, reporter=SilentReporter())

    class Hook(SilentReporter):
        def ok(self, msg: str) -> None:
            super().ok(msg)
            if msg.startswith(f"Deployment/{ns}/first:"):
                # first rolls to pods no node takes; second becomes schedulable
                kube.apply(deployment(ns, "first", node_selector={"fleet.dev/pool": "none"}), field_manager="it")
                kube.apply({**second, "spec": {**second["spec"], "template": {
                    "metadata": {"labels": {"app": "second"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.fleet.local/app:1"}]}}}},
                    field_manager="fleet")

    r = Hook()
    report = run_gates(live_target, objects, "f" * 40, GateConfig(), timeout=15, reporter=r)
    by = {res.object: res for res in report.results}
    assert by[f"Deployment/{ns}/second"].status == "passed", r.lines
    assert not report.passed and report.timed_out, r.lines
    assert by[f"Deployment/{ns}/first"].message.startswith("did not pass within 15s"), r.lines
