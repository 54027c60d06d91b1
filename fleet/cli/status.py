"""``fleet status``: every cluster in one table (desired, applied, last good, health, drift, reachable)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.output import OutputFormat, emit

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.status import FleetStatus

COLUMNS = ["name", "env", "region", "wave", "desired", "applied", "by", "good", "health", "operator", "drift",
           "reachable", "message"]


def _rows(s: FleetStatus) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for c in s.clusters:
        applied = (c.applied or "-") + (" (applying)" if c.applied_state == "applying" else "")
        msg = c.message if len(c.message) <= 80 else c.message[:77] + "..."
        operator = c.operator if len(c.operator) <= 20 else c.operator[:17] + "..."
        rows.append((c.name, c.environment, c.region, c.wave, c.desired, applied, c.applied_by, c.last_good or "-",
                     c.health, operator, c.drift, c.reachable, msg))
    return rows


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        selector: str = typer.Option(None, "-l", "--selector", help="Only clusters matching this selector."),
        drift: bool = typer.Option(False, "--drift", help="Also compute drift (a dry run per cluster)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.status import fleet_status

        result = fleet_status(repo_path(repo), selector=selector, drift=drift, reporter=reporter(quiet=True))
        emit(result.clusters, output, list_kind="ClusterStatusList", columns=COLUMNS, rows=lambda _: _rows(result),
             metadata={"revision": result.revision, "duration_s": result.duration_s})
