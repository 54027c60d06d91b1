"""``fleet good`` (show or record a cluster's last known good revision) and ``fleet history``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.errors import InputError
from fleet.output import OutputFormat, emit, visible


def _gates_from(path: Path | None) -> list[dict[str, object]]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise InputError(f"{visible(path)}: gate results nested too deep to be read") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{visible(path)}: cannot read gate results as JSON: {e}") from e
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InputError(f"{path}: gate results must be a JSON list of objects")
    return data


def register(app: typer.Typer) -> None:
    @app.command()
    def good(
        cluster: str,
        set_: str | None = typer.Option(None, "--set", help="Record REV as the cluster's last known good."),
        reason: str = typer.Option("recorded by hand", "--reason", help="Why (kept in the audit note)."),
        duration: float | None = typer.Option(None, "--duration", help="Seconds the gates took (audit)."),
        gates: Path | None = typer.Option(
            None, "--gates", help="A JSON file: a list of gate results (audit)."
        ),
        output: OutputFormat = OutputOpt,
        repo: Path | None = RepoOpt,
    ) -> None:
        from fleet.good import get_good, record_good
        from fleet.registry import load_registry, open_repo

        g = open_repo(repo_path(repo))
        if set_ is not None:
            rec = record_good(g, cluster, set_, reason=reason, gates=_gates_from(gates), duration_s=duration)
            was = f" (was {rec.previous[:12]})" if rec.previous else ""
            reporter().ok(f'recorded {rec.revision[:12]} as the last good revision of "{cluster}"{was}')
            return
        current = get_good(g, cluster)
        if current is None:
            load_registry(g).get(cluster)  # an unknown cluster is bad input (exit 2)
            if output is not OutputFormat.table:
                emit(None, output)
            reporter().fail(f'no last good revision recorded for cluster "{cluster}"')
            raise typer.Exit(1)
        emit(
            current,
            output,
            columns=["cluster", "revision", "recorded", "by", "reason"],
            rows=lambda r: [
                (
                    r.cluster,
                    r.revision[:12],
                    r.recorded_at.isoformat(timespec="seconds"),
                    r.recorded_by,
                    r.reason,
                )
            ],
        )

    @app.command()
    def history(
        cluster: str,
        limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many commits."),
        output: OutputFormat = OutputOpt,
        repo: Path | None = RepoOpt,
    ) -> None:
        from fleet.good import get_good
        from fleet.good import history as history_of
        from fleet.registry import open_repo

        g = open_repo(repo_path(repo))
        entries = history_of(g, cluster, limit)
        good = get_good(g, cluster)
        same = next((e for e in entries if e.good), None)
        if good is not None and same is not None and same.revision != good.revision:
            reporter().ok(
                f"last good is {good.revision[:12]}, which renders what {same.revision[:12]} renders"
            )

        def mark(e: object) -> str:
            good, recorded = getattr(e, "good", False), getattr(e, "recorded", False)
            return "good" if good else ("was good" if recorded else "")

        emit(
            entries,
            output,
            columns=["revision", "date", "author", "good", "subject"],
            rows=lambda d: [
                (e.revision[:12], e.date.strftime("%Y-%m-%d %H:%M"), e.author, mark(e), e.subject) for e in d
            ],
            list_kind="CommitList",
            metadata={"cluster": cluster},
        )
