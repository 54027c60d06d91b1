"""``fleet rollout``: roll a revision across the fleet (or bring up a new region) wave by wave, gated.

Exit codes: 0 every selected cluster passed (or ``--dry-run``); 1 a cluster failed (the rollout stopped,
or went on within ``--max-failures``); 2 bad input.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from fleet.cli.common import OutputOpt, RepoOpt, dry_run_writes_nothing, engine_settings, repo_path, reporter
from fleet.cli.gate import parse_duration
from fleet.errors import InputError
from fleet.output import OutputFormat, emit, visible_text

__all__ = ["register"]

_EXIT = {"succeeded": 0, "planned": 0, "degraded": 1, "stopped": 1}


def _plan_text(plan: Any) -> str:
    lines = [
        f"Rollout of {plan.revision[:12]} ({plan.subject}) to "
        + (f'clusters matching "{plan.selector}"' if plan.selector else "every cluster"),
        f"  max-parallel {plan.max_parallel}, max-failures {plan.max_failures}"
        + (", rollback on failure" if plan.rollback else "")
        + (f"; continues rollout {plan.resumes}" if plan.resumes else ""),
    ]
    for w in plan.waves:
        lines.append(f"  wave {w.wave}:")
        for c in w.clusters:
            lines.append(f"    - {c.name}: {c.action} ({c.why})")
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command()
    @dry_run_writes_nothing
    def rollout(
        selector: str = typer.Option(None, "-l", "--selector", help="Roll out to the clusters matching this."),
        rev: str = typer.Option("HEAD", "--rev", help="The revision to roll out."),
        max_parallel: int = typer.Option(2, "--max-parallel", help="Clusters of a wave brought up at once."),
        max_failures: int = typer.Option(0, "--max-failures", help="Failures a wave may have before the "
                                         "rollout stops (later waves are left untouched)."),
        rollback: bool = typer.Option(False, "--rollback", help="Return failed clusters (and the whole "
                                      "stopping wave) to their last good revision."),
        gate_timeout: str = typer.Option(None, "--gate-timeout",
                                         help="Time the health gates of each cluster may take (e.g. 90s, 5m); "
                                         "default: the registry's gates.timeout."),
        sync: str = typer.Option("auto", "--sync", help="auto | operator | direct"),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the waves and what each cluster needs."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Roll a revision across the fleet wave by wave: a wave starts when the previous one passed its gates.

        Clusters that do not exist yet are brought up by the DR pipeline; the others are synced, gated and
        recorded as good. Killed or stopped? Run the same command again: it continues where it stopped.
        """
        from rollout.engine import run_rollout
        from rollout.model import RolloutRequest
        from rollout.progress import PlainView
        from rollout.report import to_markdown
        from rollout.services import RealRolloutServices

        if sync not in ("auto", "operator", "direct"):
            raise InputError(f'--sync must be one of auto, operator, direct (got "{sync}")')
        seconds = parse_duration(gate_timeout, "--gate-timeout") if gate_timeout is not None else None
        path = repo_path(repo)
        req = RolloutRequest(
            repo=path, selector=selector, rev=rev, max_parallel=max_parallel, max_failures=max_failures,
            rollback=rollback, gate_timeout=seconds, sync=sync, dry_run=dry_run,  # type: ignore[arg-type]
        )
        services = RealRolloutServices(path, engine=engine_settings())
        live = sys.stderr.isatty() and not dry_run
        if live:
            from fleet.cli.rollout_view import LiveView

            view: Any = LiveView()
        else:
            view = PlainView(reporter())
        with view if live else nullcontext():
            result = run_rollout(req, services, view)
        if output is not OutputFormat.table:
            emit({"id": result.id, "outcome": result.outcome, "plan": result.plan, "report": result.report}, output)
        elif result.report is None:
            sys.stdout.write(visible_text(_plan_text(result.plan)))
        else:
            sys.stdout.write(visible_text(to_markdown(result.report)))
            files = result.report.files
            sys.stdout.write(f"\nreport: {files.get('markdown')}\njson: {files.get('json')}\n"
                             f"timeline: {files.get('timeline')}\n")
        code = _EXIT[result.outcome]
        if code:
            if result.outcome == "stopped":
                reporter().fail("fix the cause and run the same command again to continue, or roll out "
                                "another revision" + ("" if rollback else "; --rollback returns the failed wave"))
            raise typer.Exit(code)
