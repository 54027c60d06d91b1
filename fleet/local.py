"""Local clusters: real control planes (etcd, kube-apiserver, controller-manager, scheduler) run by
kwokctl on this machine, with kwok faking the nodes and kubelets so Pods really become Ready.

Used by the ``local`` provider, the demo and the tests. Every cluster lives under a work directory
fleet owns (``$FLEET_HOME/local`` by default), so nothing touches ``~/.kwok``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet import toolchain
from fleet.adapters import proc
from fleet.errors import InputError, LocalClusterError
from fleet.paths import fleet_home

__all__ = ["LocalCluster", "LocalClusters", "local_cluster"]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
KUBE_VERSION = "v1.36.3"


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
        self.workdir = (workdir or fleet_home() / "local").resolve()

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

    def list(self) -> list[str]:
        d = self.workdir / "kwok" / "clusters"
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / "kwok.yaml").is_file())

    def create(self, name: str, *, nodes: int = 2, wait: float = 180) -> LocalCluster:
        """Create (or start again) a cluster; idempotent. Returns its kubeconfig."""
        if not _NAME_RE.match(name):
            raise InputError(f'local cluster name "{name}" must be a DNS label of at most 40 characters')
        kubeconfig = self.kubeconfig_path(name)
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        if self.exists(name):
            if self.healthy(name):
                return LocalCluster(name, kubeconfig, self.workdir)
            self._kwokctl("start", "cluster", "--name", name, "--wait", f"{int(wait)}s", timeout=wait + 60)
        else:
            tc = toolchain.find
            args = [
                "create", "cluster", "--name", name, "--runtime", "binary",
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
                raise LocalClusterError(f'creating local cluster "{name}" failed: {tail}')
        kubeconfig.write_text(self._kwokctl("get", "kubeconfig", "--name", name, timeout=60).stdout)
        os.chmod(kubeconfig, 0o600)
        if nodes > 0:
            self.scale_nodes(name, nodes)
        return LocalCluster(name, kubeconfig, self.workdir)

    def healthy(self, name: str) -> bool:
        """True when the API server answers /readyz."""
        kubeconfig = self.kubeconfig_path(name)
        if not kubeconfig.is_file():
            return False
        done = proc.run(
            [toolchain.find("kubectl"), "--kubeconfig", kubeconfig, "get", "--raw", "/readyz", "--request-timeout=5s"],
            timeout=15,
        )
        return done.ok

    def scale_nodes(self, name: str, count: int) -> None:
        """Make the cluster have ``count`` fake nodes (kwok answers for them as kubelets)."""
        self._kwokctl("scale", "node", "--replicas", str(count), "--name", name, timeout=120)

    def stop(self, name: str) -> None:
        """Stop the control plane's processes (the data stays); used to simulate a lost cluster."""
        self._kwokctl("stop", "cluster", "--name", name, timeout=120)

    def delete(self, name: str) -> bool:
        """Delete the cluster and its data. Returns False when there was nothing to delete."""
        if not self.exists(name):
            self.kubeconfig_path(name).unlink(missing_ok=True)
            return False
        self._kwokctl("delete", "cluster", "--name", name, timeout=180)
        self.kubeconfig_path(name).unlink(missing_ok=True)
        return True

    def _delete_quietly(self, name: str) -> None:
        try:
            self._kwokctl("delete", "cluster", "--name", name, timeout=180, check=False)
        finally:
            shutil.rmtree(self.workdir / "kwok" / "clusters" / name, ignore_errors=True)

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(name):
                return
            time.sleep(0.5)
        raise LocalClusterError(f'local cluster "{name}" did not become ready within {timeout:.0f}s')


@contextmanager
def local_cluster(name: str, *, workdir: Path | None = None, nodes: int = 2) -> Iterator[LocalCluster]:
    """A local cluster for the duration of a ``with`` block; deleted even when the block fails."""
    clusters = LocalClusters(workdir)
    try:
        yield clusters.create(name, nodes=nodes)
    finally:
        clusters._delete_quietly(name)
