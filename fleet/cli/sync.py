"""``fleet sync CLUSTER``: apply the cluster's rendered revision, server-side, and prune what left Git."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.output import OutputFormat, emit

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.live.apply import SyncResult


def _rows(r: SyncResult) -> list[tuple[object, ...]]:
    return [(r.cluster, r.revision[:12], r.previous_revision[:12] if r.previous_revision else "-", r.objects,
             len(r.created), r.configured, r.unchanged, len(r.pruned), len(r.kept), "yes" if r.dry_run else "no",
             f"{r.duration_s:.1f}s")]


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync_cmd(
        name: str = typer.Argument(..., help="The cluster to sync."),
        rev: str = typer.Option(None, "--rev", help="Revision to apply (default: HEAD)."),
        prune: bool = typer.Option(True, "--prune/--no-prune", help="Delete what left the revision."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Server-side dry run: change nothing."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Apply a cluster's manifests at a revision (server-side apply, field manager "fleet")."""
        from fleet.access import kubeconfig_for
        from fleet.live.apply import sync
        from fleet.registry.load import load_registry
        from fleet.render import render_cluster

        r = reporter()
        path = repo_path(repo)
        spec = load_registry(path).get(name)
        target = kubeconfig_for(spec)
        rendered = render_cluster(path, name, rev)
        result = sync(target, rendered.objects, rendered.revision, prune=prune, dry_run=dry_run, reporter=r)
        emit(result, output, columns=["cluster", "revision", "previous", "objects", "created", "updated", "unchanged",
                                      "pruned", "kept", "dry-run", "time"], rows=_rows)
