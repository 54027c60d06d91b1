"""Pulumi's unit-test mocks, recording what a program registers (the cloud plugins cannot run here)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi

from fleet.registry.model import ClusterSpec, FleetSettings
from fleet.stackconfig import PROJECT, StackConfig

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"
AKS_KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: aks\n"


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None


@dataclass
class Recorder(pulumi.runtime.Mocks):
    """Records every resource and call; gives each cloud resource the outputs its real provider would."""

    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), args.provider))
        outs = dict(args.inputs)
        if args.typ == "eks:index:Cluster":
            outs["kubeconfigJson"] = json.dumps(
                {"kind": "Config", "clusters": [{"name": args.inputs.get("name")}]}
            )
        elif args.typ == "gcp:container/cluster:Cluster":
            outs["endpoint"] = "203.0.113.10"
            outs["masterAuth"] = {"clusterCaCertificate": "Q0EtREFUQQ=="}
        elif args.typ == "azure-native:containerservice:ManagedCluster":
            outs["name"] = args.inputs.get("resourceName", args.name)
        elif args.typ == "azure-native:resources:ResourceGroup":
            outs["name"] = args.inputs.get("resourceGroupName", args.name)
        elif args.typ.startswith("pulumi-python:dynamic/fleet:") and "kubeconfig" in outs:
            outs["kubeconfig"] = KUBECONFIG
            outs["state"] = "running"
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            value = base64.b64encode(AKS_KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}
        return {}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in self.resources]}"
        return found[0]


def use_mocks() -> Recorder:
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, project=PROJECT, stack="test", preview=False)
    return rec


def spec(name: str = "c1", provider: str = "local", **kw: Any) -> ClusterSpec:
    return ClusterSpec(name=name, environment=kw.pop("environment", "dev"), provider=provider, **kw)  # type: ignore[arg-type]


def stack_config(cluster: ClusterSpec, *, revision: str | None = None, **settings: Any) -> StackConfig:
    return StackConfig(
        cluster=cluster,
        settings=FleetSettings.model_validate(settings),
        repo_url="https://git.example.com/platform/fleet.git",
        branch="main",
        revision=revision,
    )


def set_stack_config(cfg: StackConfig, **extra: str) -> None:
    """What `fleet provision` sets on the stack, for the program under mocks."""
    values = {f"{PROJECT}:{k}": v for k, v in cfg.values().items()}
    values.update({f"{PROJECT}:{k}": v for k, v in extra.items()})
    pulumi.runtime.set_all_config(values)


def resolve(output: Any) -> Any:
    """The value of an Output (run the mocks' event loop until it is known)."""
    box: list[Any] = []

    @pulumi.runtime.test
    def _get() -> Any:
        return pulumi.Output.from_input(output).apply(box.append)

    _get()
    return box[0]
