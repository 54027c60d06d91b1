"""A `fleet provision` killed in the middle (SIGKILL to its process group, as a crash) is resumed by
running the same command again: the stale lock is removed, the pending create is done again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from e2e_support import kill_at, make_fleet_repo, need_local_clusters, stack_locks

from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.output import SilentReporter
from fleet.provision import destroy, provision
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("provision-resume")]

NAME = f"e2e-resume-{os.getpid() % 10000}"


def program() -> object:
    from clusters import program

    return program


def test_a_killed_provision_is_resumed_by_running_it_again(
    tmp_path: Path, pulumi_env: EngineSettings, fleet_home: Path
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev", settings={"nodes": 1}))
    log = tmp_path / "first.log"
    kwok_dir = LocalClusters().workdir / "kwok" / "clusters" / NAME

    def creating_the_cluster() -> bool:
        """Inside the engine's update (the stack's lock is held), the LocalCluster's create begun and not
        finished, kwokctl at work (the cluster's kwok directory exists)."""
        text = log.read_text()
        return ("creating LocalCluster" in text and "created LocalCluster" not in text
                and bool(stack_locks(NAME)) and kwok_dir.is_dir())

    try:
        kill_at([sys.executable, "-m", "fleet", "provision", NAME, "--repo", str(repo)], fleet_home,
                "the LocalCluster being created", creating_the_cluster, log=log,
                settled=LocalClusters().kubeconfig_path(NAME).is_file)  # kwokctl, left running, has made it
        assert stack_locks(NAME), "the killed update left no lock: the kill was not inside the update"

        r = SilentReporter()
        res = provision(repo, NAME, program=program(), reporter=r, engine=pulumi_env)
        assert any("removed a stale lock" in ln for ln in r.lines), r.lines
        assert res.changes.get("create", 0) >= 4
        assert LocalClusters().healthy(NAME)
        again = provision(repo, NAME, program=program(), reporter=SilentReporter(), engine=pulumi_env)
        assert again.unchanged, again.changes
    finally:
        try:
            destroy(NAME, program=program(), reporter=SilentReporter(), engine=pulumi_env)
        finally:
            LocalClusters()._delete_quietly(NAME)
