"""``fleet adopt``: make an existing Git repo a fleet repo, moving and rewriting nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from fleet.cli.common import dry_run_writes_nothing, reporter
from fleet.output import visible_text


def register(app: typer.Typer) -> None:
    @app.command()
    @dry_run_writes_nothing
    def adopt(
        directory: Path = typer.Argument(Path("."), help="The repository to adopt (default: here)."),
        name: str | None = typer.Option(None, "--name", help="The fleet's name (default: the directory's)."),
        registry: str | None = typer.Option(None, "--registry", help="The registry folder (default: detected)."),
        environments: str | None = typer.Option(
            None, "--environments", help='The overlays\' pattern, like "deploy/overlays/{env}" (default: detected).'
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be written; write nothing."),
    ) -> None:
        from fleet.adopt import adopt_repo

        plan = adopt_repo(directory, name=name, registry=registry, environments=environments, dry_run=dry_run)
        r = reporter()
        for line in plan.findings:
            r.step(line)
        files = ", ".join(plan.files)
        if plan.revision is None:
            r.wait(f"dry run: would write {files} in one commit; nothing written")
            for path, text in plan.files.items():
                typer.echo(visible_text(f"--- {path}\n{text}"), nl=False)
            return
        r.ok(f'adopted {plan.root} as fleet repo "{plan.name}" in {plan.revision[:12]}: {files} '
             "(no existing file moved or changed)")
        if plan.clusters:
            r.ok(f"next: fleet render {plan.clusters[0].name} --tree")
        elif plan.environments:
            r.ok(f"next: fleet cluster add NAME --env {plan.environments[0]}")
