"""``aks``: Azure Kubernetes Service through pulumi_azure_native.

Install with ``pip install "fleet[azure]"``; the ``pulumi-resource-azure-native`` plugin must be
installed for the engine. Tested with Pulumi's mocks on fleet's own machines (the plugin cannot be
built there).

Settings: ``region`` (required; or the entry's ``region``: the Azure location), ``resourceGroup``
(an existing group; default: a new group ``fleet-<name>``), ``nodes`` (default 2), ``vmSize`` (default
Standard_D4s_v5), ``kubeVersion``, ``subscriptionId`` (default: the provider's own configuration).
"""

from __future__ import annotations

import base64
from typing import Any

import pulumi

from clusters.providers import ClusterComponent, region, require_module, setting_int, setting_str
from fleet.registry.model import ClusterSpec

__all__ = ["AksCluster", "check", "create"]


def cluster_args(spec: ClusterSpec) -> dict[str, Any]:
    args: dict[str, Any] = {
        "resource_name_": spec.name,
        "location": region(spec),
        "dns_prefix": spec.name,
        "identity": {"type": "SystemAssigned"},
        "agent_pool_profiles": [
            {
                "name": "system",
                "mode": "System",
                "count": setting_int(spec, "nodes", 2, minimum=1),
                "vm_size": setting_str(spec, "vmSize", "Standard_D4s_v5"),
                "os_type": "Linux",
            }
        ],
        "tags": {"fleet.dev/cluster": spec.name, "fleet.dev/environment": spec.environment},
    }
    if v := setting_str(spec, "kubeVersion"):
        args["kubernetes_version"] = v.removeprefix("v")
    return args


def check(spec: ClusterSpec) -> None:
    cluster_args(spec)
    setting_str(spec, "resourceGroup")
    setting_str(spec, "subscriptionId")


def _decode(creds: Any) -> str:
    kubeconfigs = creds.kubeconfigs or []
    if not kubeconfigs:
        return ""
    return base64.b64decode(kubeconfigs[0].value).decode()


class AksCluster(ClusterComponent):
    def __init__(self, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cluster:Aks", spec, opts)
        az = require_module("aks", "pulumi_azure_native")
        args = cluster_args(spec)
        provider_args: dict[str, Any] = {"location": args["location"]}
        if sub := setting_str(spec, "subscriptionId"):
            provider_args["subscription_id"] = sub
        provider = az.Provider(
            f"{spec.name}-azure", **provider_args, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        group: pulumi.Input[str]
        if rg := setting_str(spec, "resourceGroup"):
            group = rg
        else:
            self.resource_group = az.resources.ResourceGroup(
                f"{spec.name}-rg",
                resource_group_name=f"fleet-{spec.name}",
                location=args["location"],
                opts=child,
            )
            group = self.resource_group.name
        self.cluster = az.containerservice.ManagedCluster(
            f"{spec.name}-aks", resource_group_name=group, **args, opts=child
        )
        creds = az.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group,
            resource_name=self.cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self, provider=provider),
        )
        self._finish(creds.apply(_decode))


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    return AksCluster(spec, opts)
