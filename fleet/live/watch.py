"""Watching a set of objects until a condition holds: one informer thread per query, one deadline.

The informers (list, then watch from that resourceVersion; see :class:`fleet.adapters.kube.Informer`)
feed one queue; :meth:`Watcher.wait` re-evaluates the caller's predicate on every event, so it
returns as soon as the cluster says so, never on a polling tick.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleet.adapters.kube import Informer, Kube
from fleet.errors import FleetError
from fleet.live.objects import ObjectRef, split_api_version

__all__ = ["Query", "Snapshot", "Watcher", "queries_for", "snapshot_once"]

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, kind, namespace, name
Snapshot = dict[Key, Obj]


@dataclass(frozen=True)
class Query:
    api_version: str
    kind: str
    namespace: str | None = None
    name: str | None = None

    @property
    def field_selector(self) -> str | None:
        return f"metadata.name={self.name}" if self.name else None

    def matches(self, key: Key) -> bool:
        group, _ = split_api_version(self.api_version)
        return (key[0] == group and key[1] == self.kind
                and (self.namespace is None or key[2] == self.namespace)
                and (self.name is None or key[3] == self.name))


def key_of(obj: Obj) -> Key:
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    meta = obj.get("metadata") or {}
    return (group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))


def queries_for(refs: Iterable[ObjectRef]) -> list[Query]:
    """Few queries covering ``refs``: by name for one object, by namespace, else cluster-wide."""
    by_kind: dict[tuple[str, str], list[ObjectRef]] = {}
    for r in refs:
        by_kind.setdefault((r.api_version, r.kind), []).append(r)
    out = []
    for (api_version, kind), rs in sorted(by_kind.items()):
        namespaces = {r.namespace for r in rs}
        if len(rs) == 1:
            out.append(Query(api_version, kind, rs[0].namespace or None, rs[0].name))
        elif len(namespaces) == 1:
            out.append(Query(api_version, kind, next(iter(namespaces)) or None))
        else:
            out.append(Query(api_version, kind))
    return out


def snapshot_once(kube: Kube, queries: Iterable[Query]) -> Snapshot:
    """The objects the queries match, listed once (no watching)."""
    snap: Snapshot = {}
    for q in queries:
        for obj in kube.list_objects(q.api_version, q.kind, namespace=q.namespace,
                                     field_selector=q.field_selector).items:
            snap[key_of(obj)] = obj
    return snap


class Watcher:
    """Keeps a live snapshot of what ``queries`` match until closed (use as a context manager)."""

    def __init__(self, kube: Kube, queries: Iterable[Query], *, deadline: float) -> None:
        self.kube = kube
        self.queries = list(queries)
        self.deadline = deadline
        self.snapshot: Snapshot = {}
        self._events: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._informers: list[Informer] = []
        self._threads: list[threading.Thread] = []
        self._synced: set[int] = set()

    def __enter__(self) -> Watcher:
        for i, q in enumerate(self.queries):
            inf = Informer(self.kube, q.api_version, q.kind, namespace=q.namespace,
                           field_selector=q.field_selector, deadline=self.deadline)
            self._informers.append(inf)
            t = threading.Thread(target=self._run, args=(i, inf), daemon=True, name=f"watch-{q.kind}")
            self._threads.append(t)
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for inf in self._informers:
            inf.close()
        for t in self._threads:
            t.join(timeout=2)

    def interrupt(self, exc: BaseException) -> None:
        """Make :meth:`wait` raise ``exc`` now (from any thread): a bake watch that is cancelled."""
        self._events.put((-1, exc))

    def _run(self, i: int, inf: Informer) -> None:
        try:
            for ev in inf.events():
                self._events.put((i, ev))
        except FleetError as e:
            self._events.put((i, e))
        except Exception as e:  # carried to the waiting thread, which raises it
            self._events.put((i, e))

    def _absorb(self, i: int, item: Any) -> None:
        if isinstance(item, BaseException):
            raise item
        q = self.queries[i]
        if item.type == "SYNC":
            for k in [k for k in self.snapshot if q.matches(k)]:
                del self.snapshot[k]
            for obj in item.items:
                self.snapshot[key_of(obj)] = obj
            self._synced.add(i)
        elif item.object is not None:
            k = key_of(item.object)
            if item.type == "DELETED":
                self.snapshot.pop(k, None)
            else:
                self.snapshot[k] = item.object

    def wait(self, done: Callable[[Snapshot], bool]) -> bool:
        """Block until ``done(snapshot)`` holds (True) or the deadline passes (False).

        ``done`` is first asked once every query has listed, then after every event.
        """
        if not self.queries:
            return done(self.snapshot)
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:  # time is up: take what already arrived, then one last look
                self._drain()
                return self._synced_all() and done(self.snapshot)
            try:
                i, item = self._events.get(timeout=left)
            except queue.Empty:
                continue
            self._absorb(i, item)
            self._drain()  # everything already queued, before evaluating
            if self._synced_all() and done(self.snapshot):
                return True

    def _drain(self) -> None:
        while True:
            try:
                i, item = self._events.get_nowait()
            except queue.Empty:
                return
            self._absorb(i, item)

    def _synced_all(self) -> bool:
        return len(self._synced) == len(self.queries)
