"""fleet render without kustomize: what it refuses before any build (an unknown cluster, revision or
environment). Rendering with the real kustomize is in tests/integration/test_render_kustomize.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import NotFound
from fleet.registry import ClusterSpec, add_cluster
from fleet.rendering.build import inputs
from fleet.rendering.cluster import render_cluster
from tests.helpers import new_fleet_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    add_cluster(
        root, ClusterSpec(name="eu-1", environment="prod", region="eu-west-1", vars={"REPLICAS": "5"})
    )
    add_cluster(root, ClusterSpec(name="eu-2", environment="prod", region="eu-west-2"))
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev"))
    return root


def test_unknown_cluster_revision_and_environment(repo: Path) -> None:
    with pytest.raises(NotFound, match='cluster "eu-3" not found in clusters/ at') as e:
        render_cluster(repo, "eu-3")
    assert e.value.hint in ("did you mean eu-1, eu-2?", "did you mean eu-2, eu-1?")
    with pytest.raises(NotFound, match='revision "v9" not found'):
        render_cluster(repo, "eu-1", "v9")
    with pytest.raises(NotFound, match='environment "qa" not found'):
        inputs(repo, "qa")
