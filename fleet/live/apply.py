"""``fleet sync``: apply a rendered revision to a cluster, server-side, and prune what left Git.

Order of work, each step safe to repeat:

1. resolve every object's kind with the API server (unknown kinds fail here, before any write,
   unless a CRD of the same set defines them);
2. write the inventory as the union of the old and the new entries, state ``applying``;
3. apply Namespaces and CRDs, wait until the CRDs are Established;
4. apply everything else in parallel (server-side apply, field manager ``fleet``, forced);
5. only when all of that succeeded: prune old-minus-new (objects carrying fleet's marks only;
   others first, then CRDs, then Namespaces), and write the inventory with the new entries,
   state ``applied``.

A failure anywhere leaves the union in the inventory, so nothing fleet applied is lost track of.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fleet.adapters.kube import FIELD_MANAGER, ApiRefused, Kube, KubeTarget
from fleet.errors import FleetError, Forbidden, KubeError, Unreachable
from fleet.live.health import condition_lines
from fleet.live.health import crd as crd_health
from fleet.live.inventory import (
    INVENTORY_NAMESPACE,
    Inventory,
    ensure_namespace,
    now,
    read_inventory,
    remove_inventory,
    write_inventory,
)
from fleet.live.objects import (
    ANN_DIGEST,
    LABEL_MANAGED,
    ObjectRef,
    is_crd,
    is_namespace,
    owned_by_fleet,
    seal,
    split_api_version,
    stamp,
    validate,
)
from fleet.live.watch import Query, Watcher
from fleet.output import Reporter
from fleet.sops import AgeKey, decrypt_objects, require_key

__all__ = ["ObjectFailure", "SyncResult", "hand_over", "sync"]

Obj = dict[str, Any]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ObjectFailure:
    object: str
    message: str


@dataclass(frozen=True)
class SyncResult:
    cluster: str
    revision: str
    previous_revision: str | None
    dry_run: bool
    prune: bool
    objects: int
    created: tuple[str, ...]
    configured: int
    unchanged: int  # already applied as they are (same digest, no other field manager): not sent
    pruned: tuple[str, ...]  # deleted (with dry_run: would be deleted)
    kept: tuple[str, ...]  # removed from Git but left in place (--no-prune, or not fleet's)
    duration_s: float

    @property
    def changed(self) -> bool:
        return bool(self.created or self.pruned) or self.previous_revision != self.revision


@dataclass
class PlannedObject:
    ref: ObjectRef
    obj: Obj
    served: bool = True


@dataclass
class _Outcome:
    created: list[str] = field(default_factory=list)
    configured: int = 0
    unchanged: int = 0
    failures: list[tuple[ObjectRef, FleetError]] = field(default_factory=list)


def _crd_kinds(manifests: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], bool]:
    """(group, version, kind) -> namespaced, for the CRDs among ``manifests``."""
    out: dict[tuple[str, str, str], bool] = {}
    for m in manifests:
        if is_crd(m):
            spec = m.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind", "")
            for v in spec.get("versions") or []:
                gvk = (str(spec.get("group", "")), str(v.get("name", "")), str(kind))
                out[gvk] = spec.get("scope") != "Cluster"
    return out


def plan_objects(kube: Kube, manifests: list[Obj], cluster: str, revision: str, *,
                 mark: bool = True) -> list[PlannedObject]:
    """The manifests as fleet would apply them: namespaced where the API says, and (``mark``) with
    fleet's label and annotations; ``mark=False`` for objects the operator applies, as it does."""
    defined = _crd_kinds(manifests)
    items = []
    for m in manifests:
        api_version, kind = str(m["apiVersion"]), str(m["kind"])
        res = kube.find_resource(api_version, kind)
        if res is not None:
            namespaced, served = res.namespaced, True
        else:
            group, version = split_api_version(api_version)
            if (group, version, kind) not in defined:
                kube.resource(api_version, kind)  # raises NotServed with a hint
            namespaced, served = defined[(group, version, kind)], False
        obj = stamp(m, cluster=cluster, revision=revision) if mark else copy.deepcopy(dict(m))
        meta = obj.setdefault("metadata", {})
        if namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        if mark:
            seal(obj)
        items.append(PlannedObject(ObjectRef.of(obj, namespaced=namespaced), obj, served))
    return items


def parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    if len(items) <= 1 or workers <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="fleet-apply") as pool:
        return list(pool.map(fn, items))


def _fleet_alone(live: Mapping[str, Any]) -> bool:
    """No one but fleet wrote the object (status subresources aside)."""
    for mf in (live.get("metadata") or {}).get("managedFields") or []:
        if not mf.get("subresource") and mf.get("manager") != FIELD_MANAGER:
            return False
    return True


def _already_applied(kube: Kube, items: list[PlannedObject], workers: int) -> set[tuple[str, str, str, str]]:
    """Objects live exactly as fleet would apply them (the digest of what fleet applied, no other field
    manager): one list per kind (and namespace, for a few), of metadata only, the lists made in parallel."""
    groups: dict[tuple[str, str], list[PlannedObject]] = {}
    for it in items:
        if it.served:
            groups.setdefault((str(it.obj["apiVersion"]), str(it.obj["kind"])), []).append(it)
    want: dict[tuple[str, str, str, str], str] = {}
    lists: list[tuple[str, str, str | None]] = []
    for (api_version, kind), its in groups.items():
        want.update({it.ref.key: it.obj["metadata"]["annotations"][ANN_DIGEST] for it in its})
        namespaces = sorted({it.ref.namespace for it in its})
        scopes: list[str | None] = list(namespaces) if len(namespaces) <= 5 and all(namespaces) else [None]
        lists.extend((api_version, kind, ns) for ns in scopes)

    def live_of(scope: tuple[str, str, str | None]) -> list[Obj]:
        api_version, kind, ns = scope
        try:
            return list(kube.list_objects(api_version, kind, namespace=ns, metadata_only=True,
                                          label_selector=f"{LABEL_MANAGED}=fleet").items)
        except FleetError:
            return []  # e.g. no right to list cluster-wide: apply them all

    same: set[tuple[str, str, str, str]] = set()
    for live in parallel(live_of, lists, workers):
        for obj in live:
            ref = ObjectRef.of(obj, namespaced=bool((obj.get("metadata") or {}).get("namespace")))
            digest = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANN_DIGEST)
            if digest is not None and want.get(ref.key) == digest and _fleet_alone(obj):
                same.add(ref.key)
    return same


def _apply_all(kube: Kube, items: list[PlannedObject], *, dry_run: bool, workers: int, out: _Outcome) -> None:
    skip = _already_applied(kube, items, workers)
    out.unchanged += sum(1 for it in items if it.ref.key in skip)
    items = [it for it in items if it.ref.key not in skip]
    stop = threading.Event()  # an unreachable API server: the rest would fail the same way
    lock = threading.Lock()

    def one(it: PlannedObject) -> None:
        if stop.is_set():
            return
        if not it.served:  # its CRD is applied in this sync; only a dry run gets here
            with lock:
                out.created.append(str(it.ref))
            return
        try:
            applied = kube.apply(it.obj, dry_run=dry_run, decode=False)
        except ApiRefused as e:
            if dry_run and e.status == 404:  # its namespace is created by this sync
                with lock:
                    out.created.append(str(it.ref))
                return
            with lock:
                out.failures.append((it.ref, e))
            return
        except FleetError as e:
            if isinstance(e, Unreachable):
                stop.set()
            with lock:
                out.failures.append((it.ref, e))
            return
        with lock:
            if applied.created:
                out.created.append(str(it.ref))
            else:
                out.configured += 1

    parallel(one, items, workers)


def _raise_failures(cluster: str, failures: list[tuple[ObjectRef, FleetError]], total: int,
                    reporter: Reporter, note: str) -> None:
    for ref, e in failures[:20]:
        reporter.fail(f"{ref}: {e.message}")
    if len(failures) > 20:
        reporter.fail(f"... and {len(failures) - 20} more")
    errors = [e for _, e in failures]
    first = errors[0]
    cls: type[KubeError] = KubeError
    if any(isinstance(e, Unreachable) for e in errors):
        cls = Unreachable
    elif all(isinstance(e, Forbidden) for e in errors):
        cls = Forbidden
    transient = all(e.transient for e in errors)  # as the adapter said: a retry cures every failure
    if len(errors) == 1:
        raise cls(f"{first.message}{note}", hint=first.hint, transient=transient) from first
    raise cls(
        f'cluster "{cluster}": {len(errors)} of {total} objects failed; first: {first.message}{note}',
        hint=first.hint, transient=transient,
    ) from first


def _wait_established(kube: Kube, crds: list[ObjectRef], timeout: float, reporter: Reporter) -> None:
    if not crds:
        return
    names = {r.name for r in crds}
    queries = [Query("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, n) for n in sorted(names)]
    reporter.wait(f"waiting for {len(crds)} CRDs to be established")

    def established(snap: dict[Any, Obj]) -> bool:
        found = {k[3]: o for k, o in snap.items()}
        return all(n in found and crd_health(found[n]).ok for n in names)

    with Watcher(kube, queries, deadline=time.monotonic() + timeout) as w:
        if not w.wait(established):
            found = {k[3]: o for k, o in w.snapshot.items()}
            late = [
                f"{n} ({'; '.join(condition_lines(found[n])) or 'no conditions'})" if n in found
                else f"{n} (not found)"
                for n in sorted(names) if n not in found or not crd_health(found[n]).ok
            ]
            raise KubeError(f'cluster "{kube.target.cluster}": CRDs not established within {timeout:.0f}s: '
                            + ", ".join(late))
    kube.forget_discovery()  # their kinds are served now
    reporter.ok(f"{len(crds)} CRDs established")


def _prune(kube: Kube, stale: list[ObjectRef], cluster: str, *, dry_run: bool, workers: int,
           reporter: Reporter) -> tuple[list[str], list[str], list[tuple[ObjectRef, FleetError]]]:
    pruned: list[str] = []
    kept: list[str] = []
    failures: list[tuple[ObjectRef, FleetError]] = []
    lock = threading.Lock()

    def one(ref: ObjectRef) -> None:
        try:
            live = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
            if live is None:
                return  # already gone
            inventory_ns = ref.kind == "Namespace" and ref.name == INVENTORY_NAMESPACE
            if inventory_ns or not owned_by_fleet(live, cluster):
                with lock:
                    kept.append(str(ref))
                reporter.warn(f"not pruning {ref}: it does not carry fleet's marks for this cluster")
                return
            if not dry_run:
                kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace or None,
                            uid=(live.get("metadata") or {}).get("uid"))
            with lock:
                pruned.append(str(ref))
            reporter.ok(f"{'would prune' if dry_run else 'pruned'} {ref}")
        except FleetError as e:
            with lock:
                failures.append((ref, e))

    def rank(r: ObjectRef) -> int:
        if r.group == "apiextensions.k8s.io" and r.kind == "CustomResourceDefinition":
            return 1
        return 2 if (r.group, r.kind) == ("", "Namespace") else 0

    for level in (0, 1, 2):
        parallel(one, [r for r in stale if rank(r) == level], workers)
    return sorted(pruned), sorted(kept), failures


def sync(
    target: KubeTarget,
    objects: Iterable[Mapping[str, Any]],
    revision: str,
    *,
    prune: bool = True,
    dry_run: bool = False,
    reporter: Reporter,
    workers: int = 16,
    crd_timeout: float = 120.0,
    age_keys: Sequence[AgeKey] = (),
) -> SyncResult:
    """Apply ``objects`` (rendered at ``revision``) to the cluster; see the module docstring.
    SOPS-encrypted objects are decrypted with ``age_keys`` in memory, here and nowhere else (refused
    before anything is written when there is no key)."""
    t0 = time.monotonic()
    cluster = target.cluster
    objects = list(objects)
    require_key(age_keys, objects, f'cluster "{cluster}"')
    manifests = validate(decrypt_objects(objects, age_keys) if age_keys else objects)
    kube = Kube.connect(target, pool_size=workers + 4)
    short = revision[:12]
    reporter.step(f'{"dry run: " if dry_run else ""}syncing cluster "{cluster}" to {short} '
                  f"({len(manifests)} objects)")
    old = read_inventory(kube)
    items = plan_objects(kube, manifests, cluster, revision)
    new_keys = {it.ref.key for it in items}
    stale = sorted(e for e in (old.entries if old else ()) if e.key not in new_keys)
    note = ""
    inv: Inventory | None = None
    if not dry_run:
        ensure_namespace(kube)
        union = frozenset(it.ref for it in items) | frozenset(stale)
        inv = write_inventory(kube, Inventory(
            cluster, revision, "applying", now(), union, previous_revision=old.revision if old else "",
        ), old_generation=old.generation if old else 0, expect_version=old.resource_version if old else None)
        note = f" (inventory kept at applying {short}; the next sync picks up from here)"

    out = _Outcome()
    first = [it for it in items if is_namespace(it.obj) or is_crd(it.obj)]
    rest = [it for it in items if not (is_namespace(it.obj) or is_crd(it.obj))]
    if first:
        reporter.step(f"applying {len(first)} namespaces and CRDs")
        _apply_all(kube, first, dry_run=dry_run, workers=workers, out=out)
        if out.failures:
            _raise_failures(cluster, out.failures, len(items), reporter, note)
        if not dry_run:
            _wait_established(kube, [it.ref for it in first if is_crd(it.obj)], crd_timeout, reporter)
            for it in rest:
                if not it.served:
                    kube.wait_served(str(it.obj["apiVersion"]), str(it.obj["kind"]), timeout=crd_timeout)
                    it.served = True
    if rest:
        reporter.step(f"applying {len(rest)} objects ({min(workers, len(rest))} at a time)")
        _apply_all(kube, rest, dry_run=dry_run, workers=workers, out=out)
        if out.failures:
            _raise_failures(cluster, out.failures, len(items), reporter, note)

    pruned: list[str] = []
    kept: list[str] = []
    remaining = {it.ref for it in items}
    if stale and prune:
        reporter.step(f"pruning {len(stale)} objects removed from the revision")
        pruned, kept, failures = _prune(
            kube, stale, cluster, dry_run=dry_run, workers=workers, reporter=reporter
        )
        if failures:
            _raise_failures(cluster, failures, len(stale), reporter, note)
    elif stale:
        kept = [str(r) for r in stale]
        remaining |= set(stale)
        reporter.warn(f"{len(stale)} objects removed from the revision were left in place (--no-prune)")

    if inv is not None:
        final = Inventory(cluster, revision, "applied", now(), frozenset(remaining),
                          previous_revision=inv.previous_revision)
        write_inventory(kube, final, old_generation=inv.generation, expect_version=inv.resource_version)
    result = SyncResult(
        cluster=cluster, revision=revision, previous_revision=old.revision if old else None, dry_run=dry_run,
        prune=prune, objects=len(items), created=tuple(sorted(out.created)), configured=out.configured,
        unchanged=out.unchanged,
        pruned=tuple(pruned), kept=tuple(kept), duration_s=round(time.monotonic() - t0, 3),
    )
    verb = "would apply" if dry_run else "applied"
    reporter.ok(
        f'{verb} {len(items)} objects to "{cluster}" at {short} ({len(result.created)} new, '
        f"{result.configured} updated, {result.unchanged} unchanged"
        f"{', ' + str(len(pruned)) + ' pruned' if pruned else ''}) "
        f"in {result.duration_s:.1f}s"
    )
    return result


def hand_over(target: KubeTarget, reporter: Reporter, kube: Kube | None = None) -> str:
    """Give a direct sync's objects to the operator, once it applied the revision itself.

    A direct sync (break-glass, or a cluster synced before its operator came up) leaves fleet's inventory
    and fleet's marks on every object it applied (the ``fleet.dev/*`` label and annotations, fields of the
    ``fleet`` field manager); left there, ``fleet diff`` would report them as drift for ever. Each object
    fleet applied gives up its ``fleet`` fields (a server-side apply of its name alone: the fields the
    operator also applies stay, as the operator's), then the inventory goes: the objects are the
    operator's alone. Nothing to hand over: "" (one read). ``kube``: the caller's client (left open)."""
    own = kube is None
    kube = kube or Kube.connect(target)
    try:
        inv = read_inventory(kube)
        if inv is None:
            return ""
        released, left = 0, []
        for ref in inv.entries:
            live = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)
            if live is None or not owned_by_fleet(live, target.cluster):
                continue
            meta: dict[str, Any] = {"name": ref.name, **({"namespace": ref.namespace} if ref.namespace else {})}
            try:
                kube.apply({"apiVersion": ref.api_version, "kind": ref.kind, "metadata": meta})
                released += 1
            except ApiRefused as e:  # fleet alone set a required field: the operator does not apply it
                left.append(f"{ref}: {e.message}")
        remove_inventory(kube)
    finally:
        if own:
            kube.close()
    for line in left[:3]:
        reporter.warn(f"left as fleet applied it (the operator does not apply it): {line}")
    said = f"{released} objects handed over from fleet's direct sync to the operator"
    reporter.ok(said)
    return said
