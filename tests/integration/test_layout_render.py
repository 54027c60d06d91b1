"""fleet render on a repo whose layout fleet.yaml configures (an adopted kustomize tree), with kustomize."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import git, need_tool

from fleet.registry import ClusterSpec, add_cluster
from fleet.rendering import build
from fleet.rendering.build import build_overlay, inputs
from fleet.rendering.cluster import render_all, render_cluster
from tests.adopt_fixtures import kustomize_repo, write_tree

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def kustomize() -> Path:
    need_tool("fleet-build")  # renders run the builder
    path = need_tool("kustomize")
    build.clear_cache()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = kustomize_repo(tmp_path)
    write_tree(root, {
        "fleet.yaml": "apiVersion: fleet.dev/v1\nkind: Fleet\nname: acme\nregistry:\n  path: fleet/clusters\n"
                      "environments:\n  path: overlays/{env}\n",
    })
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "adopt")
    add_cluster(root, ClusterSpec(name="eu-1", environment="prod", vars={"REPLICAS": "4"}))
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev"))
    return root


def test_render_builds_the_overlay_the_pattern_names(repo: Path) -> None:
    r = render_cluster(repo, "eu-1")
    kinds = {o["kind"]: o for o in r.objects}
    assert kinds["Namespace"]["metadata"]["name"] == "web-prod"
    assert kinds["Deployment"]["spec"]["replicas"] == 3  # the overlay's patch, over ${REPLICAS:=1}
    assert kinds["ConfigMap"]["data"]["GREETING"] == "hello from eu-1"
    dev = render_cluster(repo, "dev-1")
    assert {o["kind"]: o for o in dev.objects}["Deployment"]["spec"]["replicas"] == 1
    assert [x.cluster for x in render_all(repo)] == ["dev-1", "eu-1"]
    assert "namespace: web-prod" in build_overlay(repo, "prod")
    assert set(inputs(repo, "prod")) == {"overlays/prod", "bases/app"}


def test_a_registry_commit_does_not_rebuild(repo: Path) -> None:
    render_cluster(repo, "eu-1")
    runs = build.stats()["kustomize_runs"]
    add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))
    render_cluster(repo, "eu-2")
    assert build.stats()["kustomize_runs"] == runs
