"""A `fleet provision` killed in the middle (SIGKILL to its process group, as a crash) is resumed by
running the same command again: the stale lock is removed, the pending create is done again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_support import make_fleet_repo, need_local_clusters

from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local import LocalClusters
from fleet.output import SilentReporter
from fleet.provision import destroy, provision
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("provision-resume")]

NAME = f"e2e-resume-{os.getpid() % 10000}"


def program() -> object:
    from clusters import program

    return program


def _kill_orphan_providers(fleet_home: Path) -> None:
    """The engine's plugins live in their own process groups; after a crash, end ours."""
    mark = f"FLEET_HOME={fleet_home}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if b"pulumi.dynamic" in cmd and mark in env.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(d.name), signal.SIGKILL)


def _wait_group_dead(pgid: int, timeout: float = 30) -> None:
    """SIGKILL is delivered asynchronously: wait until no member of the group is still running
    (exited members stay zombies here, since PID 1 does not reap them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                running.append(d.name)
        if not running:
            return
        time.sleep(0.1)
    pytest.fail(f"processes {running} of the killed group {pgid} still run after {timeout:.0f}s")


def test_a_killed_provision_is_resumed_by_running_it_again(
    tmp_path: Path, pulumi_env: EngineSettings, fleet_home: Path
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev", settings={"nodes": 1}))
    log = tmp_path / "first.log"
    try:
        with open(log, "w") as out:
            first = subprocess.Popen(
                [sys.executable, "-m", "fleet", "provision", NAME, "--repo", str(repo)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while "creating LocalCluster" not in log.read_text() and time.monotonic() < deadline:
            assert first.poll() is None, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # kwokctl is at work
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        _wait_group_dead(first.pid)  # the crash is over: the engine too has exited, not just fleet
        _kill_orphan_providers(fleet_home)

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
