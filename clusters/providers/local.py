"""``local``: a real control plane on this machine (etcd, kube-apiserver, controller-manager,
scheduler run by kwokctl; kwok fakes the nodes), through a Pulumi dynamic provider over
:class:`fleet.local.clusters.LocalClusters`.

Settings: ``nodes`` (fake nodes, default 2), ``kubeVersion`` (must be the toolchain's, which a local
cluster runs). Diff: a new name, Kubernetes version or work directory replaces the cluster (deleted
first: the name is reused); a node count is changed in place; a cluster that is stopped or gone is
started or created again by the next ``up`` (``read`` marks it missing on refresh).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from clusters.providers import ClusterComponent, setting_int, setting_str
from fleet.errors import ConfigError
from fleet.local.clusters import KUBE_VERSION, LocalClusters
from fleet.registry.model import ClusterSpec

__all__ = ["LocalCluster", "LocalClusterProvider", "check", "create"]

REPLACE_ON = ("name", "kubeVersion", "workdir")


def _clusters(props: dict[str, Any]) -> LocalClusters:
    return LocalClusters(Path(str(props["workdir"])))


def _kubeconfig(lc: LocalClusters, name: str) -> str:
    p = lc.kubeconfig_path(name)
    return p.read_text() if p.is_file() else ""


class LocalClusterProvider(dyn.ResourceProvider):
    """Stateless; everything is in the properties: name, nodes, kubeVersion, workdir."""

    def _up(self, props: dict[str, Any]) -> dict[str, Any]:
        lc, name, nodes = _clusters(props), str(props["name"]), int(props["nodes"])
        c = lc.create(name, nodes=nodes)  # idempotent: creates, or starts a stopped cluster
        lc.scale_nodes(name, nodes)  # create() keeps a healthy cluster as it is
        return {**props, "kubeconfig": c.kubeconfig_text(), "state": "running"}

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(id_=str(props["name"]), outs=self._up(props))

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.DiffResult:
        replaces = [k for k in REPLACE_ON if _olds.get(k) != _news.get(k)]
        if replaces:
            return dyn.DiffResult(changes=True, replaces=replaces, delete_before_replace=True)
        changed = (
            _olds.get("nodes") != _news.get("nodes")
            or _olds.get("state") != "running"
            or not _clusters(_olds).healthy(str(_olds["name"]))
        )
        return dyn.DiffResult(changes=changed, replaces=[], delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(outs=self._up(_news))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        lc = _clusters(props)
        if not lc.exists(id_):
            return dyn.ReadResult(id_, {**props, "state": "missing"})
        state = "running" if lc.healthy(id_) else "stopped"
        return dyn.ReadResult(
            id_, {**props, "kubeconfig": _kubeconfig(lc, id_) or props.get("kubeconfig"), "state": state}
        )

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        _clusters(_props).delete(_id)


class LocalClusterResource(dyn.Resource, module="fleet", name="LocalCluster"):
    kubeconfig: pulumi.Output[str]
    state: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(
            LocalClusterProvider(),
            name,
            {**props, "kubeconfig": None, "state": None},
            pulumi.ResourceOptions.merge(secret, opts),
        )


def _props(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "nodes": setting_int(spec, "nodes", 2),
        "kubeVersion": setting_str(spec, "kubeVersion", KUBE_VERSION),
        "workdir": str(LocalClusters().workdir),
    }


def check(spec: ClusterSpec) -> None:
    props = _props(spec)
    if props["kubeVersion"] != KUBE_VERSION:
        raise ConfigError(
            f'local clusters run the toolchain\'s Kubernetes {KUBE_VERSION}, not "{props["kubeVersion"]}"',
            file=f"clusters/{spec.name}.yaml",
            key="settings.kubeVersion",
        )
    if len(spec.name) > 40:
        raise ConfigError(
            "a local cluster's name has at most 40 characters", file=f"clusters/{spec.name}.yaml", key="name"
        )


class LocalCluster(ClusterComponent):
    def __init__(self, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cluster:Local", spec, opts)
        res = LocalClusterResource(
            f"{spec.name}-control-plane", _props(spec), pulumi.ResourceOptions(parent=self)
        )
        self.state = res.state
        self._finish(res.kubeconfig)


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    return LocalCluster(spec, opts)
