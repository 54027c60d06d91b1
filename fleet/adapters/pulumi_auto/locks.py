"""The file backend's stack locks: which are held, by whom, and which are stale (their process of
this host has exited, or is a zombie nobody reaped) so they can be removed before an update."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from fleet.adapters import proc

__all__ = ["holders", "remove", "repair", "stack_locks"]


def stack_locks(backend_dir: Path | None, project: str, stack: str) -> list[Path]:
    """The lock files a file backend (``backend_dir``; None: another backend) holds for a stack."""
    if backend_dir is None:
        return []
    return sorted((backend_dir / ".pulumi" / "locks").glob(f"*/{project}/{stack}/*.json"))


def holders(locks: list[Path]) -> str:
    """Who holds these locks, for a message: pid, user, host and since when."""
    held = []
    for lock in locks:
        try:
            d = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        held.append(
            f"pulumi pid {d.get('pid')} of {d.get('username')}@{d.get('hostname')} "
            f"since {str(d.get('timestamp', ''))[:19]}"
        )
    return "; ".join(held) or "another process"


def remove(locks: list[Path], *, force: bool = False) -> list[Path]:
    """Remove the stale ones of these locks (every one with ``force``); returns those removed."""
    removed = []
    for lock in locks:
        if force or _stale(lock):
            lock.unlink(missing_ok=True)
            lock.with_name(lock.name + ".attrs").unlink(missing_ok=True)
            removed.append(lock)
    return removed


def repair(backend_dir: Path | None, project: str) -> list[Path]:
    """Remove the file backend's metadata files (``*.attrs``) of ``project``'s stacks and locks that do not
    parse: what a run killed while the backend wrote one leaves (an empty file). The backend reads a
    missing one as "no metadata", but an unreadable one fails every ``pulumi stack ls`` of the project
    (``error: EOF``), so no stack of it could be listed, resumed or rolled out again. Returns those removed."""
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


def _stale(lock: Path) -> bool:
    """A lock written by a process of this host that has exited."""
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
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
