"""A ``kwokctl create`` killed part-way (Ctrl-C, a SIGKILLed ``fleet bootstrap``) leaves the cluster's directory
half made; ``kwokctl start`` of it waits out its whole timeout (240 s) and fails. The next ``fleet local create``
recognises it (no ``fleet-created`` marker), deletes it, stops the components the killed create started but never
recorded, and creates it again, saying so. A complete cluster that is merely stopped is started, its data kept.

The kill is placed at an explicit state: ``fleet local create`` runs in its own process group; once the cluster's
kwok.yaml exists and fleet has not written the cluster's kubeconfig yet (kwokctl create is still running), the
group is frozen (SIGSTOP), the state checked again on the frozen run, and only then killed (SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import need_tool

from fleet import toolchain
from fleet.adapters import proc
from fleet.local.clusters import CREATED, LocalClusters

pytestmark = [pytest.mark.integration]

NAME = f"it-half-{os.getpid() % 10000}"


@pytest.fixture
def clusters(fleet_home: Path) -> Iterator[LocalClusters]:
    need_tool("kwokctl")
    lc = LocalClusters()
    try:
        yield lc
    finally:
        lc._delete_quietly(NAME)  # whatever happened, nothing is left running


def fleet_local_create(*, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", "local", "create", NAME], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def kubectl(lc: LocalClusters, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(lc.kubeconfig_path(NAME)), *args],
                          capture_output=True, text=True, timeout=60)


def recorded_pids(cdir: Path) -> set[int]:
    return {int(p.read_text().strip()) for p in (cdir / "pids").glob("*.pid")}


def kill_mid_create(lc: LocalClusters) -> None:
    """Run ``fleet local create`` and SIGKILL its process group (fleet and kwokctl) while kwokctl creates."""
    cdir = lc.workdir / "kwok" / "clusters" / NAME

    def creating() -> bool:
        return (cdir / "kwok.yaml").is_file() and not lc.kubeconfig_path(NAME).exists()

    run = subprocess.Popen([sys.executable, "-m", "fleet", "local", "create", NAME], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while not creating():
            assert run.poll() is None, f"fleet local create exited ({run.returncode}) before kwokctl wrote kwok.yaml"
            assert time.monotonic() < deadline, "kwokctl never wrote the cluster's kwok.yaml"
            time.sleep(0.01)  # polling an explicit state: the file kwokctl writes first
        os.killpg(run.pid, signal.SIGSTOP)
        assert creating(), "the create left the state between the check and the freeze: the kill would miss it"
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)


def test_a_create_killed_while_kwokctl_creates_is_recreated_quickly(clusters: LocalClusters) -> None:
    lc = clusters
    cdir = lc.workdir / "kwok" / "clusters" / NAME
    kill_mid_create(lc)
    # the state it leaves: kwokctl lists the cluster, fleet knows it is not complete
    assert lc.exists(NAME) and not lc.complete(NAME) and not (cdir / CREATED).exists()
    assert not lc.healthy(NAME)

    started = time.monotonic()
    done = fleet_local_create()
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f'⚠ local cluster "{NAME}" was left half made' in done.stderr, done.stderr
    assert took < 120, f"the next create took {took:.0f}s (kwokctl start of a half-made cluster waits 240 s)"
    assert lc.healthy(NAME) and lc.complete(NAME) and (cdir / CREATED).is_file()
    nodes = json.loads(kubectl(lc, "get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 2 and all(any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in n["status"]["conditions"]) for n in nodes), nodes
    # nothing the killed create started is left: every component running from the cluster's bin is recorded
    assert set(proc.running_from(cdir / "bin")) == recorded_pids(cdir)
    print(f"recreated in {took:.1f}s")


def test_a_stopped_complete_cluster_is_started_not_recreated(clusters: LocalClusters) -> None:
    lc = clusters
    first = fleet_local_create()
    assert first.returncode == 0, first.stderr
    assert lc.complete(NAME)
    made = kubectl(lc, "create", "configmap", "kept", "--from-literal=k=v")
    assert made.returncode == 0, made.stderr
    lc.stop(NAME)
    assert not lc.healthy(NAME) and lc.complete(NAME)

    again = fleet_local_create()
    assert again.returncode == 0, again.stderr
    assert "half made" not in again.stderr, again.stderr
    assert lc.healthy(NAME)
    kept = kubectl(lc, "get", "configmap", "kept", "-o", "jsonpath={.data.k}")
    assert kept.returncode == 0 and kept.stdout == "v", kept.stderr  # the data survived: started, not recreated
