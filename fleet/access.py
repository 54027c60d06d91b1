"""How fleet reaches a cluster: which kubeconfig and context.

In order: the kubeconfig provisioning wrote for the cluster (``$FLEET_HOME/kubeconfigs/<name>.yaml``,
from the Pulumi stack's kubeconfig output), else the registry entry's ``access`` (a context and/or a
kubeconfig path outside the repo: credentials never live in Git), else an error with a next step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import NotFound
from fleet.paths import fleet_home
from fleet.registry.model import ClusterSpec

if TYPE_CHECKING:  # importing the kube adapter loads the kubernetes client: only when it is needed
    from fleet.adapters.kube import KubeTarget

__all__ = ["kubeconfig_cache_path", "kubeconfig_for"]


def kubeconfig_cache_path(name: str) -> Path:
    """Where provisioning writes (and fleet reads) the kubeconfig of cluster ``name``."""
    return fleet_home() / "kubeconfigs" / f"{name}.yaml"


def kubeconfig_for(cluster: ClusterSpec) -> KubeTarget:
    """The kubeconfig and context fleet uses for ``cluster``."""
    from fleet.adapters.kube import KubeTarget

    cached = kubeconfig_cache_path(cluster.name)
    if cached.is_file():
        return KubeTarget(cluster.name, cached, None, source=f"provisioned ({cached})")
    access = cluster.access
    if access is not None and (access.context or access.kubeconfig):
        kubeconfig = Path(access.kubeconfig).expanduser() if access.kubeconfig else None
        where = f"context {access.context!r}" if access.context else "current context"
        return KubeTarget(
            cluster.name, kubeconfig, access.context,
            source=f"registry access: {where} of {kubeconfig or 'the default kubeconfig'}",
        )
    raise NotFound(
        f'no kubeconfig for cluster "{cluster.name}": it was not provisioned by fleet and '
        f"clusters/{cluster.name}.yaml has no access.context",
        hint=f"run `fleet provision {cluster.name}`, or set access.context (and access.kubeconfig) "
        f"in clusters/{cluster.name}.yaml",
    )
