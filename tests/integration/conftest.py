"""Integration fixtures: ONE real local cluster for the whole run, a fresh namespace per test.

Tests that use ``live_cluster`` carry ``pytest.mark.xdist_group("live")`` so that, under
``pytest -n N --dist loadgroup``, they all run in one worker and share the one cluster.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import need_tool

from fleet.adapters.kube import Kube, KubeTarget
from fleet.live.inventory import INVENTORY_NAMESPACE
from fleet.local import LocalCluster, LocalClusters

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


@pytest.fixture(scope="session")
def live_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clusters")


@pytest.fixture(scope="session")
def live_cluster(live_workdir: Path) -> Iterator[LocalCluster]:
    """One local cluster (real control plane, 2 kwok nodes) for the session; deleted at the end."""
    need_live_tools()
    clusters = LocalClusters(live_workdir)
    name = f"it-{os.getpid()}"
    try:
        yield clusters.create(name, nodes=2)
    finally:
        clusters._delete_quietly(name)


@pytest.fixture(scope="session")
def live_target(live_cluster: LocalCluster) -> KubeTarget:
    return KubeTarget(live_cluster.name, live_cluster.kubeconfig)


@pytest.fixture(scope="session")
def kube(live_target: KubeTarget) -> Kube:
    return Kube.connect(live_target)


def reset_inventory(kube: Kube) -> None:
    """Forget what earlier tests synced: each test starts with a cluster fleet never synced."""
    for cm in kube.list_objects(
        "v1", "ConfigMap", namespace=INVENTORY_NAMESPACE, label_selector="fleet.dev/inventory=true"
    ).items:
        kube.delete("v1", "ConfigMap", cm["metadata"]["name"], INVENTORY_NAMESPACE)


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    """A fresh namespace name for this test (created by the test's own sync, or by ``make_namespace``);
    deleted afterwards. The inventory is reset before the test."""
    reset_inventory(kube)
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    kube.delete("v1", "Namespace", name)


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
