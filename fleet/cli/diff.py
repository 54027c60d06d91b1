"""``fleet diff CLUSTER``: what a sync would change (server-side dry run against the live objects).

Exit codes: 0 no drift, 1 drift, 2 an error (bad input, unreachable cluster, refused request).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.output import OutputFormat, emit, visible_text

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.live.diff import DiffResult


def _text(d: DiffResult) -> str:
    if not d.drift:
        return f"no drift: cluster {d.cluster} matches {d.revision[:12]} ({d.unchanged} objects)\n"
    out = []
    for o in d.objects:
        out.append(f"{o.action} {o.object}\n")
        if o.action == "update":
            out.append(o.diff if o.diff.endswith("\n") else o.diff + "\n")
    out.append(f"{d.create} to create, {d.update} to update, {d.prune} to prune, {d.unchanged} unchanged\n")
    return "".join(out)


def register(app: typer.Typer) -> None:
    @app.command("diff")
    def diff_cmd(
        name: str = typer.Argument(..., help="The cluster to compare."),
        rev: str = typer.Option(None, "--rev", help="Revision to compare with (default: HEAD)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Show drift between a revision and the live cluster. Exit 0 none, 1 drift, 2 error."""
        from fleet.access import kubeconfig_for
        from fleet.live.diff import diff
        from fleet.registry.load import load_registry
        from fleet.rendering.cluster import render_cluster
        from fleet.sops import key_for

        # an error exits 2 (or 70), never 1, which means drift: fleet.cli decides (commands.FINDINGS)
        r = reporter()
        path = repo_path(repo)
        reg = load_registry(path)
        spec = reg.get(name)
        rendered = render_cluster(path, name, rev)
        key = key_for(reg.settings, path)  # the fleet uses SOPS: decrypted in memory, as a sync does
        result = diff(kubeconfig_for(spec), rendered.objects, rendered.revision, reporter=r,
                      age_keys=[key] if key else ())
        if output is OutputFormat.table:
            sys.stdout.write(visible_text(_text(result)))
        else:
            emit(result, output)
        if result.drift:
            raise typer.Exit(1)
