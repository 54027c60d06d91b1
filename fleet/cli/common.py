"""Options shared by every command, so they read the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from fleet.output import OutputFormat, StderrReporter

__all__ = ["OutputOpt", "RepoOpt", "dry_run_writes_nothing", "reporter"]

_F = TypeVar("_F", bound=Callable[..., Any])

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


def dry_run_writes_nothing(command: _F) -> _F:
    """A command whose ``--dry-run`` writes nothing at all: run with ``dry_run`` true, it runs inside
    :func:`fleet.paths.no_writes` (no cache filled, no secret made, no lock, journal or state file)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("dry_run"):
            return command(*args, **kwargs)
        from fleet.paths import no_writes

        with no_writes():
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]
