"""Options shared by every command, so they read the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from fleet.output import OutputFormat, StderrReporter

if TYPE_CHECKING:
    from fleet.adapters.pulumi_auto.settings import EngineSettings

__all__ = ["OutputOpt", "RepoOpt", "dry_run_writes_nothing", "engine_settings", "reporter", "writes_nothing_when"]

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


def engine_settings() -> EngineSettings:
    """The Pulumi engine's settings, resolved from this process's environment: once per command, here in
    the composition root, and handed to every service that provisions. Reads only; the file backend's
    passphrase is made when the engine first needs it (never in a dry run)."""
    from fleet.adapters.pulumi_auto.settings import default_settings  # pulumi loads with the commands that use it

    return default_settings()


def dry_run_writes_nothing(command: _F) -> _F:
    """A command whose ``--dry-run`` writes nothing at all: run with ``dry_run`` true, it runs inside
    :func:`fleet.paths.no_writes` (no cache filled, no secret made, no lock, journal or state file)."""
    return writes_nothing_when("dry_run")(command)


def writes_nothing_when(option: str | None) -> Callable[[_F], _F]:
    """:func:`dry_run_writes_nothing` for the option ``option`` (``provision --preview``); None: a read-only
    command that always runs inside :func:`fleet.paths.no_writes` (``fleet drift``)."""

    def decorate(command: _F) -> _F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            if option is not None and not kwargs.get(option):
                return command(*args, **kwargs)
            from fleet.paths import no_writes

            with no_writes():
                return command(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
