"""fleet sync, diff and gate on adopted repos against a real local cluster: a kustomize overlay tree and a
Flux repo (its cluster directory expanded as Flux would, applied by fleet directly: kwok runs no Flux)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import git, need_flux_manifests, run_cli

from fleet.adapters.kube import Kube, KubeTarget
from fleet.adopt import adopt_repo
from tests.adopt_fixtures import kustomize_repo, write_tree

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def _commit(root: Path, files: dict[str, str], message: str) -> None:
    write_tree(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def _entry(name: str, env: str, kubeconfig: Path, flux: str | None = None) -> str:
    spec = {"name": name, "environment": env, "access": {"kubeconfig": str(kubeconfig)}}
    if flux:
        spec["source"] = {"flux": flux}
    return yaml.safe_dump(spec, sort_keys=False)


def test_an_adopted_kustomize_tree_syncs_and_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    root = kustomize_repo(tmp_path)
    _commit(root, {
        "overlays/dev/kustomization.yaml": f"namespace: {ns}\nresources: [namespace.yaml, ../../bases/app]\n",
        "overlays/dev/namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
    }, "a namespace of its own")
    plan = adopt_repo(root)
    _commit(root, {f"{plan.layout.registry}/it-kust.yaml": _entry("it-kust", "dev", live_target.kubeconfig)},
            "add it-kust")
    code, out, err = run_cli(capsys, "sync", "it-kust", "--sync", "direct", "--repo", str(root), "-o", "json")
    assert code == 0, err
    assert json.loads(out)["objects"] == 4
    assert kube.get("v1", "ConfigMap", "web-config", ns)["data"] == {"GREETING": "hello from it-kust"}  # type: ignore[index]
    code, out, err = run_cli(capsys, "diff", "it-kust", "--repo", str(root))
    assert code == 0 and "no drift" in out, err
    code, out, err = run_cli(capsys, "gate", "it-kust", "--repo", str(root), "--timeout", "120s", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["passed"] is True


def _flux_crds() -> str:
    docs = []
    for ctl, name in (("source-controller", "source.toolkit.fluxcd.io_gitrepositories.yaml"),
                      ("kustomize-controller", "kustomize.toolkit.fluxcd.io_kustomizations.yaml")):
        docs.append((need_flux_manifests() / ctl / "crds" / name).read_text())
    return "---\n".join(docs)


def test_an_adopted_flux_repo_syncs_what_flux_would_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    """A Flux repo without Helm or OCI (kwok runs no controllers, so no CRDs but Flux's own two)."""
    crds = _flux_crds()  # skipped while the toolchain is not built, failed in CI (need_flux_manifests)
    root = tmp_path / "fleet-infra"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    _commit(root, {
        "clusters/it/flux-system/gotk-components.yaml": crds,
        "clusters/it/flux-system/gotk-sync.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: GitRepository
            metadata: {{name: flux-system, namespace: flux-system}}
            spec: {{interval: 1m, url: "ssh://git@example.com/acme/{ns}", ref: {{branch: main}}}}
            ---
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: flux-system, namespace: flux-system}}
            spec:
              interval: 10m
              path: ./clusters/it
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "clusters/it/flux-system/kustomization.yaml": "resources: [gotk-components.yaml, gotk-sync.yaml]\n",
        "clusters/it/namespaces.yaml": f"""
            apiVersion: v1
            kind: Namespace
            metadata: {{name: flux-system}}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {{name: {ns}}}
        """,
        "clusters/it/apps.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: apps-{ns}, namespace: flux-system}}
            spec:
              interval: 10m
              path: ./apps/it
              prune: true
              targetNamespace: {ns}
              sourceRef: {{kind: GitRepository, name: flux-system}}
              postBuild:
                substitute: {{GREETING: hello}}
        """,
        "apps/it/app.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: app}
            data: {greeting: "${GREETING} from ${CLUSTER:=flux}"}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 1
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: web, image: registry.fleet.local/app:1}]}
        """,
    }, "flux repo")
    plan = adopt_repo(root)
    assert [c.name for c in plan.clusters] == ["it"]
    _commit(root, {"fleet/clusters/it.yaml": _entry("it", "it", live_target.kubeconfig, "clusters/it")}, "access")
    try:
        code, out, err = run_cli(capsys, "sync", "it", "--sync", "direct", "--repo", str(root), "-o", "json")
        assert code == 0, err
        assert kube.get("v1", "ConfigMap", "app", ns)["data"] == {"greeting": "hello from flux"}  # type: ignore[index]
        assert kube.get("apps/v1", "Deployment", "web", ns) is not None
        ks = kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", f"apps-{ns}", "flux-system")
        assert ks is not None and ks["spec"]["targetNamespace"] == ns
        code, out, err = run_cli(capsys, "diff", "it", "--repo", str(root))
        assert code == 0 and "no drift" in out, err
        code, out, err = run_cli(capsys, "gate", "it", "--repo", str(root), "--timeout", "120s", "-o", "json")
        assert code == 0, err
    finally:
        for kind, name in (("Kustomization", f"apps-{ns}"), ("Kustomization", "flux-system")):
            kube.delete("kustomize.toolkit.fluxcd.io/v1", kind, name, "flux-system")
        kube.delete("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
