"""``fleet provision`` and ``fleet destroy``: one Pulumi stack per cluster, through the Automation API.

The composition root: wires the Pulumi program of ``clusters/`` into :mod:`fleet.provision`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, engine_settings, repo_path, reporter, writes_nothing_when
from fleet.errors import InputError
from fleet.output import OutputFormat, emit
from fleet.stackconfig import parse_git_auth

if TYPE_CHECKING:  # the Pulumi SDK loads only when a provisioning command runs (CLI start-up time)
    from types import ModuleType

    from fleet.provision import DestroyResult, Program, ProvisionOutcome, ProvisionResult


def _p() -> ModuleType:
    import fleet.provision

    return fleet.provision


def _program() -> Program:
    from clusters import program

    return program


def _changes(changes: dict[str, int]) -> str:
    parts = [f"{n} {op}" for op, n in sorted(changes.items()) if n and op != "same"]
    return ", ".join(parts) or "no changes"


def _rows(results: list[ProvisionResult]) -> list[tuple[object, ...]]:
    return [
        (
            r.cluster,
            "preview" if r.preview else "up",
            _changes(r.changes),
            r.revision[:12] if r.revision else "branch",
            r.kubeconfig_path or "",
            f"{r.duration_s:.1f}s",
        )
        for r in results
    ]


_COLUMNS = ["cluster", "operation", "changes", "revision", "kubeconfig", "duration"]


def _git_auth(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        text = path.expanduser().read_text()
    except OSError as e:
        raise InputError(f"--git-auth: cannot read {path}: {e.strerror}") from e
    return parse_git_auth(text, source=str(path))


def register(app: typer.Typer) -> None:
    @app.command("provision")
    @writes_nothing_when("preview")
    def provision_cmd(
        cluster: str = typer.Argument(
            None, help="The cluster to provision (its registry entry).", show_default=False
        ),
        all_: bool = typer.Option(False, "--all", help="Provision every cluster (or those -l selects)."),
        selector: str = typer.Option(
            None, "-l", "--selector", help="With --all: a label selector.", show_default=False
        ),
        max_parallel: int = typer.Option(4, "--max-parallel", min=1, help="With --all: clusters at once."),
        preview: bool = typer.Option(False, "--preview", help="Show what would change; change nothing."),
        pin: str = typer.Option(
            None,
            "--pin",
            metavar="REV",
            help="Pin the operator to this commit (and read the registry there). Without it the pin the "
            "cluster's stack holds is kept.",
            show_default=False,
        ),
        follow_branch: bool = typer.Option(
            False, "--follow-branch", help="Unpin the operator: it follows the branch (sync moves the pin again)."
        ),
        refresh: bool = typer.Option(
            False, "--refresh", help="Refresh the stack's state from the cluster first."
        ),
        git_auth: Path = typer.Option(
            None,
            "--git-auth",
            metavar="FILE",
            show_default=False,
            help="YAML/JSON with the operator's Git credentials (username/password, "
            "bearerToken or identity/known_hosts); stored as a stack secret.",
        ),
        force_unlock: bool = typer.Option(
            False, "--force-unlock", help="Remove the stack's lock left by an update that died, first."
        ),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        if all_ == (cluster is not None):
            raise InputError(
                "give a CLUSTER or --all", hint="fleet provision eu-1, or fleet provision --all -l env=prod"
            )
        if selector and not all_:
            raise InputError("-l/--selector goes with --all")
        if preview and force_unlock:
            raise InputError("--force-unlock removes a lock; --preview changes nothing: give one of them")
        auth = _git_auth(git_auth)
        root = repo_path(repo)
        program = _program()
        engine = engine_settings()
        r = reporter()
        from fleet.registry.load import load_registry

        if pin and not preview:  # a commit whose SOPS MACs do not verify is never pinned (as sync and bootstrap)
            from fleet.rendering.cluster import render_cluster
            from fleet.sops import require_intact_commit

            reg = load_registry(root)
            for name in [cluster] if not all_ else [c.name for c in reg.select(selector)]:
                rendered = render_cluster(root, name, pin)
                require_intact_commit(reg.settings, root, rendered.objects, f"commit {rendered.revision[:12]}")
        if not all_:
            if force_unlock:
                for lock in _p().unlock(cluster, engine=engine):
                    r.warn(f'removed lock {lock.name} of stack "{cluster}"')
            res = _p().provision(
                root,
                cluster,
                program=program,
                reporter=r,
                preview=preview,
                pin_revision=pin,
                follow_branch=follow_branch,
                refresh=refresh,
                git_auth=auth,
                engine=engine,
            )
            emit(res, output, columns=_COLUMNS, rows=lambda d: _rows([d]))
            return
        if auth is not None or force_unlock or refresh:
            raise InputError("--git-auth, --force-unlock and --refresh go with one CLUSTER")
        names = [c.name for c in load_registry(root).select(selector)]
        if not names:
            raise InputError(
                f'no cluster matches "{selector}"' if selector else "the registry has no clusters"
            )
        r.step(f"provisioning {len(names)} clusters, {min(max_parallel, len(names))} at a time")
        outcomes = _p().provision_many(
            root,
            names,
            program=program,
            max_parallel=max_parallel,
            preview=preview,
            pin_revision=pin,
            reporter_for=lambda n: r.child(f"{n}: "),
            engine=engine,
        )
        _emit_many(outcomes, output)
        failed = [o for o in outcomes if o.error]
        if failed:
            r.fail(
                f"{len(failed)} of {len(outcomes)} clusters failed: {', '.join(o.cluster for o in failed)}"
            )
            raise typer.Exit(max(o.exit_code for o in failed))
        r.ok(f"{len(outcomes)} clusters provisioned")

    @app.command("drift")
    @writes_nothing_when(None)
    def drift_cmd(
        name: str = typer.Argument(..., help="The cluster whose stack to check."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.registry.model import DNS_LABEL, shown

        if not DNS_LABEL.match(name):  # a stack is named after a cluster: no such cluster, no such stack (exit 2)
            raise InputError(f'"{shown(name)}" is not a cluster name (a DNS label)')
        res = _p().drift(name, program=_program(), reporter=reporter(), engine=engine_settings())
        emit(res, output, columns=["op", "resource", "properties"],
             rows=lambda d: [(x["op"], x["resource"], ", ".join(x["properties"]) or "-") for x in d.resources])
        if res.drift:
            raise typer.Exit(1)

    @app.command("destroy")
    def destroy_cmd(
        cluster: str = typer.Argument(..., help="The cluster to destroy (its stack)."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        if not yes:
            if sys.stdin is None or not sys.stdin.isatty():
                raise InputError(
                    f'refusing to destroy cluster "{cluster}" without --yes (no terminal to ask)'
                )
            if not typer.confirm(
                f'Destroy cluster "{cluster}" and everything its stack created?', default=False
            ):
                raise typer.Abort()
        res = _p().destroy(cluster, program=_program(), reporter=reporter(), engine=engine_settings())
        emit(
            res,
            output,
            columns=["cluster", "existed", "changes", "duration"],
            rows=lambda d: [_destroy_row(d)],
        )


def _destroy_row(d: DestroyResult) -> tuple[object, ...]:
    return (
        d.cluster,
        d.existed,
        _changes(d.changes) if d.existed else "nothing to destroy",
        f"{d.duration_s:.1f}s",
    )


def _emit_many(outcomes: list[ProvisionOutcome], output: OutputFormat) -> None:
    if output is not OutputFormat.table:
        emit(outcomes, output, list_kind="ProvisionOutcomeList")
        return
    rows: list[tuple[object, ...]] = []
    for o in outcomes:
        if o.result is not None:
            rows.extend(_rows([o.result]))
        else:
            rows.append((o.cluster, "failed", o.error or "", "", "", ""))
    emit(rows, output, columns=_COLUMNS, rows=lambda d: d)
