"""Helpers of the integration suite: manifests, a fleet repo for live tests, polling for tests.

Imported by the tests as ``live_support``: a module named ``conftest`` would clash with the e2e suite's
when both suites run in one pytest session."""


from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from helpers import need_tool

from fleet.adapters.kube import Kube
from fleet.live.inventory import INVENTORY_NAMESPACE

LIVE_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
    "kubectl",
)


def need_live_tools() -> None:
    for tool in LIVE_TOOLS:
        need_tool(tool)


def reset_inventory(kube: Kube) -> None:
    """Forget what earlier tests synced: each test starts with a cluster fleet never synced."""
    for cm in kube.list_objects(
        "v1", "ConfigMap", namespace=INVENTORY_NAMESPACE, label_selector="fleet.dev/inventory=true"
    ).items:
        kube.delete("v1", "ConfigMap", cm["metadata"]["name"], INVENTORY_NAMESPACE)


def make_namespace(kube: Kube, name: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def wait_until(what: str, fn: Any, timeout: float = 60, every: float = 0.2) -> Any:
    """Poll ``fn`` until truthy (test helper: fleet's own waits are watch-driven)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- manifests


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": dict(data),
    }


def deployment(
    ns: str,
    name: str,
    replicas: int = 1,
    node_selector: dict[str, str] | None = None,
    image: str = "registry.fleet.local/app:1",
) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if node_selector:
        pod["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


# ---------------------------------------------------------------- fleet repos


def write_env(repo: Path, env: str, objects: list[dict[str, Any]]) -> dict[str, str]:
    """The files of an environment overlay holding exactly ``objects`` (for GitRepo.commit)."""
    files = {f"environments/{env}/objects.yaml": yaml.safe_dump_all(objects, sort_keys=False)}
    files[f"environments/{env}/kustomization.yaml"] = yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["objects.yaml"],
        }
    )
    return files


def live_repo(
    parent: Path,
    cluster: str,
    kubeconfig: Path,
    objects: list[dict[str, Any]],
    env: str = "it",
    extra: dict[str, Any] | None = None,
) -> Path:
    """A fleet repo (``fleet init``) with one cluster ``cluster`` of environment ``env`` running
    ``objects``, reached through ``access.kubeconfig``."""
    from fleet.adapters.git import GitRepo
    from fleet.registry import init_repo

    root = init_repo(parent / "fleet").root
    spec: dict[str, Any] = {
        "apiVersion": "fleet.dev/v1",
        "kind": "Cluster",
        "name": cluster,
        "environment": env,
        "provider": "local",
        "access": {"kubeconfig": str(kubeconfig)},
    }
    spec.update(extra or {})
    files = write_env(root, env, objects)
    files[f"clusters/{cluster}.yaml"] = yaml.safe_dump(spec, sort_keys=False)
    with GitRepo.open(root) as g, g.lock():
        g.commit(files, f"add cluster {cluster}")
    return root


def commit_objects(
    repo: Path, objects: list[dict[str, Any]], env: str = "it", message: str = "change"
) -> str:
    from fleet.adapters.git import GitRepo

    with GitRepo.open(repo) as g, g.lock():
        return g.commit(write_env(repo, env, objects), message)
