"""``fleet metrics``: the fleet's recovery and health metrics in Prometheus text format."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fleet.cli.common import RepoOpt, repo_path, reporter


def register(app: typer.Typer) -> None:
    @app.command("metrics")
    def metrics_cmd(
        selector: str = typer.Option(None, "-l", "--selector", help="Only clusters matching this selector."),
        drift: bool = typer.Option(False, "--drift", help="Also count drifting objects (a dry run per cluster)."),
        offline: bool = typer.Option(False, "--offline", help="Only what Git holds (drills, objectives, last good): "
                                                              "ask no cluster."),
        repo: Path = RepoOpt,
    ) -> None:
        from fleet.metrics import cluster_metrics, metrics_text

        rows = cluster_metrics(repo_path(repo), selector=selector, live=not offline, drift=drift and not offline,
                               reporter=reporter(quiet=True))
        sys.stdout.write(metrics_text(rows))
