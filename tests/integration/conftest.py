"""Integration fixtures: ONE real local cluster for the whole run, a fresh namespace per test.

Tests that use ``live_cluster`` carry ``pytest.mark.xdist_group("live")`` so that, under
``pytest -n N --dist loadgroup``, they all run in one worker and share the one cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_support import need_live_tools, reset_inventory

from fleet.adapters.kube import Kube, KubeTarget
from fleet.local.clusters import LocalCluster, LocalClusters


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


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    """A fresh namespace name for this test (created by the test's own sync, or by ``make_namespace``);
    deleted afterwards. The inventory is reset before the test."""
    reset_inventory(kube)
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    kube.delete("v1", "Namespace", name)
