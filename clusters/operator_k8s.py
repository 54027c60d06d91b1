"""The ``kubernetes`` backend of :class:`clusters.operator.FluxOperator`, with pulumi_kubernetes.

For users whose engine has the ``pulumi-resource-kubernetes`` plugin (a full Pulumi install):
``yaml.v2.ConfigGroup`` for Flux's install set, ``core.v1.Secret`` for the Git credentials and
``apiextensions.CustomResource`` for the GitRepository and the Kustomization. fleet's own machines
cannot build that plugin, so this path is tested with Pulumi's mocks there; the real engine runs it
wherever the plugin is installed.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from clusters.kubectl import to_yaml

__all__ = ["install_with_kubernetes"]


def _custom(parent: pulumi.Resource, name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> Any:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj["spec"],
        opts=opts,
    )


def install_with_kubernetes(
    parent: pulumi.ComponentResource,
    name: str,
    kubeconfig: pulumi.Input[str],
    install: list[dict[str, Any]],
    secret: pulumi.Output[dict[str, Any]] | None,
    source: dict[str, Any],
    sync: dict[str, Any],
) -> dict[str, pulumi.Resource]:
    provider = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=parent))

    def opts(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(deps))

    out: dict[str, pulumi.Resource] = {"provider": provider}
    out["install"] = k8s.yaml.v2.ConfigGroup(f"{name}-install", yaml=to_yaml(install), opts=opts())
    deps: list[pulumi.Resource] = [out["install"]]
    if secret is not None:
        out["git-auth"] = k8s.core.v1.Secret(
            f"{name}-git-auth",
            metadata=secret.apply(lambda s: s["metadata"]),
            type="Opaque",
            data=pulumi.Output.secret(secret.apply(lambda s: s["data"])),
            opts=opts(*deps),
        )
        deps.append(out["git-auth"])
    out["source"] = _custom(parent, f"{name}-source", source, opts(*deps))
    out["sync"] = _custom(parent, f"{name}-sync", sync, opts(out["source"]))
    return out
