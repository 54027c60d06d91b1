"""One lock per cluster, across every command that changes it: ``fleet sync``, ``fleet provision``,
``fleet bootstrap`` and each cluster of a ``fleet rollout``. A second one is refused at once, naming the
holder (its command, process, host and since when), instead of racing the first (a sync's pin silently
undone by a bootstrap's, or a loser waiting out its whole timeout).

The lock is an exclusive ``flock`` on ``$FLEET_HOME/locks/cluster-<name>.lock``: the kernel releases it
when its holder dies, SIGKILL included, so a killed command never leaves it held. It is re-entrant within
one process (a rollout that brings a cluster up through the DR pipeline holds it once). Dry runs take no
lock (they write nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from fleet.errors import InputError
from fleet.paths import exclusive_flock, fleet_home, writes_allowed

__all__ = ["ClusterBusy", "cluster_lock", "lock_path"]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_held: dict[str, int] = {}  # cluster -> depth, in this process
_guard = threading.Lock()


class ClusterBusy(InputError):
    """Another fleet command changes this cluster right now."""


def lock_path(cluster: str) -> Path:
    """The lock file of ``cluster``; a name that is not a plain cluster name (it comes from the command
    line before the registry checks it) is hashed, so it never names a path outside the lock folder."""
    if not _NAME.match(cluster):
        cluster = "x-" + hashlib.sha256(cluster.encode()).hexdigest()[:32]
    return fleet_home() / "locks" / f"cluster-{cluster}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another fleet command"
    if not isinstance(info, dict) or not info.get("command"):
        return "another fleet command"
    return (f'{str(info.get("command"))[:80]} (pid {info.get("pid", "?")} on {str(info.get("host", "?"))[:64]}, '
            f'since {info.get("since", "?")})')


@contextmanager
def cluster_lock(cluster: str, command: str) -> Iterator[None]:
    """Hold cluster ``cluster``'s lock while changing it; ``command`` says who holds it
    (``fleet sync eu-1``). Refused at once (:class:`ClusterBusy`, exit 2) when another process holds it."""
    if not writes_allowed():
        yield
        return
    with _guard:
        if _held.get(cluster):
            _held[cluster] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[cluster] -= 1
        return
    path = lock_path(cluster)
    busy = lambda: ClusterBusy(f'cluster "{cluster}" is being changed by {_holder(path)}',  # noqa: E731
                               hint="wait for it to finish (a killed command releases the lock at once)")
    with exclusive_flock(path, busy) as fd:
        info = {"command": command, "pid": os.getpid(), "host": os.uname().nodename,
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _guard:
            _held[cluster] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(cluster, None)
            os.ftruncate(fd, 0)
