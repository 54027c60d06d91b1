"""The live side on adopted repos, without a cluster: the operator gate and what the operator applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.live import health as h
from fleet.operator.flux.gate import operator_gate as _operator_gate

REV = "a" * 40


def _ks(name: str, source: str, applied: str, kind: str = "GitRepository") -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"sourceRef": {"kind": kind, "name": source}},
        "status": {"lastAppliedRevision": applied, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _snap(*objs: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", o["metadata"]["name"]): o for o in objs}


def test_operator_gate_wants_the_fleet_repo_at_the_revision_and_other_sources_ready() -> None:
    gate = _operator_gate(REV, "flux-system")
    tree = [_ks("apps", "flux-system", f"main@sha1:{REV}"), _ks("monitoring", "monitoring", "1.2.0@sha256:ff",
                                                                  kind="OCIRepository")]
    assert gate.evaluate(_snap(*tree)).state == h.OK
    behind = _ks("infra", "flux-system", "main@sha1:" + "b" * 40)
    health = gate.evaluate(_snap(*tree, behind))
    assert health.state == h.WAITING and "Kustomization infra applied" in health.message
    not_ready = _ks("monitoring", "monitoring", "1.2.0@sha256:ff", kind="OCIRepository")
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False", "message": "pull failed"}]
    assert gate.evaluate(_snap(tree[0], not_ready)).state == h.WAITING


def test_the_operator_applies_the_clusters_own_flux_directory(tmp_path: Path) -> None:
    from fleet.operator.flux.install import kustomization_path
    from fleet.registry import ClusterSource, ClusterSpec, FleetSettings
    from fleet.stackconfig import StackConfig

    settings = FleetSettings.model_validate({"environments": {"path": "deploy/overlays/{env}"}})
    flux = ClusterSpec(name="staging", environment="staging", source=ClusterSource(flux="clusters/staging"))
    plain = ClusterSpec(name="eu-1", environment="prod")
    def cfg(spec: ClusterSpec) -> StackConfig:
        return StackConfig(spec, settings, "https://git.example.com/acme/fleet.git", "main", REV)

    assert kustomization_path(cfg(flux)) == "./clusters/staging"
    assert kustomization_path(cfg(plain)) == "./deploy/overlays/prod"
