"""The operator component: Flux's CRDs (and, off local clusters, its controllers), the fleet repo's
GitRepository and the cluster's Kustomization, installed in ``flux-system`` through Pulumi's
Kubernetes provider (``pulumi-resource-kubernetes``, built by the toolchain).

- a ``kubernetes.Provider`` from the cluster's kubeconfig output (a secret), in server-side apply
  mode; every object carries fleet's field manager (``fleet-pulumi``) and takes over fields another
  manager held (``patchForce``: ``fleet sync`` moves the pin with fleet's own manager; stacks of
  earlier versions applied with kubectl);
- ``yaml.v2.ConfigGroup`` for Flux's install set, so ``pulumi preview`` shows a per-object diff and
  ``pulumi refresh`` sees drift of every object;
- ``core.v1.Secret`` for the Git credentials and, when the fleet uses SOPS, the age identity
  (``flux-system/sops-age``; data secret in state), ``apiextensions.CustomResource``
  for the GitRepository and the Kustomization.

Each object group is its own resource, so a change of the cluster's variables updates only the
Kustomization, and a new pinned revision only the GitRepository.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# pulumi_kubernetes loads its API groups lazily, and that is not thread-safe: fleet provisions several
# clusters at once in threads (rollouts, --all), and a thread could see a half-imported module
# ("module 'pulumi_kubernetes.core.v1' has no attribute 'Namespace'") while deserializing the objects
# of a ConfigGroup. Every group an install set may hold is imported here, once, at import time.
import pulumi_kubernetes.admissionregistration.v1
import pulumi_kubernetes.apiextensions.v1
import pulumi_kubernetes.apps.v1
import pulumi_kubernetes.core.v1
import pulumi_kubernetes.meta.v1
import pulumi_kubernetes.networking.v1
import pulumi_kubernetes.policy.v1
import pulumi_kubernetes.rbac.v1
import pulumi_kubernetes.yaml.v2
import yaml

from fleet.operator.flux import install as flux
from fleet.stackconfig import StackConfig, parse_git_auth

__all__ = ["FIELD_MANAGER", "LEGACY_TYPES", "OPERATORS", "FluxOperator", "to_yaml"]

FIELD_MANAGER = "fleet-pulumi"
_ANNOTATIONS = {"pulumi.com/patchFieldManager": FIELD_MANAGER, "pulumi.com/patchForce": "true"}
# What earlier versions of this component made: a dynamic resource per object group, applied with
# kubectl. fleet.provision drops them from a stack's state (never from the cluster) before an update,
# and the provider's resources adopt the same objects (:func:`fleet.provision.provision`).
LEGACY_TYPES = ("pulumi-python:dynamic/fleet:Manifests",)


def to_yaml(objs: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(objs), sort_keys=False)


def _managed(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with fleet's field manager and force annotations (the provider reads them)."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **_ANNOTATIONS}
    return {**obj, "metadata": meta}


class FluxOperator(pulumi.ComponentResource):
    """Flux on one cluster, pointed at the fleet repo and the cluster's environment overlay."""

    def __init__(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str],
        config: StackConfig,
        git_auth: pulumi.Output[str] | None = None,
        sops_age_key: pulumi.Output[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fleet:operator:Flux", name, None, opts)
        install = [_managed(o) for o in flux.install_objects(config)]
        source = _managed(flux.git_repository(config, with_auth=git_auth is not None))
        sync = _managed(flux.kustomization(config))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.secret(kubeconfig),
            enable_server_side_apply=True,
            # A lost cluster's objects went with it: deleting them must not wait for its API server.
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

        def opts_(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(deps))

        self.resources: dict[str, pulumi.Resource] = {"provider": self.provider}
        self.resources["install"] = k8s.yaml.v2.ConfigGroup(f"{name}-install", yaml=to_yaml(install), opts=opts_())
        deps: list[pulumi.Resource] = [self.resources["install"]]
        if git_auth is not None:
            secret = git_auth.apply(lambda text: _managed(flux.git_auth_secret(parse_git_auth(text))))
            self.resources["git-auth"] = self._secret(f"{name}-git-auth", secret, opts_(*deps))
            deps.append(self.resources["git-auth"])
        if sops_age_key is not None:
            # flux-system/sops-age (age.agekey), which the Kustomization's spec.decryption names; its data is
            # a secret in the stack's state
            age = sops_age_key.apply(lambda text: _managed(flux.sops_age_secret(text)))
            self.resources["sops-age"] = self._secret(f"{name}-sops-age", age, opts_(*deps))
            deps.append(self.resources["sops-age"])
        if config.verify_keys:  # the public keys source-controller verifies commits with (fleet.yaml verify:)
            keys = _managed(flux.verify_keys_secret(dict(config.verify_keys)))
            self.resources["verify-keys"] = k8s.core.v1.Secret(
                f"{name}-verify-keys", metadata=keys["metadata"], type="Opaque", data=keys["data"], opts=opts_(*deps)
            )
            deps.append(self.resources["verify-keys"])
        self.resources["source"] = self._custom(f"{name}-source", source, opts_(*deps))
        self.resources["sync"] = self._custom(f"{name}-sync", sync, opts_(self.resources["source"]))
        self.revision = pulumi.Output.from_input(config.revision or "")
        self.path = pulumi.Output.from_input(sync["spec"]["path"])
        self.register_outputs({"revision": self.revision, "path": self.path})

    @staticmethod
    def _secret(name: str, obj: pulumi.Output[dict[str, Any]], opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """A Secret made from a secret value (credentials, a key): its data stays a secret in the state."""
        return k8s.core.v1.Secret(
            name, metadata=obj.apply(lambda s: s["metadata"]), type="Opaque",
            data=pulumi.Output.secret(obj.apply(lambda s: s["data"])), opts=opts,
        )

    @staticmethod
    def _custom(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], spec=obj["spec"],
            opts=opts,
        )


# The Pulumi component that installs each operator kind (fleet.yaml's operator.kind; "none" installs
# nothing). A new operator adds its component here beside its module under fleet.operator.
OPERATORS: dict[str, type[FluxOperator]] = {"flux": FluxOperator}
