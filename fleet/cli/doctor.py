"""``fleet doctor``: is every tool fleet needs here, which version, and where."""

from __future__ import annotations

import typer

from fleet import doctor as checks
from fleet.cli.common import OutputOpt
from fleet.output import OutputFormat, emit
from fleet.paths import toolchain_dir


def _status(t: checks.ToolStatus) -> str:
    if not t.found:
        return "MISSING" if t.required else "optional"
    return "BROKEN" if t.problem else "ok"


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(output: OutputFormat = OutputOpt) -> None:
        found = checks.check_all()
        emit(
            {"toolchain_dir": str(toolchain_dir()), "tools": found},
            output,
            columns=["tool", "status", "version", "path"],
            rows=lambda d: [
                (t.name, _status(t), t.version or "",
                 f"{t.problem} ({t.path})" if t.problem else t.path or t.hint or "")
                for t in d["tools"]
            ],
        )
        missing = [t.name for t in found if not t.found and t.required]
        broken = [t.name for t in found if t.found and t.problem and t.required]
        if missing or broken:
            what = "; ".join(x for x in (f"missing: {', '.join(missing)}" if missing else "",
                                         f"broken: {', '.join(broken)}" if broken else "") if x)
            typer.echo(f"✗ {what}; run `make toolchain` to build or repair them", err=True)
            raise typer.Exit(1)
        typer.echo("✔ every required tool found", err=True)
