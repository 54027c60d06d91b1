"""The rollout report: per wave and per cluster timings, as JSON, Markdown and an SVG timeline."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bootstrap.report import StepTiming, svg_axis, write_files
from rollout.journal import RolloutJournal

__all__ = ["ClusterTiming", "RolloutReport", "WaveTiming", "build_report", "to_markdown", "to_svg",
           "write_report"]


@dataclass(frozen=True)
class ClusterTiming:
    name: str
    wave: int
    state: str  # passed | failed | not-started | pending | rolled-back
    action: str  # bootstrap | update | "" (never started)
    why: str
    sync_mode: str
    start_s: float | None  # seconds from the rollout's start
    duration_s: float | None
    attempts: int
    previous_good: str | None
    failed_step: str | None
    error: str | None
    steps: tuple[StepTiming, ...]
    report: str | None  # the recovery report of a cluster brought up from nothing
    rollback: dict[str, Any] | None


@dataclass(frozen=True)
class WaveTiming:
    wave: int
    state: str  # passed | tolerated | failed | pending (never started)
    clusters: tuple[str, ...]
    start_s: float | None
    duration_s: float | None  # wall clock of the wave
    slowest: str | None  # its slowest member
    slowest_s: float | None
    passed: int
    failed: int
    not_started: int


@dataclass(frozen=True)
class RolloutReport:
    id: str
    outcome: str  # succeeded | degraded | stopped | running (interrupted)
    selector: str
    revision: str
    asked: str
    started: str
    ended: str | None
    wall_s: float | None  # first start to end, resumes included
    resumed: int
    stopped_at: int | None
    options: dict[str, Any]
    waves: tuple[WaveTiming, ...]
    clusters: tuple[ClusterTiming, ...]
    files: dict[str, str] = field(default_factory=dict)


def _ts(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _since(t0: datetime, s: str | None) -> float | None:
    t = _ts(s)
    return round((t - t0).total_seconds(), 3) if t else None


def build_report(j: RolloutJournal) -> RolloutReport:
    t0 = _ts(j.started)
    assert t0 is not None
    clusters: list[ClusterTiming] = []
    for c in sorted(j.clusters.values(), key=lambda c: (c.wave, c.name)):
        steps = tuple(
            StepTiming(s.name, s.state, _since(t0, s.started), round(s.duration_s, 3) if s.duration_s is not None
                       else None, s.attempts, s.detail)
            for s in c.steps
        )
        clusters.append(ClusterTiming(
            c.name, c.wave, c.state, c.action, c.why, c.sync_mode, _since(t0, c.started), c.duration_s, c.attempts,
            c.previous_good, c.failed_step, c.error, steps, c.report, c.rollback,
        ))
    waves: list[WaveTiming] = []
    for w in j.waves:
        members = [c for c in clusters if c.wave == w.wave and c.duration_s is not None]
        slowest = max(members, key=lambda c: c.duration_s or 0.0, default=None)
        start, end = _ts(w.started), _ts(w.ended)
        waves.append(WaveTiming(
            w.wave, w.state, tuple(w.clusters), _since(t0, w.started),
            round((end - start).total_seconds(), 3) if start and end else None,
            slowest.name if slowest else None, slowest.duration_s if slowest else None,
            sum(1 for c in clusters if c.wave == w.wave and c.state == "passed"),
            sum(1 for c in clusters if c.wave == w.wave and c.state == "failed"),
            sum(1 for c in clusters if c.wave == w.wave and c.state in ("not-started", "pending")),
        ))
    return RolloutReport(
        id=j.id, outcome=j.state, selector=j.selector, revision=j.revision, asked=j.asked, started=j.started,
        ended=j.ended, wall_s=_since(t0, j.ended), resumed=j.resumed, stopped_at=j.stopped_at,
        options=dict(j.options), waves=tuple(waves), clusters=tuple(clusters),
    )


def _fmt(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f}s"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


_ICON = {"succeeded": "✔", "degraded": "⚠", "stopped": "✗", "running": "◎"}


def to_markdown(r: RolloutReport) -> str:
    lines = [
        f"# Rollout `{r.id}`: {_ICON.get(r.outcome, '•')} {r.outcome}",
        "",
        f"- selector: `{r.selector or '(every cluster)'}`",
        f"- revision: `{r.revision}`" + (f" (asked: `{r.asked}`)" if r.asked != r.revision else ""),
        f"- wall time: **{_fmt(r.wall_s)}**" + (f", resumed {r.resumed}x" if r.resumed else ""),
        f"- options: max-parallel {r.options.get('max_parallel')}, max-failures {r.options.get('max_failures')}"
        + (", rollback" if r.options.get("rollback") else ""),
        f"- started {r.started}, ended {r.ended or '-'}",
    ]
    if r.stopped_at is not None:
        lines.append(f"- **stopped at wave {r.stopped_at}**: later waves were not started")
    lines += ["", "## Waves", "", "| wave | state | clusters | start | duration | slowest member | failed |",
              "|---:|---|---|---:|---:|---|---:|"]
    for w in r.waves:
        slow = f"{w.slowest} ({_fmt(w.slowest_s)})" if w.slowest else "-"
        lines.append(f"| {w.wave} | {w.state} | {', '.join(w.clusters)} | {_fmt(w.start_s)} | "
                     f"{_fmt(w.duration_s)} | {slow} | {w.failed} |")
    lines += ["", "## Clusters", "", "| cluster | wave | action | state | start | duration | steps | detail |",
              "|---|---:|---|---|---:|---:|---|---|"]
    for c in r.clusters:
        steps = ", ".join(f"{s.name} {_fmt(s.duration_s)}" for s in c.steps if s.duration_s is not None)
        detail = c.error or c.why
        if c.failed_step:
            detail = f"{c.failed_step}: {detail}"
        lines.append(f"| {c.name} | {c.wave} | {c.action or '-'} | {c.state} | {_fmt(c.start_s)} | "
                     f"{_fmt(c.duration_s)} | {steps} | {_cell(detail)} |")
    rolled = [c for c in r.clusters if c.rollback]
    if rolled:
        lines += ["", "## Rollback", "", "| cluster | to | result | duration | detail |", "|---|---|---|---:|---|"]
        for c in rolled:
            rb = c.rollback or {}
            target = str(rb.get("target") or "-")[:12]
            lines.append(f"| {c.name} | {target} | {rb.get('state')} | {_fmt(rb.get('duration_s'))} | "
                         f"{_cell(str(rb.get('detail', '')))} |")
    reports = [c for c in r.clusters if c.report]
    if reports:
        lines += ["", "## Clusters brought up by the DR pipeline", ""]
        lines += [f"- {c.name}: {c.report}" for c in reports]
    return "\n".join(lines) + "\n"


_COLORS = {"passed": "#2e7d32", "failed": "#c62828", "rolled-back": "#6a1b9a", "running": "#f9a825"}


def to_svg(r: RolloutReport) -> str:
    """A Gantt-style timeline: one bar per cluster, grouped by wave, placed at its start."""
    rows = list(r.clusters)
    ends = [(c.start_s or 0) + (c.duration_s or 0) for c in rows if c.start_s is not None]
    total = max([r.wall_s or 0.0, *ends]) or 1.0
    left, width, row_h, top = 150, 620, 24, 40
    height = top + row_h * max(len(rows), 1) + 50
    scale = width / total
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">rollout {html.escape(r.id)}: {r.outcome} at '
        f'{html.escape(r.revision[:12])} in {_fmt(r.wall_s)}</text>',
    ]
    for w in r.waves:
        if w.start_s is None or w.duration_s is None:
            continue
        x = left + w.start_s * scale
        out.append(f'<rect x="{x:.1f}" y="{top - 4}" width="{max(w.duration_s * scale, 1):.1f}" '
                   f'height="{row_h * len(rows) + 4}" fill="#e3f2fd" opacity="{0.6 if w.wave % 2 else 0.3}">'
                   f"<title>wave {w.wave}: {w.state} in {_fmt(w.duration_s)}</title></rect>")
    for i, c in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + 15}">{html.escape(c.name)} (w{c.wave})</text>')
        if c.start_s is None or c.duration_s is None:
            out.append(f'<text x="{left}" y="{y + 15}" fill="#9e9e9e">{c.state}</text>')
            continue
        x = left + c.start_s * scale
        bar = max(c.duration_s * scale, 2)
        tip = html.escape(f"{c.action}: {c.error or c.why}")
        out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{bar:.1f}" height="{row_h - 8}" '
                   f'fill="{_COLORS.get(c.state, "#1565c0")}"><title>{tip}</title></rect>')
        out.append(f'<text x="{x + bar + 4:.1f}" y="{y + 15}">{_fmt(c.duration_s)}</text>')
    out += svg_axis(left, width, top + row_h * len(rows) + 10, total)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_report(r: RolloutReport, directory: Path) -> RolloutReport:
    """Write report.json, report.md and timeline.svg; return the report with their paths."""
    return write_files(r, directory, to_markdown, to_svg)
