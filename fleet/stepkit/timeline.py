"""What the recovery report (:mod:`bootstrap.report`) and the rollout report (:mod:`rollout.report`) share:
times relative to a run's start, the steps' timings, Markdown cells, the SVG timeline (a bar per row,
placed at its start, as long as it took, over a time axis) and writing the three report files."""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from fleet.output import to_plain
from fleet.paths import write_private
from fleet.stepkit.journal import StepRecord

__all__ = ["Bar", "StepTiming", "fmt_s", "md_cell", "parse_ts", "since", "step_timings", "svg_axis", "svg_timeline",
           "write_files"]


@dataclass(frozen=True)
class StepTiming:
    name: str
    state: str
    start_s: float | None  # seconds from the run's start
    duration_s: float | None
    attempts: int
    detail: str


def parse_ts(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def since(t0: datetime, s: str | None) -> float | None:
    """Seconds from ``t0`` to the ISO time ``s`` (None when ``s`` is)."""
    t = parse_ts(s)
    return round((t - t0).total_seconds(), 3) if t else None


def step_timings(steps: Iterable[StepRecord], t0: datetime) -> tuple[StepTiming, ...]:
    """The journal's step records as timings relative to the run's start ``t0``."""
    return tuple(
        StepTiming(s.name, s.state, since(t0, s.started),
                   round(s.duration_s, 3) if s.duration_s is not None else None, s.attempts, s.detail)
        for s in steps
    )


def fmt_s(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f}s"


def md_cell(text: str | None) -> str:
    """Text made safe for one cell of a Markdown table."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class Bar:
    """One row of a timeline: its label, state (its colour), where it starts and how long it took."""

    label: str
    state: str
    start_s: float | None
    duration_s: float | None
    tip: str = ""


def svg_timeline(
    title: str, bars: Sequence[Bar], colors: Mapping[str, str], *, total: float | None, left: int, width: int,
    row_h: int, bottom: int, behind: Callable[[float, int], list[str]] | None = None,
    over: Callable[[float, int], list[str]] | None = None,
) -> str:
    """A Gantt-style timeline: one bar per row over a time axis as long as ``total`` (or the last bar's end).
    ``behind(scale, top)`` draws what goes under the bars (the rollout's wave lanes), ``over(scale, top)``
    what goes on them (a cluster's steps)."""
    ends = [(b.start_s or 0) + (b.duration_s or 0) for b in bars if b.start_s is not None]
    span = max([total or 0.0, *ends]) or 1.0
    top = 40
    height = top + row_h * max(len(bars), 1) + bottom
    scale = width / span
    base = (row_h + 6) // 2  # the text baseline within a row
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>',
    ]
    if behind is not None:
        out += behind(scale, top)
    for i, b in enumerate(bars):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + base}">{html.escape(b.label)}</text>')
        if b.start_s is None or b.duration_s is None:
            out.append(f'<text x="{left}" y="{y + base}" fill="#9e9e9e">{b.state}</text>')
            continue
        x = left + b.start_s * scale
        w = max(b.duration_s * scale, 2)
        out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="{colors.get(b.state, "#1565c0")}"><title>{html.escape(b.tip)}</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + base}">{fmt_s(b.duration_s)}</text>')
    if over is not None:
        out += over(scale, top)
    out += svg_axis(left, width, top + row_h * len(bars) + 10, span)
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
