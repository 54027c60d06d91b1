"""Evidence of DR rehearsals (``fleet drill``), kept in Git off every cluster, and what it says now.

Each drill appends one JSON line to a git note on the revision it rebuilt, under its own notes ref
:data:`DRILLS_REF` (``refs/notes/fleet-drills``: not under ``refs/notes/fleet/``, which is a ref itself, the
last-good audit notes). A record says who ran it, when, which revision, the cluster's last good at the
time, each phase's duration, the objective, the result and the SHA-256 of the report. ``fleet push`` /
``fleet pull`` carry the ref like the audit notes (:mod:`fleet.sync`).

:func:`drill_state` turns a cluster's records and its objective into what ``fleet status`` shows
(``3h ago``, ``never``, ``failed``, ``stale``, ``over-rto``) and ``fleet status --check`` fails on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fleet.adapters.git import GitRepo
from fleet.registry.load import cluster_file, open_repo
from fleet.registry.model import ClusterSpec, FleetSettings, RecoveryObjective

__all__ = [
    "DRILLS_REF",
    "PHASES",
    "DrillRecord",
    "DrillState",
    "age_text",
    "drill_records",
    "drill_state",
    "latest_records",
    "objective_for",
    "summary",
    "write_drill_record",
]

DRILLS_REF = "refs/notes/fleet-drills"
PHASES = ("provision", "operator", "sync", "gates")
Result = Literal["passed", "failed", "over-rto"]


@dataclass(frozen=True)
class DrillRecord:
    """One drill of one cluster, as kept in its note."""

    cluster: str
    scratch: str  # the scratch cluster it was rebuilt into
    run_id: str
    revision: str  # what was rebuilt (the last good at the time)
    last_good: str | None  # the cluster's last-good commit when the drill started
    started_at: datetime
    by: str  # "Name <email>"
    result: Result
    recovery_s: float | None  # the whole rebuild, wall clock
    rto_s: int | None  # the objective at the time, None when none is declared
    phases: dict[str, float] = field(default_factory=dict)  # provision, operator, sync, gates: seconds
    failed_step: str | None = None
    cause: str | None = None
    report_sha256: str | None = None

    @property
    def margin_s(self) -> float | None:
        """Seconds under (positive) or over (negative) the objective."""
        if self.rto_s is None or self.recovery_s is None:
            return None
        return round(self.rto_s - self.recovery_s, 3)

    def to_json(self) -> str:
        return json.dumps(
            {
                "cluster": self.cluster, "scratch": self.scratch, "run_id": self.run_id,
                "revision": self.revision, "last_good": self.last_good,
                "started_at": self.started_at.isoformat(timespec="microseconds"), "by": self.by,
                "result": self.result, "recovery_s": self.recovery_s, "rto_s": self.rto_s,
                "phases": self.phases, "failed_step": self.failed_step, "cause": self.cause,
                "report_sha256": self.report_sha256,
            },
            sort_keys=True, separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> DrillRecord | None:
        try:
            d = json.loads(line)
            result = str(d["result"])
            if result not in ("passed", "failed", "over-rto"):
                return None
            phases = d.get("phases") or {}
            return cls(
                cluster=str(d["cluster"]), scratch=str(d.get("scratch", "")), run_id=str(d.get("run_id", "")),
                revision=str(d["revision"]), last_good=d.get("last_good"),
                started_at=datetime.fromisoformat(d["started_at"]), by=str(d.get("by", "")),
                result=result,  # type: ignore[arg-type]
                recovery_s=_num(d.get("recovery_s")), rto_s=_int(d.get("rto_s")),
                phases={str(k): float(v) for k, v in phases.items()},
                failed_step=d.get("failed_step"), cause=d.get("cause"), report_sha256=d.get("report_sha256"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # a line fleet did not write


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def objective_for(settings: FleetSettings, spec: ClusterSpec) -> RecoveryObjective | None:
    """The cluster's recovery objective: its own ``recovery:``, over its environment's in fleet.yaml, over
    fleet.yaml's; None when none declares one."""
    return settings.recovery.for_cluster(spec.environment, spec.recovery)


def write_drill_record(repo: GitRepo | str | Path, record: DrillRecord) -> None:
    """Append ``record`` to the note on its revision (under the repo lock: concurrent drills keep both)."""
    cluster_file(record.cluster)  # a name that is no DNS label is refused before anything is written
    g = open_repo(repo)
    sha = g.resolve(record.revision)
    with g.lock():
        before = g.note_show(sha, ref=DRILLS_REF)
        text = (before or "").rstrip("\n") + ("\n" if before else "") + record.to_json() + "\n"
        g.note_write(sha, text, ref=DRILLS_REF)


def drill_records(repo: GitRepo | str | Path, cluster: str | None = None) -> list[DrillRecord]:
    """Every drill record (of ``cluster``, or all), oldest first."""
    g = open_repo(repo)
    out: list[DrillRecord] = []
    for text in g.notes(ref=DRILLS_REF).values():
        for line in text.splitlines():
            rec = DrillRecord.from_json(line) if line.strip() else None
            if rec is not None and (cluster is None or rec.cluster == cluster):
                out.append(rec)
    return sorted(out, key=lambda r: r.started_at)


def latest_records(records: Sequence[DrillRecord]) -> dict[str, list[DrillRecord]]:
    """Records by cluster, oldest first."""
    out: dict[str, list[DrillRecord]] = {}
    for r in sorted(records, key=lambda r: r.started_at):
        out.setdefault(r.cluster, []).append(r)
    return out


@dataclass(frozen=True)
class DrillState:
    """What a cluster's drills say now: ``shown`` is the status column, ``bad`` fails ``status --check``."""

    shown: str  # "2h ago" | "never" | "failed" | "stale" | "over-rto"
    bad: bool
    last: DrillRecord | None  # the newest drill, whatever its result
    last_pass: DrillRecord | None  # the newest passing drill


def age_text(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def drill_state(records: Sequence[DrillRecord], objective: RecoveryObjective | None, now: datetime | None = None,
                ) -> DrillState:
    """The drill column of one cluster from its records (oldest first) and its objective.

    ``failed`` / ``over-rto``: the newest drill did not pass (a later pass clears it). ``stale``: the
    newest pass is older than ``drill_every``. ``never``: no drill passed; bad only when the cluster
    declares an objective (a cluster without one is not held to drills)."""
    now = now or datetime.now(UTC)
    last = records[-1] if records else None
    passes = [r for r in records if r.result == "passed"]
    last_pass = passes[-1] if passes else None
    if last is not None and last.result != "passed":
        return DrillState(last.result, True, last, last_pass)
    if last_pass is None:
        return DrillState("never", objective is not None, last, None)
    age = (now - last_pass.started_at).total_seconds()
    every = objective.drill_every_s if objective is not None else None
    if every is not None and age > every:
        return DrillState("stale", True, last, last_pass)
    return DrillState(f"{age_text(age)} ago", False, last, last_pass)


def summary(record: DrillRecord) -> Mapping[str, Any]:
    """A record as one row of ``fleet drill history``."""
    return {
        "started_at": record.started_at.isoformat(timespec="seconds"), "result": record.result,
        "revision": record.revision[:12], "recovery_s": record.recovery_s, "rto_s": record.rto_s,
        "margin_s": record.margin_s, "by": record.by, "run_id": record.run_id,
    }
