"""The Pulumi backend's stack locks: which are held, by whom, and which are stale (their process of
this host has exited, or is a zombie nobody reaped) so they can be removed before an update.

Pulumi's file (``file://``) and S3 (``s3://``) backends are the same "DIY" backend over a different
blob store: a lock is the object ``.pulumi/locks/<org>/<project>/<stack>/<id>.json`` (its holder's pid,
user, host and start time), and the lock files of either are read here through a :class:`Store`: a
directory (:class:`DirStore`) or a bucket (:class:`BucketStore`, through :mod:`fleet.adapters.s3`).
A lock of another host is never judged stale here: only its host can tell whether its pid still runs.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path, PurePath, PurePosixPath
from typing import Protocol

from fleet.adapters import proc
from fleet.adapters.s3 import Bucket

__all__ = ["BucketStore", "DirStore", "Store", "holders", "remove", "repair", "stack_locks"]


class Store(Protocol):
    """Where a backend's lock files are: list, read, remove."""

    def lock_files(self, project: str, stack: str) -> list[PurePath]: ...

    def read(self, lock: PurePath) -> bytes | None: ...

    def delete(self, lock: PurePath) -> None: ...


class DirStore:
    """A file backend's directory."""

    def __init__(self, backend_dir: Path) -> None:
        self.dir = backend_dir

    def lock_files(self, project: str, stack: str) -> list[PurePath]:
        return sorted((self.dir / ".pulumi" / "locks").glob(f"*/{project}/{stack}/*.json"))

    def read(self, lock: PurePath) -> bytes | None:
        try:
            return Path(lock).read_bytes()
        except OSError:
            return None

    def delete(self, lock: PurePath) -> None:
        Path(lock).unlink(missing_ok=True)
        Path(lock).with_name(lock.name + ".attrs").unlink(missing_ok=True)


class BucketStore:
    """An S3 backend's bucket (:class:`fleet.adapters.s3.Bucket`); a lock is named by its key."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def lock_files(self, project: str, stack: str) -> list[PurePath]:
        out: list[PurePath] = []
        for key in self.bucket.keys(".pulumi/locks/"):
            parts = key.split("/")  # .pulumi, locks, <org>, <project>, <stack>, <id>.json
            if len(parts) == 6 and parts[3] == project and parts[4] == stack and parts[5].endswith(".json"):
                out.append(PurePosixPath(key))
        return sorted(out)

    def read(self, lock: PurePath) -> bytes | None:
        return self.bucket.get(lock.as_posix())

    def delete(self, lock: PurePath) -> None:
        self.bucket.delete(lock.as_posix())  # no ``.attrs`` beside it: those are the file store's


def stack_locks(store: Store | None, project: str, stack: str) -> list[PurePath]:
    """The lock files a backend (``store``; None: one fleet cannot list) holds for a stack."""
    return [] if store is None else store.lock_files(project, stack)


def _data(store: Store, lock: PurePath) -> dict[str, object] | None:
    raw = store.read(lock)
    try:
        d = json.loads(raw) if raw else None
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def holders(store: Store | None, locks: list[PurePath]) -> str:
    """Who holds these locks, for a message: pid, user, host and since when."""
    held = []
    if store is None:
        return "another process"
    for lock in locks:
        d = _data(store, lock)
        if d is None:
            continue
        held.append(
            f"pulumi pid {d.get('pid')} of {d.get('username')}@{d.get('hostname')} "
            f"since {str(d.get('timestamp', ''))[:19]}"
        )
    return "; ".join(held) or "another process"


def remove(store: Store | None, locks: list[PurePath], *, force: bool = False,
           of_host: str | None = None) -> list[PurePath]:
    """Remove the stale ones of these locks (every one with ``force``; with ``of_host``, every one written
    from that host: a dead run's, once its lease says it is gone); returns those removed."""
    removed: list[PurePath] = []
    if store is None:
        return removed
    for lock in locks:
        data = _data(store, lock) if of_host is not None else None
        if (of_host is not None and data is not None and data.get("hostname") == of_host) or (
                of_host is None and (force or _stale(_data(store, lock)))):
            store.delete(lock)
            removed.append(lock)
    return removed


def repair(backend_dir: Path | None, project: str) -> list[Path]:
    """Remove the file backend's metadata files (``*.attrs``) of ``project``'s stacks and locks that do not
    parse: what a run killed while the backend wrote one leaves (an empty file). The backend reads a
    missing one as "no metadata", but an unreadable one fails every ``pulumi stack ls`` of the project
    (``error: EOF``), so no stack of it could be listed, resumed or rolled out again. Returns those removed.

    An S3 backend needs no repair: an object is written whole or not at all (a PUT is atomic), so a killed
    run cannot leave a truncated one there."""
    if backend_dir is None:
        return []
    root = backend_dir / ".pulumi"
    removed = []
    for attrs in [*(root / "stacks" / project).glob("*.attrs"), *(root / "locks").glob(f"*/{project}/*/*.attrs")]:
        try:
            ok = isinstance(json.loads(attrs.read_bytes() or b"null"), dict)
        except (OSError, ValueError):
            ok = False
        if not ok:
            attrs.unlink(missing_ok=True)
            removed.append(attrs)
    return removed


def _stale(data: dict[str, object] | None) -> bool:
    """A lock written by a process of this host that has exited."""
    if data is None:
        return False
    pid, host = data.get("pid"), data.get("hostname")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """An exited process nobody has reaped yet (its parent died with it: a crash)."""
    fields = proc.stat(pid)
    return fields is not None and fields[:1] == ["Z"]
