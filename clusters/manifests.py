"""``pulumi-python:dynamic/fleet:Manifests``: Kubernetes objects from YAML, as one Pulumi dynamic resource.

Why: the ``pulumi-resource-kubernetes`` provider cannot be built here, so objects are server-side
applied with the toolchain's kubectl (field manager ``fleet-pulumi``) from a dynamic provider that
runs in the ``pulumi-resource-pulumi-python`` plugin. The resource:

- create: apply (Namespaces and CRDs first, CRDs waited for until Established);
- diff: by content hash of the manifests and of the kubeconfig (a new cluster gets them again);
  never a replacement, since applying is idempotent;
- update: apply the new set, then delete the objects that left it;
- read (refresh): checks the objects still exist; a missing one makes the next ``up`` apply again;
- delete: ``kubectl delete --ignore-not-found`` (a cluster that no longer answers at all is taken
  as gone with its objects).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic as dyn

from clusters import kubectl
from fleet.errors import Unreachable

__all__ = ["Manifests", "ManifestsProvider"]

_MISSING = "missing"


def _outs(props: dict[str, Any], applied: list[kubectl.ObjectRef]) -> dict[str, Any]:
    return {
        **props,
        "hash": kubectl.sha256(str(props["manifests"])),
        "target": kubectl.sha256(str(props["kubeconfig"])),
        "objects": [str(r) for r in applied],
    }


class ManifestsProvider(dyn.ResourceProvider):
    """Stateless: everything it needs is in the resource's properties (so it pickles by reference)."""

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        applied = kubectl.apply(props["kubeconfig"], props["manifests"])
        return dyn.CreateResult(id_=str(props["label"]), outs=_outs(props, applied))

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.DiffResult:
        changed = kubectl.sha256(str(_news.get("manifests"))) != _olds.get("hash") or kubectl.sha256(
            str(_news.get("kubeconfig"))
        ) != _olds.get("target")
        return dyn.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.UpdateResult:
        applied = kubectl.apply(_news["kubeconfig"], _news["manifests"])
        old_objs = kubectl.parse_manifests(str(_olds.get("manifests") or ""))
        keep = set(applied)
        removed = [o for o in old_objs if kubectl.ref_of(o) not in keep]
        if removed:
            kubectl.delete(_news["kubeconfig"], kubectl.to_yaml(removed))
        return dyn.UpdateResult(outs=_outs(_news, applied))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        if not props.get("manifests"):
            return dyn.ReadResult(id_, props)
        try:
            found = kubectl.existing(props["kubeconfig"], props["manifests"])
        except Unreachable:
            return dyn.ReadResult(id_, props)  # cannot tell: keep what the state says
        if found < len(props.get("objects") or []):
            return dyn.ReadResult(id_, {**props, "hash": _MISSING})  # the next up applies again
        return dyn.ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        if _props.get("manifests"):
            kubectl.delete(_props["kubeconfig"], _props["manifests"])


class Manifests(dyn.Resource, module="fleet", name="Manifests"):
    """YAML manifests applied to the cluster the kubeconfig points at. The kubeconfig stays secret in
    the state, and so do the manifests with ``secret`` (a Secret's data)."""

    hash: pulumi.Output[str]
    objects: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str],
        manifests: pulumi.Input[str],
        secret: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "label": name,
            "kubeconfig": pulumi.Output.secret(kubeconfig),
            "manifests": manifests,
            "hash": None,
            "target": None,
            "objects": None,
        }
        hidden = ["kubeconfig", "manifests"] if secret else ["kubeconfig"]
        base = pulumi.ResourceOptions(additional_secret_outputs=hidden)
        super().__init__(ManifestsProvider(), name, props, pulumi.ResourceOptions.merge(base, opts))
