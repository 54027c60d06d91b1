"""The journal of a bootstrap run: which steps are done, so a killed run resumes where it stopped.

One JSON file per cluster under ``$FLEET_HOME/bootstrap/<cluster>/journal.json``, replaced
atomically (write, fsync, rename) after every change, and guarded by an exclusive lock so two runs
for one cluster never interleave. A finished run is kept beside it as ``runs/<run-id>.json``.

On a shared backend the journal has a ``remote`` too (:class:`fleet.stepkit.team.TeamRun`): every save and
archive is also written to the backend's bucket, where a teammate's run resumes it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from fleet.errors import InputError
from fleet.paths import exclusive_flock, fleet_home, write_private

__all__ = ["Journal", "StepRecord", "exclusive_lock", "journal_dir", "locked_journal", "new_run_id", "now_iso",
           "read_journal", "write_json_atomic"]

StepState = Literal["pending", "running", "done", "failed", "skipped"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A run's id: when it started (UTC, to the second) and a random suffix, e.g. ``20260101T120000Z-3fa2c1``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def journal_dir(cluster: str) -> Path:
    return fleet_home() / "bootstrap" / cluster


class Remote(Protocol):
    """Where a journal is also written (the team's bucket)."""

    def save(self, data: dict[str, Any]) -> None: ...
    def archive(self, run_id: str, data: dict[str, Any]) -> None: ...


@dataclass
class StepRecord:
    name: str
    state: StepState = "pending"
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    attempts: int = 0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Journal:
    cluster: str
    run_id: str
    revision: str
    sync_mode: str
    started: str
    steps: list[StepRecord]
    state: Literal["running", "recovered", "failed"] = "running"
    ended: str | None = None
    resumed: int = 0
    path: Path | None = None
    remote: Remote | None = None

    @classmethod
    def new(cls, cluster: str, revision: str, sync_mode: str, step_names: list[str]) -> Journal:
        return cls(cluster, new_run_id(), revision, sync_mode, now_iso(), [StepRecord(n) for n in step_names])

    def step(self, name: str) -> StepRecord:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "run_id": self.run_id,
            "revision": self.revision,
            "sync_mode": self.sync_mode,
            "started": self.started,
            "ended": self.ended,
            "state": self.state,
            "resumed": self.resumed,
            "steps": [vars(s) for s in self.steps],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path) -> Journal:
        steps = [StepRecord(**s) for s in d["steps"]]
        return cls(
            d["cluster"], d["run_id"], d["revision"], d["sync_mode"], d["started"], steps,
            d.get("state", "running"), d.get("ended"), int(d.get("resumed", 0)), path,
        )

    def save(self) -> None:
        assert self.path is not None
        write_json_atomic(self.path, self.to_dict())
        if self.remote is not None:
            self.remote.save(self.to_dict())

    def archive(self) -> Path:
        assert self.path is not None
        dest = self.path.parent / "runs" / f"{self.run_id}.json"
        write_json_atomic(dest, self.to_dict())
        if self.remote is not None:
            self.remote.archive(self.run_id, self.to_dict())
        return dest


def load(cluster: str) -> Journal | None:
    return read_journal(journal_dir(cluster) / "journal.json", Journal.from_dict)


J = TypeVar("J")


def read_journal(path: Path, parse: Callable[[dict[str, Any], Path], J]) -> J | None:
    """The journal in ``path`` (None when there is none). A journal cut short by a crash mid-write cannot
    happen (atomic rename); a hand-edited one that no longer parses is set aside (``.corrupt``), not trusted."""
    if not path.is_file():
        return None
    try:
        return parse(json.loads(path.read_text()), path)
    except (ValueError, KeyError, TypeError):
        path.rename(path.with_suffix(".corrupt"))
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON: write, fsync, rename; no reader sees half a file. 0600 in a
    0700 directory, whatever the umask."""
    write_private(path, json.dumps(data, indent=2) + "\n", fsync=True)


@contextmanager
def exclusive_lock(lock_file: Path, busy: str, hint: str) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file``; refuse at once (InputError ``busy``) when it is held.
    The kernel releases it when the holder dies, SIGKILL included."""
    with exclusive_flock(lock_file, lambda: InputError(f"{busy} (lock {lock_file})", hint=hint)):
        yield


@contextmanager
def locked_journal(cluster: str) -> Iterator[Path]:
    """Hold the cluster's bootstrap lock; a second run for the same cluster is refused at once."""
    d = journal_dir(cluster)
    with exclusive_lock(
        d / "lock",
        f'another bootstrap of cluster "{cluster}" is running',
        "wait for it to finish; a killed run releases the lock and is resumed by running again",
    ):
        yield d / "journal.json"
