"""The recovery report: JSON, Markdown, and an SVG timeline of the steps."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.stepkit.journal import Journal
from fleet.stepkit.timeline import (
    Bar,
    StepTiming,
    fmt_s,
    md_cell,
    parse_ts,
    since,
    step_timings,
    svg_timeline,
    write_files,
)

__all__ = ["RecoveryReport", "StepTiming", "build_report", "to_markdown", "to_svg", "write_report"]


@dataclass(frozen=True)
class RecoveryReport:
    cluster: str
    run_id: str
    outcome: str  # recovered | failed | planned | already-recovered
    revision: str
    sync_mode: str
    started: str
    ended: str | None
    recovery_time_s: float | None  # wall clock from the first start to the end, resumes included
    work_time_s: float  # the sum of the steps' own durations
    resumed: int
    steps: tuple[StepTiming, ...]
    gates: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    failure: dict[str, str] | None = None
    files: dict[str, str] = field(default_factory=dict)


def build_report(
    j: Journal, *, outcome: str, gates: tuple[dict[str, Any], ...] = (), notes: tuple[str, ...] = (),
    failure: dict[str, str] | None = None,
) -> RecoveryReport:
    t0 = parse_ts(j.started)
    assert t0 is not None
    return RecoveryReport(
        cluster=j.cluster, run_id=j.run_id, outcome=outcome, revision=j.revision, sync_mode=j.sync_mode,
        started=j.started, ended=j.ended,
        recovery_time_s=since(t0, j.ended),
        work_time_s=round(sum(s.duration_s or 0.0 for s in j.steps), 3),
        resumed=j.resumed, steps=step_timings(j.steps, t0), gates=gates, notes=notes, failure=failure,
    )


def to_markdown(r: RecoveryReport) -> str:
    icon = {"recovered": "✔", "already-recovered": "✔", "failed": "✗", "planned": "◎"}.get(r.outcome, "•")
    lines = [
        f"# Recovery of cluster `{r.cluster}`: {icon} {r.outcome}",
        "",
        f"- revision: `{r.revision}`",
        f"- sync: {r.sync_mode}",
        f"- recovery time: **{fmt_s(r.recovery_time_s)}** (steps' own time {fmt_s(r.work_time_s)}"
        + (f", resumed {r.resumed}x" if r.resumed else "") + ")",
        f"- run: `{r.run_id}`, started {r.started}, ended {r.ended or '-'}",
        "",
        "| step | state | start | duration | attempts | detail |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in r.steps:
        lines.append(f"| {s.name} | {s.state} | {fmt_s(s.start_s)} | {fmt_s(s.duration_s)} | {s.attempts} | "
                     f"{md_cell(s.detail)} |")
    if r.gates:
        lines += ["", "## Gates", "", "| gate | result | detail |", "|---|---|---|"]
        for g in r.gates:
            res = str(g.get("status") or ("passed" if g.get("passed") else "failed"))
            res = "FAILED" if res in ("failed", "waiting") else res
            lines.append(f"| {g.get('name', '')} | {res} | {str(g.get('detail', '')).replace('|', '/')} |")
    if r.failure:
        lines += ["", "## Failure", "", f"- step: {r.failure.get('step')}", f"- cause: {r.failure.get('cause')}",
                  f"- next: {r.failure.get('next')}"]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


_COLORS = {"done": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e", "running": "#f9a825", "pending": "#bdbdbd"}


def to_svg(r: RecoveryReport) -> str:
    """A Gantt-style timeline: one bar per step, placed at its start, as long as it took."""
    title = f"{html.escape(r.cluster)}: {r.outcome} at {html.escape(r.revision[:12])} in {fmt_s(r.recovery_time_s)}"
    bars = [Bar(s.name, s.state, s.start_s, s.duration_s, s.detail) for s in r.steps]
    return svg_timeline(title, bars, _COLORS, total=r.recovery_time_s, left=120, width=640, row_h=26, bottom=40)


def write_report(r: RecoveryReport, directory: Path) -> RecoveryReport:
    """Write report.json, report.md and timeline.svg; return the report with their paths."""
    return write_files(r, directory, to_markdown, to_svg)
