"""Manifests as the live layer sees them: references, fleet's labels and annotations, apply order."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.errors import InputError

__all__ = [
    "ANN_CLUSTER",
    "ANN_DIGEST",
    "ANN_REVISION",
    "LABEL_MANAGED",
    "ObjectRef",
    "is_crd",
    "is_namespace",
    "owned_by_fleet",
    "refs_of",
    "seal",
    "stamp",
    "validate",
]

LABEL_MANAGED = "fleet.dev/managed-by"
ANN_REVISION = "fleet.dev/revision"
ANN_CLUSTER = "fleet.dev/cluster"
ANN_DIGEST = "fleet.dev/digest"  # of the applied manifest (marks included): lets a sync skip what is there

Obj = dict[str, Any]

# Kinds whose scope is known without asking the API server (for gates and status).
CLUSTER_SCOPED = frozenset({
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"), ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
})


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object: group, version, kind, namespace ('' when cluster-scoped), name.

    Identity (:attr:`key`) leaves the version out: an object moved from ``v1beta1`` to ``v1`` is the
    same object, not one to prune and one to create.
    """

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def to_line(self) -> str:
        return "/".join((self.group, self.version, self.kind, self.namespace, self.name))

    @classmethod
    def from_line(cls, line: str) -> ObjectRef:
        parts = line.strip().split("/")
        if len(parts) != 5 or not parts[1] or not parts[2] or not parts[4]:
            raise ValueError(f"not an inventory entry: {line!r}")
        return cls(*parts)

    @classmethod
    def of(cls, obj: Mapping[str, Any], *, namespaced: bool | None = None) -> ObjectRef:
        """The reference of a manifest. ``namespaced`` None: guess from well-known kinds."""
        group, version = split_api_version(str(obj.get("apiVersion", "")))
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        if namespaced is None:
            namespaced = (group, kind) not in CLUSTER_SCOPED
        ns = (meta.get("namespace") or "default") if namespaced else ""
        return cls(group, version, kind, str(ns), str(meta.get("name", "")))


def is_namespace(obj: Mapping[str, Any]) -> bool:
    return obj.get("apiVersion") == "v1" and obj.get("kind") == "Namespace"


def is_crd(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith("apiextensions.k8s.io/") and (
        obj.get("kind") == "CustomResourceDefinition"
    )


def validate(objects: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """Check every manifest has apiVersion, kind and metadata.name; no object twice."""
    out: list[Obj] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for i, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            raise InputError(f"manifest #{i + 1} is not a mapping")
        meta = obj.get("metadata")
        for key, ok in (("apiVersion", obj.get("apiVersion")), ("kind", obj.get("kind")),
                        ("metadata.name", isinstance(meta, Mapping) and meta.get("name"))):
            if not ok:
                raise InputError(f"manifest #{i + 1} ({obj.get('kind', '?')}): {key}: missing")
        ref = ObjectRef.of(obj)
        if ref.key in seen:
            raise InputError(f"manifest #{i + 1}: {ref} is also manifest #{seen[ref.key] + 1}")
        seen[ref.key] = i
        out.append(dict(obj))
    return out


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy(o: Any) -> Any:
    """A deep copy of a manifest: dicts and lists copied, scalars shared (they are immutable); anything
    else through ``copy.deepcopy``. Several times faster than ``copy.deepcopy`` for a thousand objects."""
    if isinstance(o, dict):
        return {k: v if isinstance(v, _IMMUTABLE) else _copy(v) for k, v in o.items()}
    if isinstance(o, list):
        return [v if isinstance(v, _IMMUTABLE) else _copy(v) for v in o]
    if isinstance(o, _IMMUTABLE):
        return o
    return copy.deepcopy(o)


def stamp(obj: Mapping[str, Any], *, cluster: str, revision: str) -> Obj:
    """A copy of ``obj`` carrying fleet's label and annotations."""
    out: Obj = _copy(dict(obj))
    meta = out.setdefault("metadata", {})
    meta.setdefault("labels", {})[LABEL_MANAGED] = "fleet"
    ann = meta.setdefault("annotations", {})
    ann[ANN_REVISION] = revision
    ann[ANN_CLUSTER] = cluster
    return out


def seal(obj: Obj) -> Obj:
    """Set the digest annotation of a stamped manifest (in place) to the hash of everything else."""
    ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
    ann.pop(ANN_DIGEST, None)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    ann[ANN_DIGEST] = hashlib.sha256(text.encode()).hexdigest()[:20]
    return obj


def owned_by_fleet(live: Mapping[str, Any], cluster: str) -> bool:
    """Whether a live object carries fleet's marks for this cluster (only those are ever deleted)."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    return labels.get(LABEL_MANAGED) == "fleet" and ann.get(ANN_CLUSTER) in (None, cluster)


def refs_of(objects: Iterable[Mapping[str, Any]]) -> list[ObjectRef]:
    return [ObjectRef.of(o) for o in objects]
