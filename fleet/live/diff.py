"""``fleet diff``: what a sync would change, from a server-side dry run against the live objects.

For every desired object that exists, the dry-run result of applying it is compared with the live
object, both cleaned of what the server or a controller owns (status, managedFields,
resourceVersion, uid, generation, creationTimestamp) and of fleet's revision annotation; a difference
is shown as a unified diff of YAML. Objects that do not exist are to create; objects in the inventory
but no longer desired (and still carrying fleet's marks) are to prune.
"""

from __future__ import annotations

import copy
import difflib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from fleet.adapters.kube import ApiRefused, Kube, KubeTarget
from fleet.live.apply import PlannedObject, parallel, plan_objects
from fleet.live.inventory import read_inventory
from fleet.live.objects import ANN_DIGEST, ANN_REVISION, ObjectRef, owned_by_fleet, validate
from fleet.output import Reporter
from fleet.sops import AgeKey, decrypt_objects, require_key

__all__ = ["DiffResult", "ObjectDiff", "diff", "normalize"]

Obj = dict[str, Any]
_META_DROP = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink")


@dataclass(frozen=True)
class ObjectDiff:
    object: str
    action: str  # create | update | prune
    diff: str


@dataclass(frozen=True)
class DiffResult:
    cluster: str
    revision: str
    drift: bool
    create: int
    update: int
    prune: int
    unchanged: int
    objects: tuple[ObjectDiff, ...]
    duration_s: float


def normalize(obj: Mapping[str, Any]) -> Obj:
    """``obj`` without what the server or controllers own, for comparison."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for k in _META_DROP:
        meta.pop(k, None)
    ann = meta.get("annotations") or {}
    ann.pop(ANN_REVISION, None)
    ann.pop(ANN_DIGEST, None)
    if "annotations" in meta and not ann:
        del meta["annotations"]
    return out


def _rv(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _yaml(obj: Mapping[str, Any]) -> list[str]:
    return yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False).splitlines(keepends=True)


def _masked(live: Obj | None, desired: Obj | None) -> tuple[Obj | None, Obj | None]:
    """A Secret's values masked as ``kubectl diff`` does: ``***`` where both sides hold the same value,
    ``*** (before)`` and ``*** (after)`` where it changed. A diff never prints what a Secret holds."""
    if not any(o is not None and o.get("kind") == "Secret" and o.get("apiVersion") == "v1" for o in (live, desired)):
        return live, desired
    a, b = copy.deepcopy(live), copy.deepcopy(desired)
    for field in ("data", "stringData"):
        old = dict((a or {}).get(field) or {})
        new = dict((b or {}).get(field) or {})
        for k in old.keys() | new.keys():
            same = k in old and k in new and old[k] == new[k]
            if a is not None and k in old:
                a[field][k] = "***" if same else "*** (before)"
            if b is not None and k in new:
                b[field][k] = "***" if same else "*** (after)"
    return a, b


def _unified(ref: str, live: Obj | None, desired: Obj | None) -> str:
    live, desired = _masked(live, desired)
    a = _yaml(live) if live is not None else []
    b = _yaml(desired) if desired is not None else []
    return "".join(difflib.unified_diff(a, b, fromfile=f"live/{ref}", tofile=f"desired/{ref}"))


class AppliedBy(Protocol):
    """What the diff needs of the fleet's operator (:mod:`fleet.operator` implements it): whether it
    applies this cluster, what it applied (the objects it would prune when they leave Git), and which
    live objects it never prunes."""

    def applies(self, kube: Kube) -> bool: ...

    def applied_refs(self, kube: Kube) -> list[ObjectRef]: ...

    def keeps(self, live: Obj) -> bool: ...


def diff(
    target: KubeTarget,
    objects: Iterable[Mapping[str, Any]],
    revision: str,
    *,
    reporter: Reporter,
    workers: int = 16,
    operator: bool | None = None,
    via: AppliedBy | None = None,
    age_keys: Sequence[AgeKey] = (),
) -> DiffResult:
    """Compare the desired ``objects`` at ``revision`` with the cluster. Where the operator applies the
    cluster (``operator``; None: find out), the objects are compared as Flux applies them (without
    fleet's marks) and what Flux would prune comes from its Kustomization's inventory. SOPS-encrypted
    objects are decrypted with ``age_keys`` in memory, as a sync does (refused without a key); the diff
    shows no Secret's values (:func:`_masked`)."""
    t0 = time.monotonic()
    cluster = target.cluster
    objects = list(objects)
    require_key(age_keys, objects, f'cluster "{cluster}"')
    kube = Kube.connect(target, pool_size=workers + 4)
    manifests = validate(decrypt_objects(objects, age_keys) if age_keys else objects)
    if operator is None:  # the operator applies, unless a direct sync (break-glass) was not handed back yet
        operator = via is not None and via.applies(kube) and read_inventory(kube) is None
    by = "as Flux applies them" if operator else "as fleet applies them"
    reporter.step(f'comparing cluster "{cluster}" with {revision[:12]} ({len(manifests)} objects, {by})')
    items = plan_objects(kube, manifests, cluster, revision, mark=not operator)
    inv = None if operator else read_inventory(kube)
    found: list[ObjectDiff] = []
    unchanged = 0
    lock = threading.Lock()

    def one(it: PlannedObject) -> None:
        nonlocal unchanged
        ref = str(it.ref)
        live = None
        if it.served:
            live = kube.get(it.ref.api_version, it.ref.kind, it.ref.name, it.ref.namespace or None)
        if live is None:
            d = ObjectDiff(ref, "create", _refused(it) + _unified(ref, None, normalize(it.obj)))
        else:
            would: Obj = it.obj
            for _ in range(5):  # compare the dry run with the very version it was computed on
                try:
                    would = kube.apply(it.obj, dry_run=True).object
                except ApiRefused as e:
                    if e.status != 404:
                        raise
                    live = None
                    break
                if _rv(would) == _rv(live):
                    break
                live = kube.get(it.ref.api_version, it.ref.kind, it.ref.name, it.ref.namespace or None)
                if live is None:
                    break
            if live is None:  # deleted meanwhile
                d = ObjectDiff(ref, "create", _unified(ref, None, normalize(it.obj)))
                with lock:
                    found.append(d)
                return
            a, b = normalize(live), normalize(would)
            if a == b:
                with lock:
                    unchanged += 1
                return
            d = ObjectDiff(ref, "update", _unified(ref, a, b))
        with lock:
            found.append(d)

    def _refused(it: PlannedObject) -> str:
        """A new object is dry-run too: what the API server (or an admission webhook) would refuse is said,
        not counted as a plain create."""
        if not it.served:
            return ""
        try:
            kube.apply(it.obj, dry_run=True, decode=False)
        except ApiRefused as e:
            if e.status == 404:  # its namespace (or CRD) comes with the same sync
                return ""
            reporter.warn(f"{it.ref}: the API server would refuse it: {e.message.split(': ', 2)[-1]}")
            with lock:
                refused.append(str(it.ref))
            return f"# the API server would refuse it: {e.message.split(': ', 2)[-1]}\n"
        return ""

    refused: list[str] = []
    parallel(one, items, workers)
    desired = {it.ref.key for it in items}
    entries = via.applied_refs(kube) if operator and via is not None else list(inv.entries if inv else ())
    stale = sorted(e for e in entries if e.key not in desired)

    def gone(ref: ObjectRef) -> None:
        live = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
        if live is not None and (not (via is not None and via.keeps(live)) if operator
                                 else owned_by_fleet(live, cluster)):
            with lock:
                found.append(ObjectDiff(str(ref), "prune", _unified(str(ref), normalize(live), None)))

    parallel(gone, stale, workers)
    found.sort(key=lambda d: ({"create": 0, "update": 1, "prune": 2}[d.action], d.object))
    counts = {a: sum(1 for d in found if d.action == a) for a in ("create", "update", "prune")}
    result = DiffResult(
        cluster=cluster, revision=revision, drift=bool(found),
        create=counts["create"], update=counts["update"], prune=counts["prune"],
        unchanged=unchanged, objects=tuple(found),
        duration_s=round(time.monotonic() - t0, 3),
    )
    if found:
        would_refuse = f" ({len(refused)} the API server would refuse)" if refused else ""
        reporter.warn(f'cluster "{cluster}" differs from {revision[:12]}: {counts["create"]} to create{would_refuse}, '
                      f'{counts["update"]} to update, {counts["prune"]} to prune')
    else:
        reporter.ok(f'cluster "{cluster}" is up to date with {revision[:12]} ({unchanged} objects)')
    return result
