"""The live progress of ``fleet rollout`` on a terminal: a table with a line per cluster (wave, action,
step, state, elapsed time, last message), redrawn four times a second on stderr; the rollout's own
lines and every warning or failure are printed above it, so the scrollback keeps them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType

from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleet.output import Reporter, visible, visible_text
from rollout.journal import ClusterRun, RolloutJournal

__all__ = ["LiveView"]

_STATE = {
    "pending": ("·", "dim"),
    "running": ("◎", "yellow"),
    "passed": ("✔", "green"),
    "failed": ("✗", "red"),
    "not-started": ("-", "dim"),
    "rolled-back": ("↩", "magenta"),
}


class _Lines:
    """Progress lines printed above the live table (``only`` limits which kinds)."""

    def __init__(self, console: Console, prefix: str = "", only: str = "►✔◎⚠✗") -> None:
        self.console, self.prefix, self.only = console, prefix, only

    def _say(self, sym: str, style: str, msg: str) -> None:
        if sym in self.only:
            self.console.print(Text(f"{sym} {visible_text(self.prefix + msg)}", style=style), highlight=False)

    def step(self, msg: str) -> None:
        self._say("►", "", msg)

    def ok(self, msg: str) -> None:
        self._say("✔", "green", msg)

    def wait(self, msg: str) -> None:
        self._say("◎", "", msg)

    def warn(self, msg: str) -> None:
        self._say("⚠", "yellow", msg)

    def fail(self, msg: str) -> None:
        self._say("✗", "red", msg)


def _elapsed(run: ClusterRun) -> str:
    if not run.started:
        return ""
    start = datetime.fromisoformat(run.started)
    end = datetime.fromisoformat(run.ended) if run.ended else datetime.now(UTC)
    s = max((end - start).total_seconds(), 0.0)
    return f"{int(s // 60)}m{s % 60:04.1f}s" if s >= 60 else f"{s:.1f}s"


class LiveView:
    """A :class:`rollout.engine.RolloutView` drawing a rich Live table; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.journal: RolloutJournal | None = None
        self._reporter = _Lines(self.console)
        self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=4,
                          transient=False, redirect_stdout=False, redirect_stderr=False)

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    def cluster(self, name: str) -> Reporter:
        # the table shows a cluster's steps; its warnings and failures also go above, to stay on screen
        return _Lines(self.console, f"{name}: ", only="⚠✗")

    def attach(self, journal: RolloutJournal) -> None:
        self.journal = journal

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._live.stop()

    def _render(self) -> RenderableType:
        j = self.journal
        if j is None:
            return Text("◎ preparing the rollout ...", style="dim")
        current = next((w for w in j.waves if w.state in ("running", "baking")), None)
        title = f"rollout {j.id} → {j.revision[:12]}" + (f"   wave {current.wave}" if current is not None else "")
        if current is not None and current.state == "baking":
            title += f" baking until {current.bake_until}"
        table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD, pad_edge=False,
                      show_edge=False)
        for col, kw in (("wave", {"justify": "right"}), ("cluster", {}), ("action", {}), ("step", {}),
                        ("state", {}), ("elapsed", {"justify": "right"}), ("last", {"overflow": "ellipsis"})):
            table.add_column(col.upper(), no_wrap=True, **kw)  # type: ignore[arg-type]
        width = max(self.console.width - 70, 20)
        for run in sorted(j.clusters.values(), key=lambda c: (c.wave, c.name)):
            sym, style = _STATE.get(run.state, ("?", ""))
            if run.rollback:
                sym, style = sym + "↩", "magenta"
            last = run.error if run.state == "failed" and run.error else run.message
            step = run.step if run.state == "running" else (run.failed_step or "" if run.state == "failed" else "")
            table.add_row(str(run.wave), run.name, run.action or "", step,
                          Text(f"{sym} {run.state}", style=style), _elapsed(run),
                          Text(visible(last)[:width], style="dim" if run.state != "failed" else "red"))
        return table
