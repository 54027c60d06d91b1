"""``gke``: Google Kubernetes Engine through pulumi_gcp.

Install with ``pip install "fleet[gcp]"``; the ``pulumi-resource-gcp`` plugin must be installed for the
engine. Tested with Pulumi's mocks on fleet's own machines (the plugin cannot be built there).

Settings: ``project`` (required), ``region`` (required; or the entry's ``region``: a region makes a
regional cluster, a zone a zonal one), ``nodes`` (per zone, default 2), ``machineType`` (default
e2-standard-4), ``kubeVersion`` (the minimum master version; default: the release channel's),
``releaseChannel`` (default REGULAR), ``deletionProtection`` (default false, so ``fleet destroy`` works).
The kubeconfig uses ``gke-gcloud-auth-plugin`` for credentials (never stored).
"""

from __future__ import annotations

from typing import Any

import pulumi

from clusters.providers import (
    ClusterComponent,
    region,
    require_module,
    setting_bool,
    setting_int,
    setting_str,
)
from fleet.registry.model import ClusterSpec

__all__ = ["GkeCluster", "check", "create", "kubeconfig"]


def cluster_args(spec: ClusterSpec) -> dict[str, Any]:
    args: dict[str, Any] = {
        "name": spec.name,
        "project": setting_str(spec, "project", required=True),
        "location": region(spec),
        "remove_default_node_pool": True,
        "initial_node_count": 1,
        "deletion_protection": setting_bool(spec, "deletionProtection", False),
        "release_channel": {"channel": setting_str(spec, "releaseChannel", "REGULAR")},
        "resource_labels": {"fleet-cluster": spec.name, "fleet-environment": spec.environment},
    }
    if v := setting_str(spec, "kubeVersion"):
        args["min_master_version"] = v.removeprefix("v")
    return args


def node_pool_args(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "node_count": setting_int(spec, "nodes", 2, minimum=1),
        "node_config": {
            "machine_type": setting_str(spec, "machineType", "e2-standard-4"),
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "labels": {"fleet-cluster": spec.name},
        },
    }


def kubeconfig(name: str, endpoint: str, ca: str) -> str:
    """A kubeconfig for a GKE cluster that gets tokens from gke-gcloud-auth-plugin."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://{endpoint}
    certificate-authority-data: {ca}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
current-context: {name}
users:
- name: {name}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
      provideClusterInfo: true
"""


def check(spec: ClusterSpec) -> None:
    cluster_args(spec)
    node_pool_args(spec)


class GkeCluster(ClusterComponent):
    def __init__(self, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleet:cluster:Gke", spec, opts)
        gcp = require_module("gke", "pulumi_gcp")
        args = cluster_args(spec)
        provider = gcp.Provider(
            f"{spec.name}-gcp", project=args["project"], opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.cluster = gcp.container.Cluster(f"{spec.name}-gke", **args, opts=child)
        self.node_pool = gcp.container.NodePool(
            f"{spec.name}-nodes",
            cluster=self.cluster.name,
            location=args["location"],
            project=args["project"],
            **node_pool_args(spec),
            opts=child,
        )
        text = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate
        ).apply(lambda v: kubeconfig(spec.name, str(v[0]), str(v[1])))
        self._finish(text)


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    return GkeCluster(spec, opts)
