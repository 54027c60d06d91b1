"""Helpers of the e2e suite (importable by its tests; fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import need_tool

ENGINE_TOOLS = ("pulumi", "pulumi-resource-pulumi-python")
CLUSTER_TOOLS = (
    "source-controller",
    "kustomize-controller",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
    "kubectl",
)


def need_engine() -> None:
    for t in ENGINE_TOOLS:
        need_tool(t)


def need_local_clusters() -> None:
    need_engine()
    for t in CLUSTER_TOOLS:
        need_tool(t)


def make_fleet_repo(parent: Path) -> Path:
    """``fleet init`` with a bare remote beside it, pushed. The remote is a local path: fleet serves it
    over smart HTTP on loopback beside each local cluster, and Flux's controllers clone it from there
    (so what a test commits reaches the operator once pushed: :func:`push`)."""
    from fleet.registry import init_repo

    remote = parent / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    root = init_repo(parent / "fleet", remote_url=str(remote)).root
    push(root)
    return root


def push(repo: Path) -> None:
    """Publish the branch to the remote the operator clones."""
    subprocess.run(["git", "-C", str(repo), "push", "-q", "origin", "HEAD"], check=True)
