"""The journal of a rollout: which waves and clusters are done, so a killed rollout continues where it stopped.

One JSON file, ``$FLEET_HOME/rollouts/current.json``, replaced atomically (write, fsync, rename) after
every change, guarded by an exclusive lock (``rollouts/lock``) so two rollouts never interleave. It is
keyed by (selector, revision): running the same rollout again resumes it; another one sets the old
journal aside. A rollout that succeeded is moved to ``rollouts/<id>/journal.json`` beside its report.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleet.paths import fleet_home, flock_held
from fleet.stepkit.journal import (
    Remote,
    StepRecord,
    exclusive_lock,
    new_run_id,
    now_iso,
    read_journal,
    write_json_atomic,
)

__all__ = [
    "ClusterRun",
    "RolloutJournal",
    "WaveRun",
    "load_current",
    "load_rollout",
    "locked_rollouts",
    "rollout_dir",
    "rollout_running",
    "rollouts_dir",
]

# rolled-back: it had passed, and was returned to its last good with its stopping wave
ClusterState = Literal["pending", "running", "passed", "failed", "not-started", "rolled-back"]
# waiting-approval: paused before it, until `fleet rollout approve`; baking: its clusters passed, watched until
# bake_until; tolerated: done, with failures within the budget
WaveState = Literal["pending", "waiting-approval", "running", "baking", "passed", "tolerated", "failed"]
RolloutState = Literal["running", "paused", "succeeded", "degraded", "stopped"]


def rollouts_dir() -> Path:
    return fleet_home() / "rollouts"


def rollout_dir(rollout_id: str) -> Path:
    """Where a rollout's report (and, once finished, its journal) lives."""
    return rollouts_dir() / rollout_id


@dataclass
class ClusterRun:
    name: str
    wave: int
    state: ClusterState = "pending"
    action: str = ""  # "bootstrap" (it did not exist) | "update" (sync, gates, record)
    why: str = ""  # why that action
    sync_mode: str = ""
    step: str = ""  # the step it is in (for the live view)
    message: str = ""  # its last progress line
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None  # of the last attempt
    attempts: int = 0  # resumed or re-run clusters count more than one
    previous_good: str | None = None  # its last good revision before this rollout touched it
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None
    failed_step: str | None = None
    report: str | None = None  # the bootstrap report of a cluster brought up from nothing
    rollback: dict[str, Any] | None = None  # target, state, detail, duration_s

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["steps"] = [dict(vars(s)) for s in self.steps]
        d["rollback"] = dict(self.rollback) if self.rollback is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterRun:
        d = dict(d)
        d["steps"] = [StepRecord(**s) for s in d.get("steps", [])]
        return cls(**d)


@dataclass
class WaveRun:
    wave: int
    clusters: list[str]
    state: WaveState = "pending"
    started: str | None = None
    ended: str | None = None
    failures: int = 0
    allowed: int = 0  # the failures its budget allows
    policy: str = ""  # what asks for its approval or bake (fleet.yaml keys, --bake)
    approval: bool = False  # it needs one
    waiting_since: str | None = None  # the rollout first paused before it
    approved: dict[str, Any] | None = None  # by, at, reason (the note that let it start)
    bake_s: int = 0
    bake_started: str | None = None
    bake_until: str | None = None  # kept across attempts: a rerun continues the wait
    baked: str | None = None  # the bake ended (held, or a gate failed)

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "clusters": list(self.clusters)}


@dataclass
class RolloutJournal:
    id: str
    selector: str  # "" selects every cluster
    revision: str  # full sha
    asked: str  # the revision as given (--rev)
    started: str
    waves: list[WaveRun]
    clusters: dict[str, ClusterRun]
    options: dict[str, Any] = field(default_factory=dict)
    state: RolloutState = "running"
    ended: str | None = None
    resumed: int = 0
    stopped_at: int | None = None  # the wave whose failures stopped the rollout
    started_by: str = ""  # the git identity that first started it ("Name <email>")
    paused_at: int | None = None  # the wave it waits before, for an approval
    stop_reason: str = ""  # which budget was exceeded
    path: Path | None = None
    remote: Remote | None = field(default=None, repr=False, compare=False)  # the team's bucket (shared backend)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def new(cls, selector: str, revision: str, asked: str, waves: dict[int, list[str]],
            options: dict[str, Any]) -> RolloutJournal:
        clusters = {n: ClusterRun(n, w) for w, names in sorted(waves.items()) for n in names}
        wave_runs = [WaveRun(w, list(names)) for w, names in sorted(waves.items())]
        return cls(new_run_id(), selector, revision, asked, now_iso(), wave_runs, clusters, dict(options))

    @property
    def key(self) -> tuple[str, str]:
        return (self.selector, self.revision)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def wave(self, n: int) -> WaveRun:
        return next(w for w in self.waves if w.wave == n)

    def wave_of(self, cluster: str) -> WaveRun:
        n = self.clusters[cluster].wave
        return next(w for w in self.waves if w.wave == n)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "id": self.id, "selector": self.selector, "revision": self.revision, "asked": self.asked,
                "started": self.started, "ended": self.ended, "state": self.state, "resumed": self.resumed,
                "stopped_at": self.stopped_at, "options": dict(self.options), "started_by": self.started_by,
                "paused_at": self.paused_at, "stop_reason": self.stop_reason,
                "waves": [w.to_dict() for w in self.waves],
                "clusters": {n: c.to_dict() for n, c in self.clusters.items()},
            }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None) -> RolloutJournal:
        return cls(
            d["id"], d["selector"], d["revision"], d.get("asked", d["revision"]), d["started"],
            [WaveRun(**w) for w in d["waves"]],
            {n: ClusterRun.from_dict(c) for n, c in d["clusters"].items()},
            dict(d.get("options", {})), d.get("state", "running"), d.get("ended"),
            int(d.get("resumed", 0)), d.get("stopped_at"), str(d.get("started_by", "")), d.get("paused_at"),
            str(d.get("stop_reason", "")), path,
        )

    def save(self) -> None:
        """Replace the journal file atomically (no reader ever sees half a journal)."""
        assert self.path is not None
        with self._lock:
            data = self.to_dict()
            write_json_atomic(self.path, data)
            if self.remote is not None:
                self.remote.save(data)

    def archive(self) -> Path:
        """Move the journal beside its report (``rollouts/<id>/journal.json``); current.json goes away."""
        dest = rollout_dir(self.id) / "journal.json"
        with self._lock:
            data = self.to_dict()
            write_json_atomic(dest, data)
            if self.remote is not None:
                self.remote.archive(self.id, data)
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self.path = None
        return dest


def load_current() -> RolloutJournal | None:
    """The unfinished rollout's journal, if any. One that no longer parses is set aside, not trusted."""
    return read_journal(rollouts_dir() / "current.json", RolloutJournal.from_dict)


def load_rollout(rollout_id: str | None) -> RolloutJournal | None:
    """A rollout's journal by id: the unfinished one, else a finished or set-aside one
    (``rollouts/<id>/journal.json``); without an id, the unfinished one, else the newest finished one."""
    current = load_current()
    if rollout_id is None or (current is not None and current.id == rollout_id):
        if current is not None or rollout_id is not None:
            return current
        done = sorted(p for p in rollouts_dir().glob("*/journal.json")) if rollouts_dir().is_dir() else []
        return read_journal(done[-1], RolloutJournal.from_dict) if done else None
    if "/" in rollout_id or rollout_id in ("", ".", "..") or len(rollout_id) > 100:
        return None
    path = rollout_dir(rollout_id) / "journal.json"
    return read_journal(path, RolloutJournal.from_dict) if path.is_file() else None


def rollout_running() -> bool:
    """A rollout holds the lock right now (a journal that says "running" while none does was interrupted).
    Reads only: the lock file is opened for reading, never created."""
    return flock_held(rollouts_dir() / "lock")


@contextmanager
def locked_rollouts() -> Iterator[Path]:
    """Hold the rollout lock; a second rollout in the same fleet home is refused at once."""
    d = rollouts_dir()
    with exclusive_lock(
        d / "lock",
        "another rollout is running",
        "wait for it to finish; a killed rollout releases the lock and is resumed by running it again",
    ):
        yield d / "current.json"
