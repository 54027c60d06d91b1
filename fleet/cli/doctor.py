"""``fleet doctor``: is every tool fleet needs here, which version, and where."""

from __future__ import annotations

import typer

from fleet import toolchain
from fleet.cli.common import OutputOpt
from fleet.output import OutputFormat, emit
from fleet.paths import toolchain_dir


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(output: OutputFormat = OutputOpt) -> None:
        """Check the local toolchain: each tool with the version found and where."""
        found = toolchain.check_all()
        emit(
            {"toolchain_dir": str(toolchain_dir()), "tools": found},
            output,
            columns=["tool", "status", "version", "path"],
            rows=lambda d: [
                (t.name, "ok" if t.found else ("MISSING" if t.required else "optional"), t.version or "",
                 t.path or (t.hint or ""))
                for t in d["tools"]
            ],
        )
        missing = [t.name for t in found if not t.found and t.required]
        if missing:
            typer.echo(f"✗ missing: {', '.join(missing)}; run `make toolchain`", err=True)
            raise typer.Exit(1)
        typer.echo("✔ every required tool found", err=True)
