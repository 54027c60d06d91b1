"""``fleet cluster add|list|show|set|remove``: the registry, one commit per change."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fleet.cli.commands import COMMANDS
from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.errors import InputError
from fleet.output import OutputFormat, emit
from fleet.registry.model import shown, text_problem

if TYPE_CHECKING:
    from fleet.registry import ClusterSpec, WriteResult

__all__ = ["parse_pairs", "register"]


def parse_pairs(values: list[str] | None, flag: str, *, typed: bool = False) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; with ``typed``, ints and booleans are converted."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f'{flag} "{shown(item, 40) if flag != "--var" else shown(key, 40)}": expected KEY=VALUE')
        problem = text_problem(key, 253)
        if problem:
            raise InputError(f"{flag}: the key {problem}")
        v: Any = value
        if typed:
            if value.lower() in ("true", "false"):
                v = value.lower() == "true"
            elif value.lstrip("-").isdigit():
                v = int(value)
        out[key.strip()] = v
    return out


def _said(r: WriteResult, verb: str) -> None:
    reporter().ok(f'{verb} cluster "{r.cluster}" ({r.file}) in {r.revision[:12]}: {r.message}')


def _row(c: ClusterSpec) -> tuple[str, ...]:
    labels = ",".join(f"{k}={v}" for k, v in c.labels.items())
    return (c.name, c.environment, c.provider, c.region, str(c.wave), labels)


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(help=COMMANDS["cluster"][1], no_args_is_help=True)
    app.add_typer(cluster, name="cluster")

    @cluster.command("add")
    def add(
        name: str = typer.Argument(..., help="Cluster name (a DNS label); the file is clusters/NAME.yaml."),
        env: str = typer.Option(..., "--env", "-e", help="Environment: the overlay environments/ENV runs."),
        region: str = typer.Option("local", "--region", help="Region (free text, used in selectors)."),
        provider: str = typer.Option("local", "--provider", help="local, kind, eks, gke or aks."),
        wave: int = typer.Option(0, "--wave", help="Rollout wave (0 first)."),
        label: list[str] = typer.Option([], "--label", "-l", help="A label KEY=VALUE (repeatable)."),
        var: list[str] = typer.Option([], "--var", help="A substitution variable KEY=VALUE (repeatable)."),
        setting: list[str] = typer.Option([], "--setting", help="A provider setting KEY=VALUE (repeatable)."),
        flux: str | None = typer.Option(
            None, "--flux", help="Render this Flux cluster directory (as Flux would) instead of the overlay."
        ),
        repo: Path | None = RepoOpt,
    ) -> None:
        """Add a cluster to the registry (one commit)."""
        from fleet.registry import add_cluster
        from fleet.registry.store import spec_from_input

        spec = spec_from_input(
            {
                "name": name,
                "environment": env,
                "region": region,
                "provider": provider,
                "wave": wave,
                "labels": parse_pairs(label, "--label"),
                "vars": parse_pairs(var, "--var"),
                "settings": parse_pairs(setting, "--setting", typed=True),
                **({"source": {"flux": flux}} if flux is not None else {}),
            }
        )
        _said(add_cluster(repo_path(repo), spec), "added")

    @cluster.command("list")
    def list_(
        selector: str | None = typer.Option(
            None, "--selector", "-l", help="Label selector, e.g. 'env=prod,region in (eu-1,eu-2)'."
        ),
        rev: str | None = typer.Option(None, "--rev", help="Read the registry at this revision."),
        output: OutputFormat = OutputOpt,
        repo: Path | None = RepoOpt,
    ) -> None:
        """List clusters (the working tree, or --rev)."""
        from fleet.registry import load_registry

        registry = load_registry(repo_path(repo), rev)
        found = registry.select(selector)
        emit(
            [c.model_dump(mode="json") for c in found] if output is not OutputFormat.table else found,
            output,
            columns=["name", "env", "provider", "region", "wave", "labels"],
            rows=lambda d: [_row(c) for c in d],
            list_kind="ClusterList",
        )
        if not found and output is OutputFormat.table:
            reporter().warn(
                "no clusters match" if selector else "no clusters yet: add one with `fleet cluster add`"
            )

    @cluster.command("show")
    def show(
        name: str,
        rev: str | None = typer.Option(None, "--rev", help="Read the registry at this revision."),
        output: OutputFormat = OutputOpt,
        repo: Path | None = RepoOpt,
    ) -> None:
        """Show one cluster: its entry, overlay, variables and last good revision."""
        from fleet.good import get_good
        from fleet.registry import cluster_file, load_registry, open_repo
        from fleet.rendering.build import cluster_vars, overlay_dir

        g = open_repo(repo_path(repo))
        registry = load_registry(g, rev)
        spec = registry.get(name)
        good = get_good(g, name)
        data = {
            **spec.model_dump(mode="json"),
            "file": cluster_file(name, registry.layout),
            "overlay": spec.source.flux if spec.source else overlay_dir(spec.environment, registry.layout),
            "substituted": cluster_vars(spec),
            "good": good.revision if good else None,
        }
        emit(
            data,
            output,
            columns=["field", "value"],
            rows=lambda d: [
                (k, ", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v)
                for k, v in d.items()
                if k not in ("apiVersion", "kind") and v not in (None, {}, "")
            ],
        )

    @cluster.command("set")
    def set_(
        name: str,
        env: str | None = typer.Option(None, "--env", "-e", help="Move to another environment."),
        region: str | None = typer.Option(None, "--region"),
        provider: str | None = typer.Option(None, "--provider"),
        wave: int | None = typer.Option(None, "--wave"),
        label: list[str] = typer.Option([], "--label", "-l", help="Set a label KEY=VALUE (repeatable)."),
        remove_label: list[str] = typer.Option([], "--remove-label", help="Remove a label KEY."),
        var: list[str] = typer.Option([], "--var", help="Set a variable KEY=VALUE (repeatable)."),
        remove_var: list[str] = typer.Option([], "--remove-var", help="Remove a variable KEY."),
        setting: list[str] = typer.Option([], "--setting", help="Set a provider setting KEY=VALUE."),
        remove_setting: list[str] = typer.Option([], "--remove-setting", help="Remove a provider setting."),
        repo: Path | None = RepoOpt,
    ) -> None:
        """Change a cluster's entry (one commit). The file is rewritten: comments in it are not kept."""
        from fleet.registry import ClusterUpdate, set_cluster

        update = ClusterUpdate(
            environment=env,
            provider=provider,
            region=region,
            wave=wave,
            labels=parse_pairs(label, "--label"),
            remove_labels=tuple(remove_label),
            vars=parse_pairs(var, "--var"),
            remove_vars=tuple(remove_var),
            settings=parse_pairs(setting, "--setting", typed=True),
            remove_settings=tuple(remove_setting),
        )
        _said(set_cluster(repo_path(repo), name, update), "updated")

    @cluster.command("remove")
    def remove(name: str, repo: Path | None = RepoOpt) -> None:
        """Remove a cluster from the registry (one commit). Its last good ref and audit notes stay."""
        from fleet.registry import remove_cluster

        _said(remove_cluster(repo_path(repo), name), "removed")
