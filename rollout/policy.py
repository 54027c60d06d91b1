"""A rollout's policy: failure budgets, bake time and approvals, parsed once at the edge into typed values.

- :class:`FailureBudget`: ``--max-failures 1`` or ``10%`` (of the wave's clusters), ``--max-failures-total``
  (of every selected cluster); a percent is rounded down, so ``10%`` of 4 clusters allows none.
- :class:`WavePolicy`: per wave, its bake time and whether it needs an approval, from fleet.yaml's
  ``rollout:`` (per wave number, per environment of its clusters, the default bake), ``--bake`` overriding
  the bake of every wave.
- :class:`Approval`: ``fleet rollout approve ID --wave N`` writes one JSON line in the audit notes
  (``refs/notes/fleet``) on the rollout's revision, so ``fleet push`` carries it; a line counts only for
  that rollout, that wave and that revision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleet.errors import InputError
from fleet.registry.model import RolloutSettings, duration_seconds, text_problem

__all__ = [
    "APPROVAL_KIND",
    "Approval",
    "FailureBudget",
    "WavePolicy",
    "approvals_in",
    "parse_bake",
    "parse_budget",
    "wave_policies",
]

APPROVAL_KIND = "rollout-approval"
_BUDGET = re.compile(r"^(\d{1,6})(%?)\Z")


@dataclass(frozen=True)
class FailureBudget:
    """How many clusters may fail: ``count`` of them, or ``percent`` of a number of clusters."""

    count: int | None = 0
    percent: int | None = None

    def allowed(self, clusters: int) -> int:
        if self.percent is not None:
            return clusters * self.percent // 100
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)

    @property
    def unlimited(self) -> bool:
        return self.percent == 100


def parse_budget(value: str | int | FailureBudget | None, flag: str) -> FailureBudget | None:
    """``1``, ``"1"``, ``"10%"`` -> a budget; None stays None (no such budget). Anything else (``150%``,
    ``-1``, ``ten``) is an :class:`InputError` naming the flag."""
    if value is None or isinstance(value, FailureBudget):
        return value
    text = str(value).strip()
    m = _BUDGET.match(text)
    if m is None:
        raise InputError(f'{flag}: "{text[:40]}" is not a number of clusters or a percent of them '
                         "(examples: 0, 2, 10%)")
    n, pct = int(m.group(1)), bool(m.group(2))
    if pct and n > 100:
        raise InputError(f"{flag}: {n}% is more than 100% of the clusters")
    return FailureBudget(None, n) if pct else FailureBudget(n, None)


def parse_bake(value: str | int | float | None, flag: str = "--bake") -> int | None:
    """``--bake 10m`` -> 600 seconds (0 to 7 days); None stays None (fleet.yaml decides)."""
    if value is None:
        return None
    try:
        return duration_seconds(int(value) if isinstance(value, float) else value)
    except ValueError as e:
        raise InputError(f"{flag}: {e}") from e


@dataclass(frozen=True)
class WavePolicy:
    wave: int
    bake_s: int = 0
    approval: bool = False
    why: str = ""  # what asks for the approval or the bake ("rollout.waves.2", "environment prod", "--bake")


def wave_policies(settings: RolloutSettings, waves: Mapping[int, Iterable[str]], environments: Mapping[str, str],
                  bake: int | None = None) -> dict[int, WavePolicy]:
    """Each wave's policy: an approval when its wave number or the environment of one of its clusters asks
    for one; its bake: ``bake`` (``--bake``) when given, else the longest its wave number and environments
    say, else fleet.yaml's default ``rollout.bake``."""
    out: dict[int, WavePolicy] = {}
    for n, names in waves.items():
        sources: list[tuple[str, Any]] = []
        if n in settings.waves:
            sources.append((f"rollout.waves.{n}", settings.waves[n]))
        for env in sorted({environments.get(c, "") for c in names}):
            if env in settings.environments:
                sources.append((f"rollout.environments.{env}", settings.environments[env]))
        approval = [w for w, p in sources if p.approval]
        bakes = [(p.bake, w) for w, p in sources if p.bake is not None]
        if bake is not None:
            bake_s, bake_why = bake, "--bake"
        elif bakes:
            bake_s, bake_why = max(bakes)
        else:
            bake_s, bake_why = settings.bake, "rollout.bake" if settings.bake else ""
        why = "; ".join(x for x in (f"approval: {', '.join(approval)}" if approval else "",
                                     f"bake: {bake_why}" if bake_s else "") if x)
        out[n] = WavePolicy(n, bake_s, bool(approval), why)
    return out


@dataclass(frozen=True)
class Approval:
    rollout: str
    wave: int
    revision: str
    approved_by: str  # "Name <email>"
    approved_at: datetime
    reason: str

    def to_json(self) -> str:
        return json.dumps({
            "kind": APPROVAL_KIND, "rollout": self.rollout, "wave": self.wave, "revision": self.revision,
            "approved_by": self.approved_by, "approved_at": self.approved_at.isoformat(timespec="microseconds"),
            "reason": self.reason,
        }, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Approval | None:
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or d.get("kind") != APPROVAL_KIND:
                return None
            a = cls(str(d["rollout"]), int(d["wave"]), str(d["revision"]), str(d.get("approved_by", "")),
                    datetime.fromisoformat(d["approved_at"]), str(d.get("reason", "")))
            if any(text_problem(x) for x in (a.rollout, a.approved_by, a.reason)):
                return None  # not written by fleet (control characters would reach a terminal): ignored
            return a
        except (ValueError, KeyError, TypeError):
            return None  # another record (a last-good one) or a line fleet did not write


def approvals_in(note: str | None, rollout: str, revision: str) -> list[Approval]:
    """The approvals of ``rollout`` at ``revision`` in a note's text, oldest first. A line of another
    rollout, or of this rollout's id under another revision, does not count."""
    out = [a for a in (Approval.from_json(ln) for ln in (note or "").splitlines() if ln.strip()) if a]
    return sorted((a for a in out if a.rollout == rollout and a.revision == revision), key=lambda a: a.approved_at)
