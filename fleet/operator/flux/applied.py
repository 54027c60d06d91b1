"""What Flux applied from the fleet repo, as ``fleet diff`` reads it: the inventory of fleet's
Kustomization (and of the tree's own on a cluster of a Flux directory), and the objects Flux never prunes."""

from __future__ import annotations

from typing import Any

from fleet.adapters.kube import Kube
from fleet.live.objects import ObjectRef

__all__ = ["flux_inventory", "flux_keeps"]

Obj = dict[str, Any]


def flux_inventory(kube: Kube) -> list[ObjectRef]:
    """What Flux applied from the fleet repo: the status.inventory (``ns_name_group_kind`` and version) of
    fleet's Kustomization and, on a cluster of a Flux directory, of every Kustomization that builds from
    the same GitRepository (the tree's own)."""
    from fleet.operator.flux.status import FLUX_NAMESPACE, KUSTOMIZE_API, object_name
    from fleet.rendering.fluxtree import OPERATOR_NAME

    name = object_name(kube)
    out = []
    for ks in kube.list_objects(KUSTOMIZE_API, "Kustomization").items:
        meta, spec = ks.get("metadata") or {}, ks.get("spec") or {}
        ref = spec.get("sourceRef") or {}
        own = meta.get("name") == name and meta.get("namespace") == FLUX_NAMESPACE
        built_from_ours = (ref.get("kind") == "GitRepository" and ref.get("name") == name
                           and (ref.get("namespace") or meta.get("namespace")) == FLUX_NAMESPACE)
        if not own and not (name != OPERATOR_NAME and built_from_ours):
            continue
        for e in ((ks.get("status") or {}).get("inventory") or {}).get("entries") or []:
            parts = str(e.get("id", "")).split("_")
            if len(parts) != 4:
                continue
            ns, obj_name, group, kind = parts
            out.append(ObjectRef(group, str(e.get("v") or "v1"), kind, ns, obj_name))
    return out


def flux_keeps(live: Obj) -> bool:
    """Objects Flux never prunes: annotated or labelled ``kustomize.toolkit.fluxcd.io/prune: disabled`` or
    ``.../reconcile: disabled`` (the operator's own objects on a cluster of a Flux directory are)."""
    meta = live.get("metadata") or {}
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    return any(marks.get(f"kustomize.toolkit.fluxcd.io/{k}") == "disabled" for k in ("prune", "reconcile"))
