"""``fleet status``: every cluster in one table (desired, applied, last good, health, drift, reachable)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.output import OutputFormat, emit

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.drills import DrillState
    from fleet.status import FleetStatus


def _drills(repo: Path, names: list[str]) -> dict[str, DrillState]:
    """The drill column: each cluster's drills (git notes) against its objective (the working tree's)."""
    from fleet.drills import drill_records, drill_state, latest_records, objective_for
    from fleet.registry.load import load_registry, open_repo

    g = open_repo(repo)
    reg = load_registry(g)
    records = latest_records(drill_records(g))
    return {n: drill_state(records.get(n, []), objective_for(reg.settings, reg.clusters[n]) if n in reg.clusters
                           else None) for n in names}

COLUMNS = ["name", "env", "region", "wave", "desired", "applied", "by", "good", "health", "operator", "drift",
           "drill", "reachable", "message"]


def _rows(s: FleetStatus, drills: dict[str, DrillState]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for c in s.clusters:
        applied = (c.applied or "-") + (" (applying)" if c.applied_state == "applying" else "")
        msg = c.message if len(c.message) <= 80 else c.message[:77] + "..."
        operator = c.operator if len(c.operator) <= 20 else c.operator[:17] + "..."
        rows.append((c.name, c.environment, c.region, c.wave, c.desired, applied, c.applied_by, c.last_good or "-",
                     c.health, operator, c.drift, drills[c.name].shown if c.name in drills else "-", c.reachable,
                     msg))
    return rows


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        selector: str = typer.Option(None, "-l", "--selector", help="Only clusters matching this selector."),
        drift: bool = typer.Option(False, "--drift", help="Also compute drift (a dry run per cluster)."),
        check: bool = typer.Option(False, "--check", help="Exit 1 when a selected cluster's drill is failed, "
                                                          "over its objective, stale, or never passed (objective "
                                                          "declared)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.status import fleet_status

        result = fleet_status(repo_path(repo), selector=selector, drift=drift, reporter=reporter(quiet=True))
        drills = _drills(repo_path(repo), [c.name for c in result.clusters])
        emit(result.clusters, output, list_kind="ClusterStatusList", columns=COLUMNS,
             rows=lambda _: _rows(result, drills),
             metadata={"revision": result.revision, "duration_s": result.duration_s,
                       "drills": {n: d.shown for n, d in drills.items()}})
        bad = [f"{n} ({d.shown})" for n, d in drills.items() if d.bad]
        if check and bad:
            reporter().fail(f"{len(bad)} of {len(drills)} clusters have no current passing drill: {', '.join(bad)}")
            raise typer.Exit(1)
