"""``fleet rollout``: roll a revision across the fleet (or bring up a new region) wave by wave, gated;
``fleet rollout approve ROLLOUT --wave N`` lets a paused rollout go on; ``fleet rollout status [ROLLOUT]``.

Exit codes: 0 every selected cluster passed (or ``--dry-run``); 1 a cluster failed (the rollout stopped,
or went on within its failure budget); 2 bad input; 75 paused before a wave that needs an approval
(EX_TEMPFAIL: run it again once approved).
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

EXIT_PAUSED = 75  # rollout.engine.EXIT_PAUSED; kept here too so that `fleet --help` loads no engine
_EXIT = {"succeeded": 0, "planned": 0, "degraded": 1, "stopped": 1, "paused": EXIT_PAUSED}


def _plan_text(plan: Any) -> str:
    lines = [
        f"Rollout of {plan.revision[:12]} ({plan.subject}) to "
        + (f'clusters matching "{plan.selector}"' if plan.selector else "every cluster"),
        f"  max-parallel {plan.max_parallel}, max-failures {plan.max_failures}"
        + (f", max-failures-total {plan.max_failures_total}" if plan.max_failures_total is not None else "")
        + (", on failure: rollback" if plan.on_failure == "rollback" else "")
        + (", rollback on failure" if plan.rollback else "")
        + (f"; continues rollout {plan.resumes}" if plan.resumes else ""),
    ]
    for w in plan.waves:
        extra = [x for x in (("approval required" if w.approval else ""),
                             (f"bake {_dur(w.bake_s)}" if w.bake_s else "")) if x]
        lines.append(f"  wave {w.wave}:" + (f" ({', '.join(extra)}: {w.policy})" if extra else ""))
        for c in w.clusters:
            lines.append(f"    - {c.name}: {c.action} ({c.why})")
    return "\n".join(lines) + "\n"


def _dur(seconds: float) -> str:
    s = int(seconds)
    return (f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60
            else f"{s}s")


def register(app: typer.Typer) -> None:
    group = typer.Typer()  # its help: the docstring of the rollout itself (the group's callback)
    app.add_typer(group, name="rollout")

    @group.callback(invoke_without_command=True)
    @dry_run_writes_nothing
    def rollout(
        ctx: typer.Context,
        selector: str = typer.Option(None, "-l", "--selector", help="Roll out to the clusters matching this."),
        rev: str = typer.Option("HEAD", "--rev", help="The revision to roll out."),
        max_parallel: int = typer.Option(2, "--max-parallel", help="Clusters of a wave brought up at once."),
        max_failures: str = typer.Option("0", "--max-failures", help="Failures a wave may have before the "
                                         "rollout stops: a number, or a percent of the wave's clusters (10%)."),
        max_failures_total: str = typer.Option(None, "--max-failures-total", help="Failures the whole rollout "
                                               "may have: a number, or a percent of the selected clusters."),
        on_failure: str = typer.Option("hold", "--on-failure", help="hold: a failed cluster stays as it is, for "
                                       "inspection; rollback: it returns to its own last good revision at once."),
        bake: str = typer.Option(None, "--bake", help="Watch each wave's clusters this long after they passed "
                                 "(e.g. 10m) before the next wave; default: fleet.yaml's rollout policy."),
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
        """Clusters that do not exist yet are brought up by the DR pipeline; the others are synced, gated and
        recorded as good. Killed, stopped or paused for an approval? Run the same command again: it continues
        where it stopped. Exit codes: 0 done, 1 a cluster failed, 2 bad input, 75 paused for an approval.
        """
        if ctx.invoked_subcommand is not None:
            return
        from rollout.engine import run_rollout
        from rollout.model import RolloutRequest
        from rollout.policy import parse_bake, parse_budget
        from rollout.progress import PlainView
        from rollout.report import to_markdown
        from rollout.services import RealRolloutServices

        if sync not in ("auto", "operator", "direct"):
            raise InputError(f'--sync must be one of auto, operator, direct (got "{sync}")')
        if on_failure not in ("hold", "rollback"):
            raise InputError(f'--on-failure must be hold or rollback (got "{on_failure}")')
        budget = parse_budget(max_failures, "--max-failures")
        total = parse_budget(max_failures_total, "--max-failures-total")
        bake_s = parse_bake(bake)
        seconds = parse_duration(gate_timeout, "--gate-timeout") if gate_timeout is not None else None
        path = repo_path(repo)
        req = RolloutRequest(
            repo=path, selector=selector, rev=rev, max_parallel=max_parallel, max_failures=budget,  # type: ignore[arg-type]
            max_failures_total=total, on_failure=on_failure, bake=bake_s,  # type: ignore[arg-type]
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
            if result.outcome == "paused":
                raise typer.Exit(code)
            if result.outcome == "stopped":
                reporter().fail("fix the cause and run the same command again to continue, or roll out "
                                "another revision" + ("" if rollback else "; --rollback returns the failed wave"))
            raise typer.Exit(code)

    @group.command("approve")
    def approve_cmd(
        rollout_id: str = typer.Argument(..., metavar="ROLLOUT", help="The rollout's id (fleet rollout status)."),
        wave: int = typer.Option(..., "--wave", help="The wave it waits before."),
        reason: str = typer.Option("", "--reason", help="Why (kept in the approval's audit note)."),
        repo: Path = RepoOpt,
    ) -> None:
        """Approve the wave a paused rollout waits before: an audit note on its revision (fleet push carries it).

        Then run the same fleet rollout command again: it starts that wave.
        Exit 2, nothing written: a rollout or wave that does not exist or is not waiting for an approval.
        """
        from rollout.approval import approve

        done = approve(repo_path(repo), rollout_id, wave, reason)
        a = done.approval
        reporter().ok(f"wave {a.wave} of rollout {a.rollout} approved by {a.approved_by} at "
                      f"{a.approved_at.isoformat(timespec='seconds')}" + (f": {a.reason}" if a.reason else "")
                      + (f" ({done.already} earlier approvals of it)" if done.already else ""))
        reporter().step("run the same fleet rollout command again to start the wave; `fleet push` shares the "
                        "approval")

    @group.command("status")
    def status_cmd(
        rollout_id: str = typer.Argument(None, metavar="[ROLLOUT]",
                                         help="A rollout's id (default: the current one, else the last one)."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Where a rollout stands, wave by wave: done, baking until T, waiting for approval, failed, not started."""
        from rollout.status import rollout_status

        st = rollout_status(rollout_id)
        if output is not OutputFormat.table:
            emit(st, output)
            return
        sys.stdout.write(f"rollout {st.id}: {st.state} ({st.selector or 'every cluster'} at {st.revision[:12]}, "
                         f"started {st.started}" + (f" by {st.started_by}" if st.started_by else "") + ")\n")
        emit(st.waves, output, columns=("WAVE", "STATE", "CLUSTERS", "DETAIL"),
             rows=lambda ws: [(w.wave, w.state, ",".join(w.clusters), w.summary) for w in ws])
        if st.next_step:
            sys.stdout.write(f"next: {st.next_step}\n")
