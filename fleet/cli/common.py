"""Options shared by every command, so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path

import typer

from fleet.output import OutputFormat, StderrReporter

__all__ = ["OutputOpt", "RepoOpt", "reporter"]

RepoOpt = typer.Option(
    None,
    "--repo",
    envvar="FLEET_REPO",
    help="The fleet repo (default: the repository of the current directory).",
    show_default=False,
)

OutputOpt = typer.Option(OutputFormat.table, "-o", "--output", help="Output format.", case_sensitive=False)


def reporter(quiet: bool = False) -> StderrReporter:
    return StderrReporter(quiet=quiet)


def repo_path(repo: Path | None) -> Path:
    return (repo or Path.cwd()).expanduser()
