"""``fleet drill``: rehearse the rebuild of clusters into scratch clusters, against their recovery
objectives, with the evidence kept in Git; ``fleet drill history CLUSTER`` lists that evidence."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, engine_settings, repo_path, reporter
from fleet.errors import InputError
from fleet.output import OutputFormat, emit

if TYPE_CHECKING:
    from bootstrap.rehearsal import DrillResult

HISTORY_COLUMNS = ["started", "result", "revision", "recovery", "rto", "margin", "by", "run"]
_EXIT = {"passed": 0, "failed": 1, "over-rto": 1}


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def _history(names: list[str], repo: Path, output: OutputFormat) -> None:
    from fleet.drills import drill_records, summary
    from fleet.registry.load import load_registry, open_repo

    if len(names) != 1:
        raise InputError("name one cluster: fleet drill history CLUSTER")
    g = open_repo(repo)
    load_registry(g).get(names[0])  # an unknown cluster is refused, with close names
    records = list(reversed(drill_records(g, names[0])))  # newest first
    rows = [summary(r) for r in records]
    emit(rows, output, list_kind="DrillRecordList", columns=HISTORY_COLUMNS,
         rows=lambda _: [(r["started_at"], r["result"], r["revision"], _s(r["recovery_s"]), _s(r["rto_s"]),
                          _s(r["margin_s"]), r["by"], r["run_id"]) for r in rows])


def _render(results: list[DrillResult], output: OutputFormat) -> None:
    from bootstrap.rehearsal import to_markdown

    if output is not OutputFormat.table:
        data = [{k: v for k, v in vars(r).items() if k != "recovery"} for r in results]
        if len(data) > 1:
            emit(data, output, list_kind="DrillResultList")
        else:
            emit(data[0], output)
        return
    for r in results:
        sys.stdout.write(to_markdown(r))
        sys.stdout.write(f"\nreport: {r.files.get('markdown')}\njson: {r.files.get('json')}\n"
                         f"timeline: {r.files.get('recovery_timeline', '-')}\n")


def register(app: typer.Typer) -> None:
    @app.command()
    def drill(
        clusters: list[str] = typer.Argument(None, help="The clusters to rehearse (`history CLUSTER`: its drills)."),
        selector: str = typer.Option(None, "-l", "--selector", help="Rehearse every cluster matching this selector."),
        max_parallel: int = typer.Option(1, "--max-parallel", min=1, help="Drills run at once (several clusters)."),
        keep: bool = typer.Option(False, "--keep", help="Keep the scratch cluster and stack for inspection."),
        cleanup: bool = typer.Option(False, "--cleanup", help="Only remove what earlier drills left (kept or killed)."),
        gate_timeout: float = typer.Option(None, "--gate-timeout", help="Seconds the health gates may take."),
        report_dir: Path = typer.Option(None, "--report-dir", help="Write the reports here (a folder per cluster)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        names = list(clusters or [])
        if names[:1] == ["history"]:
            _history(names[1:], repo_path(repo), output)
            return
        if bool(names) == (selector is not None):
            raise InputError("name one or more CLUSTERs, or give -l SELECTOR")
        from bootstrap import rehearsal
        from fleet.registry.load import load_registry, open_repo

        reg = load_registry(open_repo(repo_path(repo)))  # a bad objective: exit 2 naming file, line and key
        if selector is not None:
            names = [c.name for c in reg.select(selector)]
            if not names:
                raise InputError(f'no cluster matches selector "{selector}"')
        for n in names:
            reg.get(n)  # every name known before any drill starts
        if not cleanup:
            from fleet.good import get_good

            for n in names:  # no last good: refused before anything is created, whichever cluster it is
                if get_good(open_repo(repo_path(repo)), n) is None:
                    raise InputError(
                        f'cluster "{n}" has no last good revision to rehearse a rebuild at',
                        hint=f"a drill rebuilds at the last good revision: `fleet good {n} --set REV` records one",
                    )
        engine = engine_settings()
        rep = reporter()
        if cleanup:
            for n in names:
                removed = rehearsal.cleanup(repo_path(repo), n, engine=engine, reporter=rep)
                rep.ok(f"{n}: removed {', '.join(removed)}" if removed else f"{n}: no drill left anything behind")
            return
        many = len(names) > 1
        from fleet.adapters import proc

        proc.interrupt_on_sigterm()  # a CI job cancelled, a CronJob past its deadline: the scratch goes, as on Ctrl-C

        def one(name: str) -> DrillResult:
            req = rehearsal.DrillRequest(
                repo=repo_path(repo), cluster=name, keep=keep, gate_timeout=gate_timeout,
                report_dir=(report_dir / name if report_dir and many else report_dir),
            )
            return rehearsal.run_drill(req, engine=engine, reporter=rep.child(f"{name}: ") if many else rep)

        if not many:
            results = [one(names[0])]
        else:
            with ThreadPoolExecutor(max_workers=max_parallel) as pool:
                results = list(pool.map(one, names))
        _render(results, output)
        code = max(_EXIT[r.result] for r in results)
        if code:
            raise typer.Exit(code)
