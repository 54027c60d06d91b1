"""The recovery report: JSON, Markdown, and an SVG timeline of the steps."""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bootstrap.journal import Journal
from fleet.output import to_plain
from fleet.paths import write_private

__all__ = ["RecoveryReport", "StepTiming", "build_report", "svg_axis", "write_files", "write_report"]


@dataclass(frozen=True)
class StepTiming:
    name: str
    state: str
    start_s: float | None  # seconds from the run's start
    duration_s: float | None
    attempts: int
    detail: str


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


def _ts(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def build_report(
    j: Journal, *, outcome: str, gates: tuple[dict[str, Any], ...] = (), notes: tuple[str, ...] = (),
    failure: dict[str, str] | None = None,
) -> RecoveryReport:
    t0 = _ts(j.started)
    assert t0 is not None
    steps = []
    for s in j.steps:
        st = _ts(s.started)
        steps.append(
            StepTiming(
                s.name, s.state,
                round((st - t0).total_seconds(), 3) if st else None,
                round(s.duration_s, 3) if s.duration_s is not None else None,
                s.attempts, s.detail,
            )
        )
    end = _ts(j.ended)
    return RecoveryReport(
        cluster=j.cluster, run_id=j.run_id, outcome=outcome, revision=j.revision, sync_mode=j.sync_mode,
        started=j.started, ended=j.ended,
        recovery_time_s=round((end - t0).total_seconds(), 3) if end else None,
        work_time_s=round(sum(s.duration_s or 0.0 for s in j.steps), 3),
        resumed=j.resumed, steps=tuple(steps), gates=gates, notes=notes, failure=failure,
    )


def _fmt(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f}s"


def to_markdown(r: RecoveryReport) -> str:
    icon = {"recovered": "✔", "already-recovered": "✔", "failed": "✗", "planned": "◎"}.get(r.outcome, "•")
    lines = [
        f"# Recovery of cluster `{r.cluster}`: {icon} {r.outcome}",
        "",
        f"- revision: `{r.revision}`",
        f"- sync: {r.sync_mode}",
        f"- recovery time: **{_fmt(r.recovery_time_s)}** (steps' own time {_fmt(r.work_time_s)}"
        + (f", resumed {r.resumed}x" if r.resumed else "") + ")",
        f"- run: `{r.run_id}`, started {r.started}, ended {r.ended or '-'}",
        "",
        "| step | state | start | duration | attempts | detail |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in r.steps:
        detail = s.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {s.name} | {s.state} | {_fmt(s.start_s)} | {_fmt(s.duration_s)} | {s.attempts} | {detail} |")
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
    rows = [s for s in r.steps if s.start_s is not None and s.duration_s is not None]
    total = max([r.recovery_time_s or 0.0] + [(s.start_s or 0) + (s.duration_s or 0) for s in rows]) or 1.0
    left, width, row_h, top = 120, 640, 26, 40
    height = top + row_h * max(len(r.steps), 1) + 40
    scale = width / total
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(r.cluster)}: {r.outcome} at '
        f'{html.escape(r.revision[:12])} in {_fmt(r.recovery_time_s)}</text>',
    ]
    for i, s in enumerate(r.steps):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + 16}">{html.escape(s.name)}</text>')
        if s.start_s is None or s.duration_s is None:
            out.append(f'<text x="{left}" y="{y + 16}" fill="#9e9e9e">{s.state}</text>')
            continue
        x = left + s.start_s * scale
        w = max(s.duration_s * scale, 2)
        out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="{_COLORS.get(s.state, "#1565c0")}"><title>{html.escape(s.detail)}</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 16}">{_fmt(s.duration_s)}</text>')
    out += svg_axis(left, width, top + row_h * len(r.steps) + 10, total)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_axis(left: int, width: int, y: int, total: float) -> list[str]:
    """The time axis under a timeline: a line and six ticks labelled in seconds."""
    out = [f'<line x1="{left}" y1="{y}" x2="{left + width}" y2="{y}" stroke="#555"/>']
    for k in range(6):
        t = total * k / 5
        x = left + t * width / total
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#555"/>')
        out.append(f'<text x="{x - 10:.1f}" y="{y + 18}">{t:.0f}s</text>')
    return out


R = TypeVar("R", bound=Any)


def write_files(r: R, directory: Path, markdown: Callable[[R], str], svg: Callable[[R], str]) -> R:
    """Write report.json, report.md and timeline.svg of a report dataclass with a ``files`` field;
    return it with their paths."""
    files = {
        "json": str(directory / "report.json"),
        "markdown": str(directory / "report.md"),
        "timeline": str(directory / "timeline.svg"),
    }
    full = dataclasses.replace(r, files=files)
    write_private(Path(files["json"]), json.dumps(to_plain(full), indent=2) + "\n")  # 0600 in 0700 dirs
    write_private(Path(files["markdown"]), markdown(full))
    write_private(Path(files["timeline"]), svg(full))
    return full


def write_report(r: RecoveryReport, directory: Path) -> RecoveryReport:
    """Write report.json, report.md and timeline.svg; return the report with their paths."""
    return write_files(r, directory, to_markdown, to_svg)
