"""``fleet render``: the manifests a cluster should run at a revision, read from Git."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import typer

from fleet.cli.common import RepoOpt, repo_path, reporter
from fleet.cli.kept import kept_render, warn_edits
from fleet.errors import InputError
from fleet.output import OutputFormat, emit, visible

if TYPE_CHECKING:
    from fleet.adapters.git import GitRepo
    from fleet.rendering.build import Rendered

_FORMATS = {f.value for f in OutputFormat}


def _check_out_dir(g: GitRepo, out: Path, clusters: list[str] | None) -> None:
    """Refuse an output directory that is the repository's own content or inside any ``.git``: render
    never changes the repository (a new, untracked directory inside the working tree is fine)."""
    real = out.resolve()
    names = [f"{c}.yaml" for c in clusters or ()] + ["index.json"]
    if ".git" in real.parts or real.is_relative_to(g.git_dir):
        raise InputError(f"-o {out}: refusing to write into a git directory")
    if real.is_relative_to(g.root):
        rel = real.relative_to(g.root).as_posix()
        if rel == ".":
            raise InputError(f"-o {out}: refusing to write into the repository's root", hint="use e.g. -o out/")
        parts = rel.split("/")
        tracked = g.tracked(["/".join(parts[: i + 1]) for i in range(len(parts))])
        if tracked:
            raise InputError(
                f"-o {out}: refusing to write into the repository's own content ({tracked[0]} is tracked)",
                hint="use a new directory, e.g. -o out/",
            )
    for n in names:
        if (real / n).is_symlink():
            raise InputError(f"-o {out}: {n} is a symlink; refusing to write through it")


def _write_dir(out: Path, rendered: list[Rendered]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for r in rendered:
            _replace(out / f"{r.cluster}.yaml", r.text)
        index = [{"cluster": r.cluster, "revision": r.revision, "digest": r.digest} for r in rendered]
        _replace(out / "index.json", json.dumps(index, indent=2) + "\n")
    except OSError as e:
        raise InputError(f"-o {out}: cannot write: {e.strerror or e}") from e


def _replace(path: Path, text: str) -> None:
    """Write by rename, so a symlink put in the way is replaced, never written through."""
    tmp = path.with_name(f".{path.name}.fleet-tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class _Shown(Protocol):
    """What is printed of a render: a :class:`fleet.rendering.cluster.Rendered`, or a :class:`fleet.cli.kept.Kept`."""

    @property
    def cluster(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def objects(self) -> tuple[dict[str, Any], ...]: ...


def _plain(r: _Shown) -> dict[str, object]:
    return {"cluster": r.cluster, "revision": r.revision, "digest": r.digest, "objects": list(r.objects)}


def _objects_row(r: _Shown) -> list[tuple[str, str, str, str]]:
    rows = []
    for o in r.objects:
        meta = o.get("metadata") or {}
        rows.append(
            (r.cluster, str(o.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))
        )
    return rows


def _warn_uncommitted(g: GitRepo, rendered: list[Rendered]) -> None:
    """Say so when the working tree has edits to what was rendered: fleet renders Git, not files."""
    from fleet.registry import load_registry
    from fleet.rendering.build import inputs

    sha = rendered[0].revision
    registry = load_registry(g, sha)
    # the rendered clusters' own registry files (their variables) and fleet.yaml count; other clusters' do not
    own = {f"{registry.layout.registry}/{r.cluster}.yaml" for r in rendered} | {"fleet.yaml"}
    dirty = [p for p in g.is_dirty(["."]) if not p.startswith(registry.layout.registry + "/") or p in own]
    if not dirty:
        return
    from fleet.rendering.fluxrender import flux_inputs  # only now: a clean tree (the usual case) never needs it

    specs = [registry.clusters[r.cluster] for r in rendered]
    envs = {s.environment for s in specs if s.source is None}
    watched = {p for e in envs for p in inputs(g, e, sha, registry.layout)}
    watched |= {p for s in specs if s.source is not None for p in flux_inputs(g, sha, s)}
    warn_edits(dirty, watched | own)


def _show(rendered: Sequence[_Shown], fmt: OutputFormat, all_: bool) -> None:
    if fmt is OutputFormat.yaml:
        typer.echo("---\n".join(r.text for r in rendered), nl=False)
        return
    data = [_plain(r) for r in rendered] if all_ else _plain(rendered[0])
    emit(
        data,
        fmt,
        list_kind="RenderList" if all_ else None,
        columns=["cluster", "kind", "namespace", "name"],
        rows=lambda _: [row for r in rendered for row in _objects_row(r)],
    )


def _helm_keys(g: GitRepo, rev: str | None) -> list[Any] | None:
    """With ``--decrypt``: the fleet's age key, so SOPS-encrypted valuesFrom Secrets of HelmReleases are
    decrypted in memory (None when the fleet uses no SOPS)."""
    from fleet import sops
    from fleet.registry import load_registry

    key = sops.key_for(load_registry(g, rev or "HEAD").settings, g.root)
    return [key] if key is not None else None


def _tree(g: GitRepo, cluster: str | None, all_: bool, rev: str | None, output: str, helm: bool = True) -> None:
    """``fleet render CLUSTER --tree``: the Flux Kustomization graph of a Flux-directory cluster."""
    from fleet.registry import load_registry
    from fleet.rendering.fluxrender import render_flux, tree_data
    from fleet.rendering.fluxtree import tree_lines

    if cluster is None or all_:
        raise InputError("--tree shows one cluster", hint="fleet render CLUSTER --tree")
    sha = g.resolve(rev or "HEAD")
    spec = load_registry(g, sha).get(cluster)
    if spec.source is None:
        raise InputError(
            f'cluster "{cluster}" renders the overlay of environment "{spec.environment}", not a Flux directory; '
            "--tree shows a Flux directory's Kustomization graph",
            hint="fleet render CLUSTER -o table lists what it renders",
        )
    options = None
    if helm:
        from fleet.rendering.cluster import helm_options

        options = helm_options(g, sha, None)
    done = render_flux(g, sha, spec, helm=options)
    for u in done.expansion.unresolved:
        if u.kind == "HelmRelease" and u.note.startswith("cannot reach"):
            reporter().warn(f"{cluster}: unresolved HelmRelease {u.name}: {u.note}")
    if output.lower() == OutputFormat.json.value:
        emit(tree_data(done), OutputFormat.json)
        return
    if output.lower() not in (OutputFormat.yaml.value, OutputFormat.table.value):
        raise InputError(f"-o {output}: --tree prints a table, or -o json")
    typer.echo("\n".join(visible(line) for line in tree_lines(done.expansion)))


def _secrets_shown(g: GitRepo, rendered: list[Rendered], decrypt: bool) -> list[Rendered]:
    """SOPS-encrypted objects redacted (or, with ``--decrypt``, decrypted in memory); the digest stays
    the revision's."""
    import dataclasses

    import yaml

    from fleet import sops
    from fleet.registry import load_registry

    keys = None
    if decrypt:
        key = sops.key_for(load_registry(g, rendered[0].revision if rendered else "HEAD").settings, g.root)
        if key is None:
            raise InputError("--decrypt: fleet.yaml has no secrets.sops (nothing is encrypted with SOPS)")
        keys = [key]
    out = []
    for r in rendered:
        objs = sops.shown_objects(r.objects, keys)
        if objs is None:
            out.append(r)
            continue
        text = yaml.safe_dump_all(objs, sort_keys=False)
        out.append(dataclasses.replace(r, objects=tuple(objs), text=text))
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        cluster: str | None = typer.Argument(None, help="The cluster to render (or --all)."),
        all_: bool = typer.Option(
            False, "--all", "-A", help="Render every cluster (or those --selector picks)."
        ),
        selector: str | None = typer.Option(None, "--selector", "-l", help="With --all: a label selector."),
        rev: str | None = typer.Option(None, "--rev", help="The revision to render (default HEAD)."),
        output: str = typer.Option(
            "yaml",
            "-o",
            "--output",
            help="yaml (manifests), json, table (objects), or a DIRECTORY to write CLUSTER.yaml files to.",
        ),
        tree: bool = typer.Option(
            False, "--tree", help="A Flux-directory cluster: its Kustomization graph with object counts (-o json)."
        ),
        decrypt: bool = typer.Option(
            False, "--decrypt", help="Show SOPS-encrypted values in clear (needs the fleet's age key; stdout only: "
            "never with -o DIR). Without it they show as [sops: encrypted].",
        ),
        no_helm: bool = typer.Option(
            False, "--no-helm", help="Leave HelmReleases as objects: no chart fetched, none expanded.",
        ),
        repo: Path | None = RepoOpt,
    ) -> None:
        if all_ == (cluster is not None):
            raise InputError(
                "name one cluster, or pass --all", hint="fleet render eu-1  |  fleet render --all -o out/"
            )
        if selector and not all_:
            raise InputError("--selector goes with --all")
        if cluster is not None and not tree and not decrypt and output.lower() in _FORMATS:
            kept = kept_render(repo_path(repo), cluster, rev)
            if kept is not None:
                _show([kept], OutputFormat(output.lower()), all_)
                return

        from fleet.registry import load_registry, open_repo
        from fleet.rendering.cluster import render_all, render_cluster

        g = open_repo(repo_path(repo))
        if tree:
            _tree(g, cluster, all_, rev, output, not no_helm)
            return
        out = Path(output).expanduser() if output.lower() not in _FORMATS else None
        if decrypt and out is not None:
            raise InputError("--decrypt prints to stdout only: fleet never writes decrypted secrets to disk")
        if out is not None:  # before anything runs: render never writes into the repository
            _check_out_dir(g, out, [cluster] if cluster else None)
        keys = _helm_keys(g, rev) if decrypt and not no_helm else None
        if cluster is not None:
            rendered = [render_cluster(g, cluster, rev, helm=not no_helm, keys=keys)]
        else:
            names = None
            if selector:
                names = [c.name for c in load_registry(g, rev or "HEAD").select(selector)]
            rendered = render_all(g, rev, names, helm=not no_helm, keys=keys)
        if rev is None and rendered:
            _warn_uncommitted(g, rendered)
        for r in rendered:
            for note in r.notes:
                reporter().warn(f"{r.cluster}: {note}")
        rendered = _secrets_shown(g, rendered, decrypt)

        if out is not None:
            _check_out_dir(g, out, [r.cluster for r in rendered])
            _write_dir(out, rendered)
            reporter().ok(
                f"rendered {len(rendered)} cluster(s) at {rendered[0].short if rendered else '-'} to {out}/"
            )
            return
        _show(rendered, OutputFormat(output.lower()), all_)
