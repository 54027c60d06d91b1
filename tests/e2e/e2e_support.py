"""Helpers of the e2e suite (importable by its tests; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import need_tool

if TYPE_CHECKING:
    from fleet.local.clusters import LocalClusters

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


def fleet(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,), timeout: float = 900,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fleet ARGS`` as a user would, in ``env`` (this tree first on PYTHONPATH, the test's
    FLEET_HOME and Pulumi backend) and ``cwd`` (e.g. inside the fleet repo); fail the test, with the end of
    its stderr, unless it exits with one of ``ok``."""
    done = subprocess.run([sys.executable, "-m", "fleet", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode in ok, f"fleet {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


@contextlib.contextmanager
def removed_at_end(env: dict[str, str], lc: LocalClusters, name: str) -> Iterator[None]:
    """Whatever the block does, end with the cluster ``name`` gone: its stack destroyed (a failure there does
    not hide the block's own), its local cluster and Flux's controllers beside it deleted, none left running."""
    try:
        yield
    finally:
        try:
            fleet(env, "destroy", name, "--yes", ok=(0, 1, 2))
        finally:
            lc._delete_quietly(name)
            assert not lc.operator.status(name)


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


# ---- crashes placed at an explicit state ---------------------------------------------------------


def stack_locks(stack: str) -> list[Path]:
    """The lock files the file backend holds for ``stack``: present exactly while an update of the stack
    runs (and left behind, stale, when that update is killed)."""
    from fleet.adapters.pulumi_auto import Engine, default_settings

    return Engine(default_settings()).locks(stack)


def kill_at(cmd: Sequence[str], home: Path, what: str, ready: Callable[[], bool], *, log: Path,
            settled: Callable[[], bool] | None = None, timeout: float = 300) -> None:
    """Run ``cmd`` in its own process group and crash it (:func:`crash`) in the state ``ready`` describes.

    ``ready`` reads an explicit state of the run (its journal, the stack's lock file, the files and lines it
    writes); it is polled until it holds, then the run's process group is frozen (SIGSTOP) and ``ready`` is
    checked again on the frozen run, so the kill lands in that state and nowhere else: a run that left the
    state between the check and the freeze fails the test, saying so."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the run never reached {what} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)  # polling an explicit state; nothing is placed by the clock
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) at {what}:\n{log.read_text()[-3000:]}"
        assert ready(), f"the run left the state ({what}) before it was frozen"
    finally:
        crash(proc, home, settled)


def crash(proc: subprocess.Popen[bytes], home: Path, settled: Callable[[], bool] | None = None) -> None:
    """SIGKILL to the process group of the run ``proc`` leads (the CLI and its Pulumi engine), as a crash.

    What the run started in other process groups outlives the crash, as it would: the engine's plugins
    and dynamic providers, and the tools they run (kwokctl, kubectl). When ``settled`` is given, they go on
    until it holds (the state their work in flight ends in, e.g. kwokctl has created the cluster; a
    kwokctl killed half way is a case of its own: tests/integration/test_local_half_made.py). Then they
    are ended too, as the plugins never exit by themselves; returns once none of them runs. The local
    clusters' own processes (etcd, the API server, kwok, the Flux controllers) live on."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # frozen (SIGSTOP) or not, it dies at once
    proc.wait(60)
    wait_gone(lambda: _members(proc.pid), f"the killed group {proc.pid}")
    if settled is not None:
        wait_until(settled, "the crashed run's work in flight to settle",
                   detail=lambda: "still running: " + "; ".join(_describe(p) for p in leftovers(home)))
    kill_leftovers(home)


def kill_leftovers(home: Path) -> None:
    """End the processes crashed runs of FLEET_HOME ``home`` left (:func:`leftovers`) and wait until they
    have exited."""
    _signal(leftovers(home), signal.SIGKILL)
    wait_gone(lambda: leftovers(home), f"the crashed runs of {home}")


def leftovers(home: Path) -> list[int]:
    """What runs of FLEET_HOME ``home`` start outside their process group: the Pulumi engine's plugins and
    dynamic providers (and their shell wrappers), and the tools they run (kwokctl, kubectl)."""
    mark = f"FLEET_HOME={home}".encode()

    def ours(cmd: bytes, env: bytes) -> bool:
        argv0 = os.path.basename(cmd.split(b"\0")[0])
        return mark in env.split(b"\0") and (b"pulumi" in cmd or argv0 in (b"kwokctl", b"kubectl"))

    return _processes(ours)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300,
               detail: Callable[[], str] = lambda: "") -> None:
    """Poll an explicit state until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; {detail()}")
        time.sleep(0.1)


def wait_gone(running: Callable[[], list[int]], what: str, timeout: float = 60) -> None:
    """Poll until ``running()`` is empty (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while left := running():
        if time.monotonic() > deadline:
            pytest.fail(f"processes {left} of {what} still run {timeout:.0f}s after SIGKILL")
        time.sleep(0.1)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _describe(pid: int) -> str:
    try:
        return f"{pid} " + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return f"{pid} (gone)"


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _running(pid: int) -> bool:
    """Alive and not a zombie (exited processes stay zombies here, since PID 1 does not reap them)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _members(pgid: int) -> list[int]:
    members = []
    for d in Path("/proc").iterdir():
        fields = _stat(int(d.name)) if d.name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(d.name))
    return members


def _processes(match: Callable[[bytes, bytes], bool]) -> list[int]:
    """Running processes whose command line and environment ``match``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd, env = (d / "cmdline").read_bytes(), (d / "environ").read_bytes()
        except OSError:
            continue
        if cmd and match(cmd, env) and _running(int(d.name)):
            found.append(int(d.name))
    return found
