"""``eks``: Amazon EKS through pulumi_eks (and pulumi_aws for the region's provider).

Install with ``pip install "fleet[aws]"``. The EKS and AWS plugins (``pulumi-resource-eks``,
``pulumi-resource-aws``) must be installed for the engine (``pulumi plugin install``); they cannot be
built on fleet's own machines, where this provider is tested with Pulumi's mocks only.

Settings: ``region`` (required; or the entry's ``region``), ``nodes`` (default 2), ``minNodes``,
``maxNodes``, ``instanceType`` (default t3.medium), ``kubeVersion``, ``vpcId`` with ``subnetIds``
(comma-separated; default: the account's default VPC), ``clusterName`` (default: the cluster's name).
"""

from __future__ import annotations

from typing import Any

import pulumi

from clusters.providers import ClusterComponent, region, require_module, setting_int, setting_str
from fleet.errors import ConfigError
from fleet.registry.model import ClusterSpec

__all__ = ["EksCluster", "check", "create"]


def cluster_args(spec: ClusterSpec) -> dict[str, Any]:
    """The pulumi_eks.Cluster arguments for ``spec`` (plain values; unit-tested)."""
    nodes = setting_int(spec, "nodes", 2, minimum=1)
    args: dict[str, Any] = {
        "name": setting_str(spec, "clusterName", spec.name),
        "instance_type": setting_str(spec, "instanceType", "t3.medium"),
        "desired_capacity": nodes,
        "min_size": setting_int(spec, "minNodes", nodes, minimum=1),
        "max_size": setting_int(spec, "maxNodes", nodes, minimum=1),
        "tags": {"fleet.dev/cluster": spec.name, "fleet.dev/environment": spec.environment},
    }
    if args["min_size"] > nodes or args["max_size"] < nodes:
        raise ConfigError(
            "nodes must lie between minNodes and maxNodes",
            file=f"clusters/{spec.name}.yaml",
            key="settings.nodes",
        )
    if v := setting_str(spec, "kubeVersion"):
        args["version"] = v.removeprefix("v")
    vpc, subnets = setting_str(spec, "vpcId"), setting_str(spec, "subnetIds")
    if bool(vpc) != bool(subnets):
        raise ConfigError(
            "vpcId and subnetIds go together",
            file=f"clusters/{spec.name}.yaml",
            key="settings.subnetIds" if vpc else "settings.vpcId",
        )
    if vpc and subnets:
        args["vpc_id"] = vpc
        args["subnet_ids"] = [s.strip() for s in subnets.split(",") if s.strip()]
    return args


def check(spec: ClusterSpec) -> None:
    region(spec)
    cluster_args(spec)


class EksCluster(ClusterComponent):
    def __init__(self, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cluster:Eks", spec, opts)
        aws = require_module("eks", "pulumi_aws")
        eks = require_module("eks", "pulumi_eks")
        provider = aws.Provider(
            f"{spec.name}-aws", region=region(spec), opts=pulumi.ResourceOptions(parent=self)
        )
        self.cluster = eks.Cluster(
            f"{spec.name}-eks",
            **cluster_args(spec),
            opts=pulumi.ResourceOptions(parent=self, providers={"aws": provider}),
        )
        self._finish(self.cluster.kubeconfig_json)


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    return EksCluster(spec, opts)
