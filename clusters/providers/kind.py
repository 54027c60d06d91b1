"""``kind``: Kubernetes in Docker, through a Pulumi dynamic provider that drives the ``kind`` CLI.

Needs ``kind`` on PATH and a running Docker (neither is on fleet's own machines, so only the command
lines are tested there). Settings: ``nodes`` (workers, default 1), ``kubeVersion`` (selects the
``kindest/node`` image; default: kind's own), ``image`` (a node image, overrides kubeVersion).
A kind cluster cannot be resized: any change of name, version, image or nodes replaces it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic as dyn
import yaml

from clusters.providers import ClusterComponent, setting_int, setting_str
from fleet import toolchain
from fleet.adapters import proc
from fleet.errors import KindError
from fleet.registry.model import ClusterSpec

__all__ = ["KindCli", "KindCluster", "KindClusterProvider", "check", "create", "kind_config"]

REPLACE_ON = ("name", "image", "nodes")


def kind_config(workers: int) -> str:
    """kind's cluster config: one control plane and ``workers`` workers."""
    nodes = [{"role": "control-plane"}] + [{"role": "worker"} for _ in range(workers)]
    return yaml.safe_dump(
        {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": nodes}, sort_keys=False
    )


def node_image(kube_version: str | None, image: str | None) -> str | None:
    if image:
        return image
    if kube_version:
        return f"kindest/node:{kube_version if kube_version.startswith('v') else 'v' + kube_version}"
    return None


@dataclass(frozen=True)
class KindCli:
    """The ``kind`` command lines fleet runs (pure; :meth:`run` executes one)."""

    kind: str = "kind"
    wait: str = "300s"

    def create(self, name: str, config: Path, kubeconfig: Path, image: str | None) -> list[str]:
        args = [
            self.kind,
            "create",
            "cluster",
            "--name",
            name,
            "--config",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
            "--wait",
            self.wait,
        ]
        if image:
            args += ["--image", image]
        return args

    def get_kubeconfig(self, name: str) -> list[str]:
        return [self.kind, "get", "kubeconfig", "--name", name]

    def get_clusters(self) -> list[str]:
        return [self.kind, "get", "clusters"]

    def delete(self, name: str) -> list[str]:
        return [self.kind, "delete", "cluster", "--name", name]

    def run(self, args: list[str], timeout: float = 600) -> str:
        return proc.run(args, timeout=timeout, check=True, error=KindError).stdout


def _cli() -> KindCli:
    return KindCli(str(toolchain.find("kind")))


class KindClusterProvider(dyn.ResourceProvider):
    def _exists(self, cli: KindCli, name: str) -> bool:
        return name in cli.run(cli.get_clusters(), timeout=60).split()

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        cli, name = _cli(), str(props["name"])
        if not self._exists(cli, name):
            with tempfile.TemporaryDirectory(prefix="fleet-kind-") as d:
                config = Path(d) / "kind.yaml"
                config.write_text(kind_config(int(props["nodes"])))
                kc = Path(d) / "kubeconfig"
                cli.run(cli.create(name, config, kc, props.get("image") or None), timeout=900)
        kubeconfig = cli.run(cli.get_kubeconfig(name), timeout=60)
        return dyn.CreateResult(id_=name, outs={**props, "kubeconfig": kubeconfig, "state": "running"})

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.DiffResult:
        replaces = [k for k in REPLACE_ON if _olds.get(k) != _news.get(k)]
        changed = bool(replaces) or _olds.get("state") != "running"
        return dyn.DiffResult(
            changes=changed, replaces=replaces or (["state"] if changed else []), delete_before_replace=True
        )

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        cli = _cli()
        if not self._exists(cli, id_):
            return dyn.ReadResult(id_, {**props, "state": "missing"})
        return dyn.ReadResult(
            id_, {**props, "kubeconfig": cli.run(cli.get_kubeconfig(id_), timeout=60), "state": "running"}
        )

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        cli = _cli()
        if self._exists(cli, _id):
            cli.run(cli.delete(_id), timeout=300)


class KindClusterResource(dyn.Resource, module="fleet", name="KindCluster"):
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(
            KindClusterProvider(),
            name,
            {**props, "kubeconfig": None, "state": None},
            pulumi.ResourceOptions.merge(secret, opts),
        )


def props(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "nodes": setting_int(spec, "nodes", 1),
        "image": node_image(setting_str(spec, "kubeVersion"), setting_str(spec, "image")) or "",
    }


def check(spec: ClusterSpec) -> None:
    props(spec)
    toolchain.find("kind")  # ToolMissing (exit 2) before anything changes
    toolchain.find("docker")  # kind runs its nodes as docker containers, through the docker CLI


class KindCluster(ClusterComponent):
    def __init__(self, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cluster:Kind", spec, opts)
        res = KindClusterResource(f"{spec.name}-kind", props(spec), pulumi.ResourceOptions(parent=self))
        self._finish(res.kubeconfig)


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    return KindCluster(spec, opts)
