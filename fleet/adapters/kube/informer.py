"""List-then-watch over the adapter's client: :class:`Informer`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import urllib3

from fleet.adapters.kube.client import Kube
from fleet.adapters.kube.model import WatchEvent
from fleet.errors import ApiRefused, KubeError

__all__ = ["Informer"]


class Informer:
    """List-then-watch: yields a ``SYNC`` with the full list, then watch events, re-listing on
    410 Gone and reconnecting after dropped streams (with the adapter's retry policy) until the
    deadline or :meth:`close`. Unserved kinds yield one empty ``SYNC`` and re-check now and then."""

    def __init__(
        self, kube: Kube, api_version: str, kind: str, *, namespace: str | None = None,
        field_selector: str | None = None, deadline: float,
    ) -> None:
        """List then watch ``kind`` (in ``namespace``, matching ``field_selector``) until ``deadline``
        (time.monotonic())."""
        self.kube, self.api_version, self.kind = kube, api_version, kind
        self.namespace, self.field_selector, self.deadline = namespace, field_selector, deadline
        self._closed = threading.Event()
        self._resp: Any = None

    def close(self) -> None:
        self._closed.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.release_conn()

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def events(self) -> Iterator[WatchEvent]:
        kube = self.kube
        while not self._closed.is_set() and self._remaining() > 0:
            res = kube.find_resource(self.api_version, self.kind)
            if res is None:  # CRD not there (yet): report empty, look again in a while
                yield WatchEvent("SYNC")
                self._closed.wait(min(2.0, max(self._remaining(), 0)))
                continue
            listed = kube.list_objects(self.api_version, self.kind, namespace=self.namespace,
                               field_selector=self.field_selector)
            yield WatchEvent("SYNC", items=listed.items)
            rv = listed.resource_version
            while not self._closed.is_set() and (left := self._remaining()) > 0:
                query = [("watch", "1"), ("resourceVersion", rv), ("allowWatchBookmarks", "true"),
                         ("timeoutSeconds", str(max(1, int(min(left, 290)))))]
                if self.field_selector:
                    query.append(("fieldSelector", self.field_selector))
                try:
                    _, _, resp = kube._call(
                        "GET", res.path(self.namespace), query=query, stream=True,
                        what=f"watch {self.kind}", timeout=(kube.policy.connect_timeout, left + 5),
                    )
                except ApiRefused as e:
                    if e.status == 410:
                        break  # too old: list again
                    raise
                self._resp = resp
                if self._closed.is_set():  # closed while the stream was opening
                    with contextlib.suppress(Exception):
                        resp.shutdown()
                    resp.release_conn()
                    return
                gone = False
                try:
                    for line in resp:
                        if self._closed.is_set():
                            return
                        if not line.strip():
                            continue
                        ev = json.loads(line)
                        obj = ev.get("object") or {}
                        if ev.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                gone = True
                                break
                            raise KubeError(
                                f'cluster "{kube.target.cluster}": watch {self.kind}: {obj.get("message")}'
                            )
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if ev.get("type") == "BOOKMARK":
                            continue
                        obj.setdefault("apiVersion", res.api_version)
                        obj.setdefault("kind", self.kind)
                        yield WatchEvent(str(ev.get("type")), obj)
                except (urllib3.exceptions.HTTPError, OSError, ValueError):
                    if self._closed.is_set():
                        return
                    # a dropped stream: reconnect from the last resourceVersion (the call retries)
                finally:
                    self._resp = None
                    with contextlib.suppress(Exception):
                        resp.release_conn()
                if gone:
                    break
