"""``fleet rollout approve ROLLOUT --wave N``: let a paused rollout start a wave that needs an approval.

The approval is one JSON line in the audit notes (``refs/notes/fleet``) on the rollout's revision: who
(the git identity), when, why, which rollout and wave. ``fleet push`` carries it with the last-good
records, so whoever runs the rollout again (from any clone that pulled) sees it. Refused, writing nothing
(exit 2): a rollout that does not exist or is not paused, a wave it does not have or does not wait
before, an approver who started the rollout when fleet.yaml says ``rollout.approverNotStarter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleet.adapters.git import GitRepo
from fleet.errors import InputError, NotFound
from fleet.registry.load import load_registry, open_repo
from fleet.registry.model import text_problem
from rollout.journal import RolloutJournal, load_rollout, rollout_running
from rollout.policy import Approval, approvals_in

__all__ = ["Approved", "approve"]


@dataclass(frozen=True)
class Approved:
    approval: Approval
    already: int  # approvals of that wave recorded before this one


def _rollout(rollout_id: str) -> RolloutJournal:
    j = load_rollout(rollout_id)
    if j is None:
        raise NotFound(f'rollout "{rollout_id[:100]}" not found', hint="`fleet rollout status` shows the current one")
    return j


def approve(repo: GitRepo | str | Path, rollout_id: str, wave: int, reason: str = "") -> Approved:
    problem = text_problem(reason) if reason else None
    if problem:
        raise InputError(f"--reason: {problem}")
    j = _rollout(rollout_id)
    numbers = [w.wave for w in j.waves]
    if wave not in numbers:
        raise InputError(f"rollout {j.id} has no wave {wave} (its waves: {', '.join(map(str, numbers))})")
    w = j.wave(wave)
    # paused; or killed while it paused (its journal still says running, and no rollout holds the lock)
    paused = j.state == "paused" or (j.state == "running" and j.paused_at == wave and not rollout_running())
    if not paused or w.state != "waiting-approval":
        waiting = next((x.wave for x in j.waves if x.state == "waiting-approval"), None)
        raise InputError(
            f"wave {wave} of rollout {j.id} is not waiting for an approval (the wave is {w.state}, "
            f"the rollout {j.state})",
            hint=f"it waits before wave {waiting}" if waiting is not None and j.state == "paused" else None,
        )
    g = open_repo(repo)
    name, email = g.identity()
    who = f"{name} <{email}>"
    if load_registry(g).settings.rollout.approverNotStarter and who == j.started_by:
        raise InputError(f"{who} started rollout {j.id}: fleet.yaml's rollout.approverNotStarter asks for "
                         "another approver")
    sha = g.resolve(j.revision)
    record = Approval(j.id, wave, sha, who, datetime.now(UTC), reason)
    with g.lock():
        before = g.note_show(sha)
        already = sum(1 for a in approvals_in(before, j.id, sha) if a.wave == wave)
        g.note_write(sha, (before or "").rstrip("\n") + ("\n" if before else "") + record.to_json() + "\n")
    return Approved(record, already)
