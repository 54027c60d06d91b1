"""``fleet diff CLUSTER``: what a sync would change (server-side dry run against the live objects).
``fleet diff --base REV [--head REV]``: what a change does to every cluster's render, offline
(:mod:`fleet.rendering.revdiff`; printed by :mod:`fleet.cli.revdiff_view`).

Exit codes: 0 no drift (no change), 1 drift (changes), 2 an error (bad input, unreachable cluster,
refused request; with ``--base``: a cluster whose render failed at either revision).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import RepoOpt, repo_path, reporter
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


_BASE_FORMATS = ("table", "json", "yaml", "markdown")


def _between(repo: Path | None, name: str | None, base: str, head: str | None, selector: str | None,
             output: str) -> None:
    """``fleet diff --base REV [--head REV]``: every selected cluster's render compared between two revisions."""
    from fleet.cli import revdiff_view
    from fleet.errors import InputError
    from fleet.rendering.revdiff import diff_revisions

    fmt = output.lower()
    if fmt not in _BASE_FORMATS:
        raise InputError(f'-o {output}: --base prints {", ".join(_BASE_FORMATS)}')
    # an error is never 1 (changes): fleet.cli.commands.FINDINGS, decided by the one error handler
    result = diff_revisions(repo_path(repo), base, head or "HEAD", selector=selector, names=[name] if name else None)
    r = reporter()
    if head is None:  # HEAD is a commit: what the working tree changes is not in it
        from fleet.adapters import gitplain

        edits = gitplain.changed_paths(repo_path(repo))
        if edits:
            r.warn(f"{len(edits)} uncommitted changes are not compared: --head is HEAD, a commit (commit them, "
                   "or compare what is committed)")
    for c in result.clusters:
        if c.status == "failed":
            r.fail(f"{c.cluster}: {c.error}")
    if fmt == "table":
        sys.stdout.write(revdiff_view.text(result))
    elif fmt == "markdown":
        sys.stdout.write(revdiff_view.markdown(result))
    else:
        emit(revdiff_view.as_data(result), OutputFormat(fmt))
    if result.failed:
        raise typer.Exit(2)
    if result.changes:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command("diff")
    def diff_cmd(
        name: str = typer.Argument(None, help="The cluster to compare (with --base: only this one).",
                                   show_default=False),
        rev: str = typer.Option(None, "--rev", help="Revision to compare with (default: HEAD)."),
        base: str = typer.Option(None, "--base", help="Offline: compare every cluster's render at this revision "
                                 "with --head's (no cluster needed).", show_default=False),
        head: str = typer.Option(None, "--head", help="With --base: the revision compared (default: HEAD).",
                                 show_default=False),
        selector: str = typer.Option(None, "--selector", "-l", help="With --base: a label selector.",
                                     show_default=False),
        repo: Path = RepoOpt,
        output: str = typer.Option("table", "-o", "--output", help="Output format: table, json, yaml (with "
                                   "--base also markdown, a pull-request comment)."),
    ) -> None:
        from fleet.errors import InputError

        if base is not None:
            if rev is not None:
                raise InputError("--rev compares with a live cluster; --base compares two revisions (use --head)")
            _between(repo, name, base, head, selector, output)
            return
        if head is not None or selector is not None:
            raise InputError(f"{'--head' if head is not None else '--selector'} goes with --base",
                             hint="fleet diff --base main --head HEAD")
        if name is None:
            raise InputError("name a cluster (its drift from the live cluster), or pass --base REV (what a change "
                             "does to every cluster)", hint="fleet diff eu-1  |  fleet diff --base main")
        if output.lower() not in ("table", "json", "yaml"):
            raise InputError(f"-o {output}: fleet diff CLUSTER prints table, json or yaml")
        output_ = OutputFormat(output.lower())
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
        from fleet.operator import operator_for

        result = diff(kubeconfig_for(spec), rendered.objects, rendered.revision, reporter=r,
                      age_keys=[key] if key else (), via=operator_for(reg.settings))
        if output_ is OutputFormat.table:
            sys.stdout.write(visible_text(_text(result)))
        else:
            emit(result, output_)
        if result.drift:
            raise typer.Exit(1)
