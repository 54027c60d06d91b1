"""The operator component: Flux's CRDs and controllers, the fleet repo's GitRepository and the
cluster's Kustomization, installed in ``flux-system`` on the cluster the kubeconfig points at.

Two backends create the same objects:

- ``manifests`` (what fleet runs everywhere today): :class:`clusters.manifests.Manifests`, a dynamic
  resource that server-side-applies YAML with the toolchain's kubectl. Needs only
  ``pulumi-resource-pulumi-python`` (shipped in the Pulumi SDK module, so the toolchain has it);
- ``kubernetes``: pulumi_kubernetes (``yaml.v2.ConfigGroup`` for the install set,
  ``apiextensions.CustomResource`` for GitRepository and Kustomization). Needs the
  ``pulumi-resource-kubernetes`` plugin, which cannot be built on fleet's own machines.

``auto`` (the default; stack config ``fleet:operatorBackend`` overrides it) picks ``kubernetes`` when
its plugin is installed (on PATH, in the toolchain or in a Pulumi home's plugins), else ``manifests``.
Each object group is its own resource, so a change of the cluster's variables updates only the
Kustomization, and a new pinned revision only the GitRepository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pulumi

from clusters import flux
from clusters.kubectl import to_yaml
from clusters.manifests import Manifests
from fleet import toolchain
from fleet.errors import InputError, ToolMissing
from fleet.paths import fleet_home
from fleet.stackconfig import StackConfig, parse_git_auth

__all__ = ["Backend", "FluxOperator", "choose_backend", "kubernetes_plugin_available"]

Backend = Literal["manifests", "kubernetes"]


def kubernetes_plugin_available() -> bool:
    """Is ``pulumi-resource-kubernetes`` installed where the engine finds it?"""
    try:
        toolchain.find("pulumi-resource-kubernetes")
        return True
    except ToolMissing:
        pass
    homes = [os.environ.get("PULUMI_HOME"), str(fleet_home() / "pulumi-home"), str(Path.home() / ".pulumi")]
    return any(any((Path(h) / "plugins").glob("resource-kubernetes-v*")) for h in homes if h)


def choose_backend(requested: str | None) -> Backend:
    if requested in (None, "", "auto"):
        return "kubernetes" if kubernetes_plugin_available() else "manifests"
    if requested == "manifests":
        return "manifests"
    if requested == "kubernetes":
        if not kubernetes_plugin_available():
            raise ToolMissing(
                'operator backend "kubernetes" needs the pulumi-resource-kubernetes plugin',
                hint="pulumi plugin install resource kubernetes, or use the manifests backend",
            )
        return "kubernetes"
    raise InputError(f'unknown operator backend "{requested}"; use auto, manifests or kubernetes')


class FluxOperator(pulumi.ComponentResource):
    """Flux on one cluster, pointed at the fleet repo and the cluster's environment overlay."""

    def __init__(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str],
        config: StackConfig,
        git_auth: pulumi.Output[str] | None = None,
        backend: Backend = "manifests",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fleet:operator:Flux", name, None, opts)
        self.backend = backend
        install = flux.install_objects(config)
        source = flux.git_repository(config, with_auth=git_auth is not None)
        sync = flux.kustomization(config)
        secret = None
        if git_auth is not None:
            secret = git_auth.apply(lambda text: flux.git_auth_secret(parse_git_auth(text)))
        if backend == "kubernetes":
            from clusters.operator_k8s import install_with_kubernetes

            self.resources = install_with_kubernetes(self, name, kubeconfig, install, secret, source, sync)
        else:
            self.resources = self._install_with_manifests(name, kubeconfig, install, secret, source, sync)
        self.revision = pulumi.Output.from_input(config.revision or "")
        self.path = pulumi.Output.from_input(sync["spec"]["path"])
        self.register_outputs({"backend": backend, "revision": self.revision, "path": self.path})

    def _install_with_manifests(
        self,
        name: str,
        kubeconfig: pulumi.Input[str],
        install: list[dict[str, Any]],
        secret: pulumi.Output[dict[str, Any]] | None,
        source: dict[str, Any],
        sync: dict[str, Any],
    ) -> dict[str, pulumi.Resource]:
        def opts(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        out: dict[str, pulumi.Resource] = {}
        out["install"] = Manifests(
            f"{name}-install", kubeconfig=kubeconfig, manifests=to_yaml(install), opts=opts()
        )
        deps = [out["install"]]
        if secret is not None:
            out["git-auth"] = Manifests(
                f"{name}-git-auth",
                kubeconfig=kubeconfig,
                manifests=pulumi.Output.secret(secret.apply(lambda s: to_yaml([s]))),
                secret=True,
                opts=opts(*deps),
            )
            deps.append(out["git-auth"])
        out["source"] = Manifests(
            f"{name}-source", kubeconfig=kubeconfig, manifests=to_yaml([source]), opts=opts(*deps)
        )
        out["sync"] = Manifests(
            f"{name}-sync", kubeconfig=kubeconfig, manifests=to_yaml([sync]), opts=opts(out["source"])
        )
        return out
