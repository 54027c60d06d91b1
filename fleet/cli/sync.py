"""``fleet sync CLUSTER``: apply the cluster's rendered revision, server-side, and prune what left Git."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, dry_run_writes_nothing, repo_path, reporter
from fleet.output import OutputFormat, emit

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.live.apply import SyncResult


def _rows(r: SyncResult) -> list[tuple[object, ...]]:
    return [(r.cluster, r.revision[:12], r.previous_revision[:12] if r.previous_revision else "-", r.objects,
             len(r.created), r.configured, r.unchanged, len(r.pruned), len(r.kept), "yes" if r.dry_run else "no",
             f"{r.duration_s:.1f}s")]


def register(app: typer.Typer) -> None:
    @app.command("sync")
    @dry_run_writes_nothing
    def sync_cmd(
        name: str = typer.Argument(..., help="The cluster to sync."),
        rev: str = typer.Option(None, "--rev", help="Revision to apply (default: HEAD)."),
        prune: bool = typer.Option(True, "--prune/--no-prune", help="Delete what left the revision."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Server-side dry run: change nothing."),
        mode: str = typer.Option("auto", "--sync", help="operator: move the operator's pin and wait for it; "
                                 "direct: apply it here (break-glass); auto: operator where it runs."),
        timeout: str = typer.Option(None, "--timeout", help="How long to wait for the operator to apply it "
                                    "(e.g. 90s, 5m; default: the cluster's gate timeout)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.access import kubeconfig_for
        from fleet.errors import InputError
        from fleet.live.apply import sync
        from fleet.registry.load import load_registry
        from fleet.rendering.cluster import render_cluster

        if mode not in ("auto", "operator", "direct"):
            raise InputError(f'--sync must be auto, operator or direct, not "{mode}"')
        r = reporter()
        path = repo_path(repo)
        reg = load_registry(path)
        spec = reg.get(name)
        from fleet.verify import require

        signed = require(path, rev or "HEAD")  # fleet.yaml's verify: before anything is reached or moved
        if signed is not None:
            r.ok(signed.describe())
        target = kubeconfig_for(spec)
        # bad input fails here, before anything moves; what was verified is what is rendered
        rendered = render_cluster(path, name, signed.revision if signed is not None else rev)
        from fleet.locks import cluster_lock
        from fleet.operator import decide_sync, operator_for

        op = operator_for(reg.settings)
        if not dry_run:  # a dry run is the objects' server-side dry run, whatever applies them
            installed: bool | None = None
            if mode != "direct" and op.kind != "none":
                from fleet.adapters.kube import Kube

                kube = Kube.connect(target)
                try:
                    installed = op.installed(kube)
                finally:
                    kube.close()
            decision = decide_sync(mode, op, name, installed=installed)
            r.step(f"sync {decision.mode}: {decision.reason}")
            if decision.mode == "operator":
                from clusters import program as cluster_program
                from fleet.cli.common import engine_settings
                from fleet.cli.gate import parse_duration
                from fleet.live.gates import gate_timeout
                from fleet.operator import gate_config
                from fleet.operator.sync import promote
                from fleet.provision import check_operator_can_fetch, provision

                check_operator_can_fetch(path, name, rendered.revision)
                from fleet.sops import require_intact_commit

                # a commit whose SOPS MACs do not verify is never pinned, whatever the operator would do with it
                require_intact_commit(reg.settings, path, rendered.objects, f"commit {rendered.revision[:12]}")

                wait = parse_duration(timeout) if timeout else float(gate_timeout(reg.settings, spec))
                engine = engine_settings()
                with cluster_lock(name, f"fleet sync {name}"):
                    promoted = promote(
                        op, target, rendered.revision, reg.settings.git.branch,
                        gate_config(reg.settings, spec, operator_gate="on"), timeout=wait, reporter=r,
                        pin=lambda: provision(path, name, program=cluster_program, reporter=r,
                                              pin_revision=rendered.revision, engine=engine))
                emit(promoted, output, columns=["cluster", "revision", "previous", "mode", "fetched", "ready", "time"],
                     rows=lambda p: [(p.cluster, p.revision[:12], p.previous[:12] or "-", p.mode, p.fetched_at,
                                      p.ready_at, f"{p.duration_s:.1f}s")])
                return
        from fleet.sops import key_for

        key = key_for(reg.settings, path)  # the fleet uses SOPS: decrypted in memory by the sync
        with cluster_lock(name, f"fleet sync {name}"):
            result = sync(target, rendered.objects, rendered.revision, prune=prune, dry_run=dry_run, reporter=r,
                          age_keys=[key] if key else ())
        emit(result, output, columns=["cluster", "revision", "previous", "objects", "created", "updated", "unchanged",
                                      "pruned", "kept", "dry-run", "time"], rows=_rows)
