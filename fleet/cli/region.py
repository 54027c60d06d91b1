"""``fleet region add|list``: a new region's registry entries, modelled on an existing region, in one commit."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fleet.cli.commands import COMMANDS
from fleet.cli.common import OutputOpt, RepoOpt, dry_run_writes_nothing, repo_path, reporter
from fleet.output import OutputFormat, emit, visible_text

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    region = typer.Typer(help=COMMANDS["region"][1], no_args_is_help=True)
    app.add_typer(region, name="region")

    @region.command("add")
    @dry_run_writes_nothing
    def add(
        name: str = typer.Argument(..., metavar="REGION", help="The new region."),
        source: str = typer.Option(..., "--from", help="The region whose clusters the new ones are modelled on."),
        env: list[str] = typer.Option([], "--env", "-e", help="Only model the clusters of this environment "
                                      "(repeatable)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the entries; write nothing."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Add a region: one entry per cluster of --from (region substituted in names, labels and variables;
        same environment, wave, provider and settings), shown, then written in one commit."""
        from fleet.registry.region import plan_region, write_region

        path = repo_path(repo)
        plan = plan_region(path, name, source, environments=tuple(env))
        if output is OutputFormat.table:  # shown before it is written
            for e in plan.entries:
                sys.stdout.write(visible_text(f"# {e.file} (modelled on {e.source})\n{e.text}---\n"))
            sys.stdout.flush()
        written = None if dry_run else write_region(path, plan)
        if output is not OutputFormat.table:
            emit({
                "region": plan.region, "from": plan.source_region, "dry_run": dry_run,
                "revision": written.revision if written else None, "message": plan.message,
                "clusters": [{"name": e.spec.name, "from": e.source, "file": e.file,
                              "spec": e.spec.model_dump(mode="json", exclude_none=True)} for e in plan.entries],
            }, output)
        r = reporter()
        for d in plan.dropped:
            r.warn(f"not copied: {d}")
        if written is None:
            r.ok(f"dry run: {len(plan.entries)} clusters of region {plan.region} shown; nothing written")
        else:
            r.ok(f"added region {plan.region} ({', '.join(written.clusters)}) in {written.revision[:12]}")
            r.step(f"bring it up wave by wave: fleet rollout -l region={plan.region}")

    @region.command("list")
    def list_(
        rev: str = typer.Option(None, "--rev", help="Read the registry at this revision."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        """List the regions of the registry: clusters, environments and waves in each."""
        from fleet.registry import load_registry

        reg = load_registry(repo_path(repo), rev)
        regions: dict[str, list[str]] = {}
        for c in reg.clusters.values():
            regions.setdefault(c.region, []).append(c.name)
        data = [
            {
                "region": name,
                "clusters": names,
                "environments": sorted({reg.clusters[n].environment for n in names}),
                "waves": sorted({reg.clusters[n].wave for n in names}),
            }
            for name, names in sorted(regions.items())
        ]
        emit(data, output, list_kind="RegionList", columns=["region", "clusters", "environments", "waves"],
             rows=lambda d: [(x["region"], ",".join(x["clusters"]), ",".join(x["environments"]),
                              ",".join(map(str, x["waves"]))) for x in d])
