"""Local clusters: real control planes (etcd, kube-apiserver, controller-manager, scheduler) run by
kwokctl on this machine, with kwok faking the nodes and kubelets so Pods really become Ready.

Used by the ``local`` provider, the demo and the tests. Every cluster lives under a work directory
fleet owns (``$FLEET_LOCAL_DIR``, by default ``$FLEET_HOME/local``), so nothing touches ``~/.kwok``.

A cluster is complete once fleet wrote its marker (:data:`CREATED`, in the cluster's directory) after
``kwokctl create`` returned and its nodes were Ready. A ``kwokctl create`` killed part-way (Ctrl-C, a
SIGKILLed ``fleet bootstrap``) leaves the directory half made, which ``kwokctl start`` cannot start (it
waits out its whole timeout): :meth:`LocalClusters.create` deletes such a cluster, with a warning, and
creates it again; a complete cluster that is merely stopped is started, its data kept.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet import toolchain
from fleet.adapters import net, proc
from fleet.errors import FleetError, InputError, LocalClusterError
from fleet.local.flux import LocalOperator
from fleet.paths import local_dir

__all__ = ["CREATED", "LocalCluster", "LocalClusters", "local_cluster"]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
KUBE_VERSION = "v1.36.3"
# kwokctl picks ports by scanning down from 32767, separately per work directory: two work
# directories (tests, e2e drills, benchmarks running at once) then pick the same ports and a
# component dies with "address already in use". fleet picks random free ports instead.
# fleet's marker in a cluster's directory: its `kwokctl create` returned and its nodes were Ready
CREATED = "fleet-created"
_PORT_OPTIONS = ("etcdPort", "etcdPeerPort", "kubeApiserverPort", "kubeControllerManagerPort",
                 "kubeSchedulerPort", "kwokControllerPort")


@dataclass(frozen=True)
class LocalCluster:
    name: str
    kubeconfig: Path
    workdir: Path

    def kubeconfig_text(self) -> str:
        return self.kubeconfig.read_text()


class LocalClusters:
    """Creates, lists and deletes local clusters under one work directory."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = (workdir or local_dir()).resolve()
        self.operator = LocalOperator(self.workdir)  # Flux's controllers and git endpoint beside each

    # kwokctl reads KWOK_WORKDIR for where it keeps clusters; one per LocalClusters.
    def _env(self) -> dict[str, str]:
        return toolchain.env_with_toolchain(
            {"KWOK_WORKDIR": str(self.workdir / "kwok"), "KWOK_KUBE_VERSION": KUBE_VERSION}
        )

    def _kwokctl(self, *args: str, timeout: float = 300, check: bool = True) -> proc.Completed:
        return proc.run(
            [toolchain.find("kwokctl"), *args],
            env=self._env(),
            timeout=timeout,
            check=check,
            error=LocalClusterError,
        )

    def kubeconfig_path(self, name: str) -> Path:
        return self.workdir / "kubeconfigs" / f"{name}.yaml"

    def exists(self, name: str) -> bool:
        return name in self.list()

    def _dir(self, name: str) -> Path:
        return self.workdir / "kwok" / "clusters" / name

    def complete(self, name: str) -> bool:
        """Whether the cluster was fully created (:data:`CREATED`), as opposed to left half made by a
        ``kwokctl create`` that was killed. A cluster made by a fleet before the marker counts as complete
        when fleet's copy of its kubeconfig, written once ``kwokctl create`` had returned, is newer than the
        cluster's kwok.yaml (a stale one of an earlier cluster of that name is older)."""
        d = self._dir(name)
        if (d / CREATED).is_file():
            return True
        try:
            return self.kubeconfig_path(name).stat().st_mtime_ns > (d / "kwok.yaml").stat().st_mtime_ns
        except OSError:
            return False

    def list(self) -> list[str]:
        d = self.workdir / "kwok" / "clusters"
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / "kwok.yaml").is_file())

    def create(self, name: str, *, nodes: int = 2, wait: float = 180,
               warn: Callable[[str], None] | None = None) -> LocalCluster:
        """Create (or start again) a cluster; idempotent. Returns its kubeconfig. A cluster left half made
        by a killed ``kwokctl create`` is deleted and created again, saying so through ``warn`` (default:
        a line on stderr)."""
        if not _NAME_RE.match(name):
            raise InputError(f'local cluster name "{name}" must be a DNS label of at most 40 characters')
        kubeconfig = self.kubeconfig_path(name)
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        if (self.exists(name) or self._dir(name).is_dir()) and not self.complete(name):
            (warn or _warn_on_stderr)(
                f'local cluster "{name}" was left half made (its `kwokctl create` did not finish): '
                "deleting it and creating it again")
            self._delete_quietly(name)
        if self.exists(name):
            if self.healthy(name):
                self.operator.restart(name, kubeconfig)  # what ran beside it before, if it stopped
                return LocalCluster(name, kubeconfig, self.workdir)
            self._kwokctl("start", "cluster", "--name", name, "--wait", f"{int(wait)}s", timeout=wait + 60)
            restart = True
        else:
            restart = False
            # Controllers left from an earlier cluster of this name would talk to a dead API server.
            self.operator.stop(name, controllers_only=True)
            kubeconfig.unlink(missing_ok=True)  # an earlier cluster's: written again once this one is made
            tc = toolchain.find
            ports = self.workdir / "kwok" / f"{name}.ports.yaml"
            ports.parent.mkdir(parents=True, exist_ok=True)
            chosen = zip(_PORT_OPTIONS, net.free_ports(len(_PORT_OPTIONS)), strict=True)
            ports.write_text(
                "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n"
                + "".join(f"  {k}: {p}\n" for k, p in chosen)
            )
            args = [
                "create", "cluster", "--name", name, "--runtime", "binary", "--config", str(ports),
                "--etcd-binary", str(tc("etcd")),
                "--kube-apiserver-binary", str(tc("kube-apiserver")),
                "--kube-controller-manager-binary", str(tc("kube-controller-manager")),
                "--kube-scheduler-binary", str(tc("kube-scheduler")),
                "--kwok-controller-binary", str(tc("kwok")),
                "--kubeconfig", str(self.workdir / "kwok" / f"{name}.merged.kubeconfig"),
                "--wait", f"{int(wait)}s", "--quiet-pull",
            ]
            done = self._kwokctl(*args, timeout=wait + 120, check=False)
            if not done.ok:
                tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
                self._delete_quietly(name)
                # removed again: the next attempt starts clean, on new ports
                raise LocalClusterError(f'creating local cluster "{name}" failed: {tail}', transient=True)
        kubeconfig.write_text(self._kwokctl("get", "kubeconfig", "--name", name, timeout=60).stdout)
        os.chmod(kubeconfig, 0o600)
        if nodes > 0:
            self.scale_nodes(name, nodes)
            self._wait_nodes_ready(name, nodes, timeout=90)
        if restart:
            self.operator.restart(name, kubeconfig)
        marker = self._dir(name) / CREATED
        if not marker.is_file():
            marker.write_text("kwokctl create returned and the nodes were Ready\n")
        return LocalCluster(name, kubeconfig, self.workdir)

    def _wait_nodes_ready(self, name: str, count: int, timeout: float) -> None:
        """kwok marks its fake nodes Ready at once; if it does not, its controller died. Watched through
        the kube adapter (list, then watch), until ``count`` nodes are there and every node is Ready."""
        from fleet.adapters.kube import Kube, KubeTarget
        from fleet.live.watch import Query, Snapshot, Watcher

        def all_ready(nodes: Snapshot) -> bool:
            return len(nodes) >= count and all(_node_ready(n) for n in nodes.values())

        kube = Kube(KubeTarget(name, self.kubeconfig_path(name), source="local cluster"), pool_size=2)
        try:
            with Watcher(kube, [Query("v1", "Node")], deadline=time.monotonic() + timeout) as w:
                ready = w.wait(all_ready)
        finally:
            kube.close()  # a client of its own, not kept: the cluster may be rebuilt under the same name
        if not ready:
            log = self.workdir / "kwok" / "clusters" / name / "logs" / "kwok-controller.log"
            raise LocalClusterError(
                f'the nodes of local cluster "{name}" did not become Ready within {timeout:.0f}s',
                hint=f"see {log}", transient=True,
            )

    def healthy(self, name: str) -> bool:
        """True when the API server answers /readyz (one look, through the kube adapter, on a connection
        of its own: a control plane started again on the same port must not meet a pooled dead one)."""
        from fleet.adapters.kube import FAST, Kube, KubeTarget

        kubeconfig = self.kubeconfig_path(name)
        if not kubeconfig.is_file():
            return False
        try:
            kube = Kube(KubeTarget(name, kubeconfig, source="local cluster"), policy=FAST, pool_size=1)
        except FleetError:
            return False
        try:
            return kube.ready()
        finally:
            kube.close()

    def scale_nodes(self, name: str, count: int) -> None:
        """Make the cluster have ``count`` fake nodes (kwok answers for them as kubelets)."""
        self._kwokctl("scale", "node", "--replicas", str(count), "--name", name, timeout=120)

    def stop(self, name: str) -> None:
        """Stop the control plane's processes and the operator's beside it (the data stays); used to
        simulate a lost cluster. ``create`` starts them all again."""
        self.operator.stop(name)
        self._kwokctl("stop", "cluster", "--name", name, timeout=120)

    def delete(self, name: str) -> bool:
        """Delete the cluster, its data and the operator's processes beside it. Returns False when there
        was nothing to delete."""
        self.operator.remove(name)
        if not self.exists(name):
            self.kubeconfig_path(name).unlink(missing_ok=True)
            return False
        self._kwokctl("delete", "cluster", "--name", name, timeout=180)
        proc.stop_all(self._dir(name) / "bin")  # a half-made cluster's components that no pid file names
        self.kubeconfig_path(name).unlink(missing_ok=True)
        return True

    def _delete_quietly(self, name: str) -> None:
        try:
            self.operator.remove(name)
            self._kwokctl("delete", "cluster", "--name", name, timeout=180, check=False)
            # what a killed `kwokctl create` started but never recorded (no pid file): kwokctl cannot stop it
            proc.stop_all(self._dir(name) / "bin")
        finally:
            shutil.rmtree(self._dir(name), ignore_errors=True)



def _warn_on_stderr(message: str) -> None:
    print(f"⚠ {message}", file=sys.stderr, flush=True)


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@contextmanager
def local_cluster(name: str, *, workdir: Path | None = None, nodes: int = 2) -> Iterator[LocalCluster]:
    """A local cluster for the duration of a ``with`` block; deleted even when the block fails."""
    clusters = LocalClusters(workdir)
    try:
        yield clusters.create(name, nodes=nodes)
    finally:
        clusters._delete_quietly(name)
