"""``fleet bootstrap``: rebuild lost clusters from the repo at their last good commit (DR)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer

from bootstrap.pipeline import BootstrapRequest, BootstrapResult, run_bootstrap
from bootstrap.report import to_markdown
from fleet.cli.common import OutputOpt, RepoOpt, dry_run_writes_nothing, engine_settings, repo_path, reporter
from fleet.errors import InputError
from fleet.output import OutputFormat, emit, visible_text

_EXIT = {"recovered": 0, "already-recovered": 0, "planned": 0, "failed": 1}


def _plan_text(r: BootstrapResult) -> str:
    p = r.plan
    lines = [
        f"Runbook: rebuild cluster \"{p.cluster}\" ({p.provider}, {p.region}, env {p.environment})",
        f"  revision : {p.revision} ({p.revision_source}) {p.revision_subject}",
        f"  stack    : {p.stack}",
        f"  sync     : {p.sync_mode}",
        f"  objects  : {p.objects} rendered from {p.rendered_from or 'environments/' + p.environment}",
        "  creates  :",
        *[f"    - {c}" for c in p.creates],
        f"  gates    : {', '.join(p.gates) or 'none'} (timeout {p.gate_timeout_s:.0f}s)",
        "  steps    :",
        *[
            f"    {i}. {s}" + (f"  (attempts {int(p.budgets[s]['attempts'])}, budget {p.budgets[s]['seconds']:.0f}s)"
                             if s in p.budgets else "")
            for i, s in enumerate(p.steps, 1)
        ],
        *[f"  note     : {n}" for n in p.notes],
    ]
    return "\n".join(lines) + "\n"


def _render(results: list[BootstrapResult], output: OutputFormat, dry_run: bool, many: bool) -> None:
    if output is not OutputFormat.table:
        data = [
            {"cluster": r.plan.cluster, "outcome": r.outcome, "plan": r.plan, "report": r.report,
             "error": r.error.message if r.error else None}
            for r in results
        ]
        if many:  # -l / --all: the list envelope, however many clusters matched
            emit(data, output, list_kind="BootstrapResultList")
        else:
            emit(data[0], output)
        return
    for r in results:
        if r.outcome == "already-recovered":
            sys.stdout.write(visible_text(f"cluster {r.plan.cluster} is already recovered at {r.plan.revision}\n"))
        elif dry_run or r.report is None:
            sys.stdout.write(visible_text(_plan_text(r)))
        else:
            sys.stdout.write(visible_text(to_markdown(r.report)))
            files = r.report.files
            sys.stdout.write(f"\nreport: {files.get('markdown')}\njson: {files.get('json')}\n"
                             f"timeline: {files.get('timeline')}\n")


def register(app: typer.Typer) -> None:
    @app.command()
    @dry_run_writes_nothing
    def bootstrap(
        cluster: str = typer.Argument(None, help="The cluster to rebuild (or use -l)."),
        to: str = typer.Option(None, "--to", help="Rebuild at this revision instead of the last good one."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the runbook plan; change nothing."),
        sync: str = typer.Option("auto", "--sync", help="auto | operator | direct"),
        selector: str = typer.Option(None, "-l", "--selector", help="Rebuild every cluster matching this selector."),
        all_: bool = typer.Option(False, "--all", help="Rebuild every cluster of the registry."),
        max_parallel: int = typer.Option(2, "--max-parallel", min=1, help="Clusters rebuilt at once (with -l)."),
        gate_timeout: float = typer.Option(None, "--gate-timeout", help="Seconds the health gates may take."),
        report_dir: Path = typer.Option(None, "--report-dir", help="Also write the report here."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        if sync not in ("auto", "operator", "direct"):
            raise InputError(f'--sync must be one of auto, operator, direct (got "{sync}")')
        if sum((cluster is not None, selector is not None, all_)) != 1:
            raise InputError("name one CLUSTER, or give -l SELECTOR, or --all")
        from bootstrap.services import RealServices  # the Pulumi program and the live layer: loaded when used
        from fleet.stepkit.team import team_runs

        engine = engine_settings()
        services = RealServices(repo_path(repo), engine=engine)
        team = team_runs(engine)  # a shared backend: leases and journals in its bucket (a dry run only reads)
        names = [cluster] if cluster else services.select(selector)
        if not names:
            raise InputError(
                f'no cluster matches selector "{selector}"' if selector else "the registry has no clusters"
            )
        if to is not None and len(names) > 1:
            to_rev: str | None = services.resolve_rev(to)
        else:
            to_rev = to
        rep = reporter()

        def one(name: str) -> BootstrapResult:
            req = BootstrapRequest(
                repo=repo_path(repo), cluster=name, to=to_rev, dry_run=dry_run,
                sync=sync,  # type: ignore[arg-type]
                gate_timeout=gate_timeout,
                report_dir=(report_dir / name if report_dir and len(names) > 1 else report_dir),
                team=team,
            )
            return run_bootstrap(req, services, rep.child(f"{name}: ") if len(names) > 1 else rep)

        if len(names) == 1:
            results = [one(names[0])]
        else:
            with ThreadPoolExecutor(max_workers=max_parallel) as pool:
                results = list(pool.map(one, names))
        _render(results, output, dry_run, many=cluster is None)
        code = max(_EXIT[r.outcome] for r in results)
        if code:
            raise typer.Exit(code)

