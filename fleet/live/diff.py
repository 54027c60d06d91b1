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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from fleet.adapters.kube import ApiRefused, Kube, KubeTarget
from fleet.live.apply import PlannedObject, parallel, plan_objects
from fleet.live.inventory import read_inventory
from fleet.live.objects import ANN_DIGEST, ANN_REVISION, ObjectRef, owned_by_fleet, validate
from fleet.output import Reporter
from fleet.sops import AgeKey, decrypt_objects, encrypted_paths, is_encrypted, require_key

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


Path = tuple[str | int, ...]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# What of a Secret a diff may show: what names it and how it is typed; every other field (data, stringData,
# every annotation, the last-applied-configuration one included, anything unknown) is masked
_SECRET_SHOWN: tuple[Path, ...] = (
    ("apiVersion",), ("kind",), ("type",), ("immutable",), ("metadata", "name"), ("metadata", "namespace"),
    ("metadata", "labels"), ("metadata", "generateName"), ("metadata", "finalizers"), ("metadata", "ownerReferences"),
)


def _is_secret(o: Obj | None) -> bool:
    return o is not None and o.get("kind") == "Secret" and str(o.get("apiVersion", "")) == "v1"


class _Missing:
    """A side of the diff without this key (an object created or pruned, a field added or removed)."""


_MISSING: Any = _Missing()


def _mask(a: Any, b: Any, path: Path, hidden: Callable[[Path], bool]) -> tuple[Any, Any]:
    """``a`` (live) and ``b`` (desired) with every leaf value at a path ``hidden(path)`` masked as ``kubectl
    diff`` does: ``***`` where both sides hold the same value, ``*** (before)`` / ``*** (after)`` where it
    changed. Mappings and lists are walked (so a diff still says which key changed); a side is
    :data:`_MISSING` where it lacks the path."""
    kinds = {type(x) for x in (a, b) if x is not _MISSING}
    if kinds and kinds <= {dict}:
        da: dict[Any, Any] = {} if a is _MISSING else dict(a)
        db: dict[Any, Any] = {} if b is _MISSING else dict(b)
        for k in da.keys() | db.keys():
            ma, mb = _mask(da.get(k, _MISSING), db.get(k, _MISSING), (*path, k), hidden)
            if k in da:
                da[k] = ma
            if k in db:
                db[k] = mb
        return (a if a is _MISSING else da), (b if b is _MISSING else db)
    if kinds and kinds <= {list}:
        la: list[Any] = [] if a is _MISSING else list(a)
        lb: list[Any] = [] if b is _MISSING else list(b)
        for i in range(max(len(la), len(lb))):
            ma, mb = _mask(la[i] if i < len(la) else _MISSING, lb[i] if i < len(lb) else _MISSING, (*path, i), hidden)
            if i < len(la):
                la[i] = ma
            if i < len(lb):
                lb[i] = mb
        return (a if a is _MISSING else la), (b if b is _MISSING else lb)
    if kinds & {dict, list}:  # a leaf on one side, a mapping or list on the other: each side alone
        return _mask(a, _MISSING, path, hidden)[0], _mask(_MISSING, b, path, hidden)[1]
    if not hidden(path):
        return a, b
    same = a == b
    return (a if a is _MISSING else "***" if same else "*** (before)",
            b if b is _MISSING else "***" if same else "*** (after)")


def _masked(live: Obj | None, desired: Obj | None, sops_paths: frozenset[Path] = frozenset()
            ) -> tuple[Obj | None, Obj | None]:
    """What a diff may print of ``live`` and ``desired``: a Secret with every field but its names masked
    (its values, every annotation, the ``last-applied-configuration`` one included); an object of any kind
    with every value SOPS encrypted in the repo (``sops_paths``) and its ``last-applied-configuration``
    masked. A diff never prints what a Secret holds, nor a value the repo keeps encrypted."""
    if _is_secret(live) or _is_secret(desired):
        def hidden(p: Path) -> bool:
            return not any(p[:len(s)] == s for s in _SECRET_SHOWN)
    elif sops_paths:
        def hidden(p: Path) -> bool:
            return p in sops_paths or p == ("metadata", "annotations", LAST_APPLIED)
    else:
        return live, desired
    a, b = _mask(live if live is not None else _MISSING, desired if desired is not None else _MISSING, (), hidden)
    return (None if live is None else a), (None if desired is None else b)


def _unified(ref: str, live: Obj | None, desired: Obj | None, sops_paths: frozenset[Path] = frozenset()) -> str:
    live, desired = _masked(live, desired, sops_paths)
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
    via: AppliedBy | None,
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
    # what the repo keeps encrypted, by (kind, namespace, name): masked in the diff whatever the kind
    encrypted: dict[tuple[str, str, str], frozenset[Path]] = {}
    for o in objects:
        if is_encrypted(o):
            meta = o.get("metadata") or {}
            encrypted[(str(o.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))] = \
                encrypted_paths(o)

    def sops_paths(ref: ObjectRef) -> frozenset[Path]:
        return encrypted.get((ref.kind, ref.namespace or "", ref.name)) or encrypted.get(
            (ref.kind, "", ref.name), frozenset())

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
        hide = sops_paths(it.ref)
        if live is None:
            d = ObjectDiff(ref, "create", _refused(it) + _unified(ref, None, normalize(it.obj), hide))
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
                d = ObjectDiff(ref, "create", _unified(ref, None, normalize(it.obj), hide))
                with lock:
                    found.append(d)
                return
            a, b = normalize(live), normalize(would)
            if a == b:
                with lock:
                    unchanged += 1
                return
            d = ObjectDiff(ref, "update", _unified(ref, a, b, hide))
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
                found.append(ObjectDiff(str(ref), "prune", _unified(str(ref), normalize(live), None, sops_paths(ref))))

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
