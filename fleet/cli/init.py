"""``fleet init DIR``: a new fleet repo that works out of the box, with a first commit."""

from __future__ import annotations

from pathlib import Path

import typer

from fleet.cli.common import reporter


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Path = typer.Argument(..., help="A new or empty directory."),
        name: str | None = typer.Option(None, "--name", help="The fleet's name (default: the directory's)."),
        branch: str = typer.Option("main", "--branch", help="The branch fleet commits to."),
        remote: str | None = typer.Option(None, "--remote", help="URL of the remote to add as 'origin'."),
    ) -> None:
        from fleet.registry import init_repo

        result = init_repo(directory, name=name, branch=branch, remote_url=remote)
        r = reporter()
        r.ok(f"created fleet repo {result.root} ({len(result.files)} files, commit {result.revision[:12]})")
        r.ok(f"next: fleet cluster add dev-1 --env dev --repo {result.root}")
        typer.echo(str(result.root))
