"""``fleet rollout status [ROLLOUT]``: where a rollout stands, wave by wave, read from its journal.

Each wave's state as a person asks it: done, done with failures within the budget, running, baking until T,
waiting for approval (and the command that gives it), failed (which budget), not started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fleet.errors import NotFound
from rollout.journal import RolloutJournal, load_rollout, rollout_running

__all__ = ["RolloutStatus", "WaveStatus", "rollout_status"]


@dataclass(frozen=True)
class WaveStatus:
    wave: int
    state: str  # done | done-with-failures | running | baking | waiting-approval | failed | not-started
    summary: str  # "baking until 2026-12-07T07:10:00Z (4m10s left)", ...
    clusters: tuple[str, ...]
    passed: int
    failed: int
    allowed_failures: int
    approval: bool
    approved_by: str | None
    bake_s: int
    bake_until: str | None


@dataclass(frozen=True)
class RolloutStatus:
    id: str
    state: str  # running | interrupted | paused | succeeded | degraded | stopped
    selector: str
    revision: str
    started: str
    started_by: str
    next_step: str  # what to run next ("" when nothing)
    waves: tuple[WaveStatus, ...]


_STATES = {"passed": "done", "tolerated": "done-with-failures", "running": "running", "baking": "baking",
           "waiting-approval": "waiting-approval", "failed": "failed", "pending": "not-started"}


def _left(until: str, now: datetime) -> str:
    s = max(int((datetime.fromisoformat(until) - now).total_seconds()), 0)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def rollout_status(rollout_id: str | None = None, *, now: datetime | None = None) -> RolloutStatus:
    j = load_rollout(rollout_id)
    if j is None:
        raise NotFound(f'rollout "{rollout_id[:100]}" not found' if rollout_id else "no rollout was run here yet",
                       hint="rollouts live under $FLEET_HOME/rollouts/")
    return _status(j, now or datetime.now(UTC), live=j.state == "running" and rollout_running())


def _status(j: RolloutJournal, now: datetime, *, live: bool) -> RolloutStatus:
    """``live``: a rollout runs right now (else a journal that says running was interrupted)."""
    waves = []
    for w in j.waves:
        runs = [j.clusters[c] for c in w.clusters]
        passed = sum(1 for c in runs if c.state == "passed")
        failed = sum(1 for c in runs if c.state == "failed")
        state = _STATES.get(w.state, w.state)
        if state == "running" and not live:
            state = "interrupted"
        summary = {
            "done": f"done: {passed} passed",
            "done-with-failures": f"done: {passed} passed, {failed} failed within the budget ({w.allowed} allowed)",
            "running": f"running: {passed} of {len(runs)} passed",
            "interrupted": f"interrupted: {passed} of {len(runs)} passed; run the rollout again to continue",
            "baking": f"baking until {w.bake_until} ({_left(w.bake_until, now)} left)" if w.bake_until else "baking",
            "waiting-approval": f"waiting for approval ({w.policy}) since {w.waiting_since}",
            "failed": f"failed: {failed} of {len(runs)} failed" + (f" ({j.stop_reason})" if j.stop_reason else ""),
            "not-started": "not started",
        }.get(state, state)
        if state == "baking" and not live:
            summary += "; interrupted: run the rollout again to continue the bake"
        approved_by = (w.approved or {}).get("by")
        if approved_by and state in ("done", "done-with-failures", "running", "baking"):
            summary += f"; approved by {approved_by}"
        waves.append(WaveStatus(w.wave, state, summary, tuple(w.clusters), passed, failed, w.allowed, w.approval,
                                approved_by, w.bake_s, w.bake_until))
    nxt = ""
    if j.state == "paused" and j.paused_at is not None:
        nxt = f"fleet rollout approve {j.id} --wave {j.paused_at} --reason TEXT, then run the rollout again"
    elif j.state in ("running", "stopped", "degraded"):
        nxt = "run the same fleet rollout command again to continue"
    shown = "interrupted" if j.state == "running" and not live else j.state
    return RolloutStatus(j.id, shown, j.selector, j.revision, j.started, j.started_by, nxt, tuple(waves))
