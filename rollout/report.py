"""The rollout report: per wave and per cluster timings, as JSON, Markdown and an SVG timeline."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    allowed: int = 0  # the failures its budget allowed
    approval: bool = False  # it needed one
    approved_by: str | None = None
    waiting_start_s: float | None = None  # paused for its approval: from
    waiting_s: float | None = None  # ... this long (until the rerun started it, or until now)
    bake_s: int = 0
    bake_start_s: float | None = None
    bake_until: str | None = None
    baked_s: float | None = None  # how long it was watched (a failing gate ends a bake early)
    policy: str = ""


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


def build_report(j: RolloutJournal) -> RolloutReport:
    t0 = parse_ts(j.started)
    assert t0 is not None
    clusters: list[ClusterTiming] = []
    for c in sorted(j.clusters.values(), key=lambda c: (c.wave, c.name)):
        steps = step_timings(c.steps, t0)
        clusters.append(ClusterTiming(
            c.name, c.wave, c.state, c.action, c.why, c.sync_mode, since(t0, c.started), c.duration_s, c.attempts,
            c.previous_good, c.failed_step, c.error, steps, c.report, c.rollback,
        ))
    waves: list[WaveTiming] = []
    for w in j.waves:
        members = [c for c in clusters if c.wave == w.wave and c.duration_s is not None]
        slowest = max(members, key=lambda c: c.duration_s or 0.0, default=None)
        start, end = parse_ts(w.started), parse_ts(w.ended)
        waiting_start = since(t0, w.waiting_since)
        waiting_end = since(t0, w.started) if w.started and w.waiting_since else since(t0, j.ended)
        bake_start = since(t0, w.bake_started)
        bake_end = since(t0, w.baked) if w.baked else None
        waves.append(WaveTiming(
            w.wave, w.state, tuple(w.clusters), since(t0, w.started),
            round((end - start).total_seconds(), 3) if start and end else None,
            slowest.name if slowest else None, slowest.duration_s if slowest else None,
            sum(1 for c in clusters if c.wave == w.wave and c.state == "passed"),
            sum(1 for c in clusters if c.wave == w.wave and c.state == "failed"),
            sum(1 for c in clusters if c.wave == w.wave and c.state in ("not-started", "pending")),
            w.allowed, w.approval, (w.approved or {}).get("by"), waiting_start,
            round(waiting_end - waiting_start, 3) if waiting_start is not None and waiting_end is not None else None,
            w.bake_s, bake_start, w.bake_until,
            round(bake_end - bake_start, 3) if bake_start is not None and bake_end is not None else None,
            w.policy,
        ))
    return RolloutReport(
        id=j.id, outcome=j.state, selector=j.selector, revision=j.revision, asked=j.asked, started=j.started,
        ended=j.ended, wall_s=since(t0, j.ended), resumed=j.resumed, stopped_at=j.stopped_at,
        options=dict(j.options), waves=tuple(waves), clusters=tuple(clusters),
    )


_ICON = {"succeeded": "✔", "degraded": "⚠", "stopped": "✗", "running": "◎", "paused": "⏸"}


def to_markdown(r: RolloutReport) -> str:
    lines = [
        f"# Rollout `{r.id}`: {_ICON.get(r.outcome, '•')} {r.outcome}",
        "",
        f"- selector: `{r.selector or '(every cluster)'}`",
        f"- revision: `{r.revision}`" + (f" (asked: `{r.asked}`)" if r.asked != r.revision else ""),
        f"- wall time: **{fmt_s(r.wall_s)}**" + (f", resumed {r.resumed}x" if r.resumed else ""),
        f"- options: max-parallel {r.options.get('max_parallel')}, max-failures {r.options.get('max_failures')}"
        + (f", max-failures-total {r.options['max_failures_total']}" if r.options.get("max_failures_total") else "")
        + (f", on failure {r.options['on_failure']}" if r.options.get("on_failure") not in (None, "hold") else "")
        + (f", bake {r.options['bake']}s" if r.options.get("bake") is not None else "")
        + (", rollback" if r.options.get("rollback") else ""),
        f"- started {r.started}, ended {r.ended or '-'}",
    ]
    if r.stopped_at is not None:
        lines.append(f"- **stopped at wave {r.stopped_at}**: later waves were not started")
    lines += ["", "## Waves", "",
              "| wave | state | clusters | start | duration | slowest member | failed | budget | bake | approval |",
              "|---:|---|---|---:|---:|---|---:|---|---|---|"]
    for w in r.waves:
        slow = f"{w.slowest} ({fmt_s(w.slowest_s)})" if w.slowest else "-"
        budget = f"{w.failed} of {w.allowed} allowed"
        bake = "-" if not w.bake_s else (f"{w.bake_s}s until {w.bake_until}" if w.baked_s is None
                                         else f"{w.bake_s}s, watched {fmt_s(w.baked_s)}")
        approval = "-" if not w.approval else (
            f"by {w.approved_by} after {fmt_s(w.waiting_s)}" if w.approved_by
            else f"waiting ({fmt_s(w.waiting_s)} so far)")
        lines.append(f"| {w.wave} | {w.state} | {', '.join(w.clusters)} | {fmt_s(w.start_s)} | "
                     f"{fmt_s(w.duration_s)} | {slow} | {w.failed} | {budget} | {md_cell(bake)} | "
                     f"{md_cell(approval)} |")
    lines += ["", "## Clusters", "", "| cluster | wave | action | state | start | duration | steps | detail |",
              "|---|---:|---|---|---:|---:|---|---|"]
    for c in r.clusters:
        steps = ", ".join(f"{s.name} {fmt_s(s.duration_s)}" for s in c.steps if s.duration_s is not None)
        detail = c.error or c.why
        if c.failed_step:
            detail = f"{c.failed_step}: {detail}"
        lines.append(f"| {c.name} | {c.wave} | {c.action or '-'} | {c.state} | {fmt_s(c.start_s)} | "
                     f"{fmt_s(c.duration_s)} | {steps} | {md_cell(detail)} |")
    rolled = [c for c in r.clusters if c.rollback]
    if rolled:
        lines += ["", "## Rollback", "", "| cluster | to | result | duration | detail |", "|---|---|---|---:|---|"]
        for c in rolled:
            rb = c.rollback or {}
            target = str(rb.get("target") or "-")[:12]
            lines.append(f"| {c.name} | {target} | {rb.get('state')} | {fmt_s(rb.get('duration_s'))} | "
                         f"{md_cell(str(rb.get('detail', '')))} |")
    reports = [c for c in r.clusters if c.report]
    if reports:
        lines += ["", "## Clusters brought up by the DR pipeline", ""]
        lines += [f"- {c.name}: {c.report}" for c in reports]
    return "\n".join(lines) + "\n"


_COLORS = {"passed": "#2e7d32", "failed": "#c62828", "rolled-back": "#6a1b9a", "running": "#f9a825"}
_STEP_COLORS = {"done": "#81c784", "failed": "#ef9a9a"}


def to_svg(r: RolloutReport) -> str:
    """A Gantt-style timeline with the waves as lanes: in each lane, a bar per cluster at its start with its
    steps marked on it, the approval wait before the wave (orange) and its bake (blue), on one time axis."""
    left, width, row_h = 150, 620, 24
    rows = {c.name: i for i, c in enumerate(r.clusters)}

    def lanes(scale: float, top: int) -> list[str]:
        out = []
        for k, w in enumerate(r.waves):
            idx = [rows[n] for n in w.clusters if n in rows]
            if not idx:
                continue
            y, h = top + min(idx) * row_h, row_h * len(idx)
            out.append(f'<rect class="lane" x="2" y="{y}" width="{left + width - 2}" height="{h}" '
                       f'fill="{"#f5f5f5" if k % 2 else "#e3f2fd"}"><title>wave {w.wave}: {w.state}, '
                       f"{w.failed} failed of {w.allowed} allowed</title></rect>")
            if w.waiting_start_s is not None and w.waiting_s is not None:
                out.append(f'<rect class="approval" x="{left + w.waiting_start_s * scale:.1f}" y="{y}" '
                           f'width="{max(w.waiting_s * scale, 2):.1f}" height="{h}" fill="#ffb74d" opacity="0.5">'
                           f"<title>wave {w.wave}: waiting for approval {fmt_s(w.waiting_s)}"
                           f"{' (approved by ' + html.escape(w.approved_by) + ')' if w.approved_by else ''}"
                           "</title></rect>")
            if w.bake_start_s is not None:
                baked = w.baked_s if w.baked_s is not None else float(w.bake_s)
                out.append(f'<rect class="bake" x="{left + w.bake_start_s * scale:.1f}" y="{y}" '
                           f'width="{max(baked * scale, 2):.1f}" height="{h}" fill="#64b5f6" opacity="0.4">'
                           f"<title>wave {w.wave}: bake {w.bake_s}s until {w.bake_until}</title></rect>")
        return out

    def steps(scale: float, top: int) -> list[str]:
        out = []
        for c in r.clusters:
            y = top + rows[c.name] * row_h
            for s in c.steps:
                if s.start_s is None or s.duration_s is None:
                    continue
                out.append(f'<rect class="step" x="{left + s.start_s * scale:.1f}" y="{y + 8}" '
                           f'width="{max(s.duration_s * scale, 1):.1f}" height="{row_h - 16}" '
                           f'fill="{_STEP_COLORS.get(s.state, "#90caf9")}"><title>{html.escape(s.name)}: '
                           f"{fmt_s(s.duration_s)}</title></rect>")
        return out

    title = f"rollout {html.escape(r.id)}: {r.outcome} at {html.escape(r.revision[:12])} in {fmt_s(r.wall_s)}"
    bars = [Bar(f"{c.name} (w{c.wave})", c.state, c.start_s, c.duration_s, f"{c.action}: {c.error or c.why}")
            for c in r.clusters]
    return svg_timeline(title, bars, _COLORS, total=r.wall_s, left=left, width=width, row_h=row_h, bottom=50,
                        behind=lanes, over=steps)


def write_report(r: RolloutReport, directory: Path) -> RolloutReport:
    """Write report.json, report.md and timeline.svg; return the report with their paths."""
    return write_files(r, directory, to_markdown, to_svg)
