"""Helpers of the e2e suite (importable by its tests; fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import commit_file, need_tool

ENGINE_TOOLS = ("pulumi", "pulumi-resource-pulumi-python")
CLUSTER_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
    "kubectl",
)
OPERATOR_URL = "https://git.example.com/platform/fleet.git"


def need_engine() -> None:
    for t in ENGINE_TOOLS:
        need_tool(t)


def need_local_clusters() -> None:
    need_engine()
    for t in CLUSTER_TOOLS:
        need_tool(t)


def make_fleet_repo(parent: Path) -> Path:
    """``fleet init`` with a bare remote beside it; the operator's URL set to an https URL (Flux accepts
    only http(s)/ssh, and no controller process runs on a kwok cluster to clone it)."""
    from fleet.registry import init_repo

    remote = parent / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    root = init_repo(parent / "fleet", remote_url=str(remote)).root
    text = (root / "fleet.yaml").read_text().replace(f"url: {remote}", f"url: {OPERATOR_URL}")
    commit_file(root, "fleet.yaml", text, "operator URL")
    subprocess.run(["git", "-C", str(root), "push", "-q", "origin", "HEAD"], check=True)
    return root
