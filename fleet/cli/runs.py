"""``fleet runs``: the DR runs in progress and the last ones that ended (fleet.runs)."""

from __future__ import annotations

import sys

import typer

from fleet.cli.common import OutputOpt, engine_settings
from fleet.output import OutputFormat, emit


def _age(s: float | None) -> str:
    return "" if s is None else f"{s:.0f}s ago"


def register(app: typer.Typer) -> None:
    @app.command("runs")
    def runs_cmd(
        limit: int = typer.Option(10, "--limit", "-n", min=0, help="At most this many runs that ended."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.runs import list_runs

        runs = list_runs(engine_settings(), limit=limit)
        if output is not OutputFormat.table:
            emit(runs, output)
            return
        sys.stdout.write(f"runs in {runs.where}\n\nin progress:\n")
        emit(runs.in_progress, output,
             columns=["cluster", "kind", "run", "holder", "started", "last heartbeat", "lease"],
             rows=lambda rs: [(r.cluster, r.kind, r.run_id, r.holder, r.started, _age(r.heartbeat_age_s), r.lease)
                              for r in rs])
        sys.stdout.write("\nended:\n")
        emit(runs.finished, output, columns=["cluster", "run", "state", "holder", "started", "ended"],
             rows=lambda rs: [(r.cluster, r.run_id, r.state, r.holder, r.started, r.ended or "") for r in rs])
