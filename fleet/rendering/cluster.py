"""What a cluster should run at a revision, as registered at that revision: its environment's overlay
(:mod:`fleet.rendering.build`: built by kustomize from Git, never the working tree, with the cluster's variables
substituted with Flux ``postBuild.substitute`` semantics), or its Flux cluster directory expanded as
Flux would apply it (:mod:`fleet.rendering.fluxrender`). A cluster's whole render at a commit is kept
(:mod:`fleet.rendering.cache`), so rendering it again needs no build.

The builds and their caches live in :mod:`fleet.rendering.build`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.adapters import gitplain
from fleet.errors import ConfigError, NotFound, RenderError
from fleet.registry.layout import Layout
from fleet.registry.load import cluster_file, layout_at, load_registry, open_repo, parse_cluster
from fleet.registry.model import ClusterSpec
from fleet.rendering import cache as rendercache
from fleet.rendering.build import (
    Rendered,
    as_json,
    build_inputs,
    overlay_dir,
    render_overlay,
)

if TYPE_CHECKING:  # GitPython loads when a Git object is read, not for a render kept for its commit
    from fleet.adapters.git import GitRepo, Snapshot
    from fleet.rendering.helm import Options as HelmOptions

__all__ = ["helm_options", "render_all", "render_cluster", "render_spec"]


def _spec_at(snap: Snapshot, name: str, layout: Layout) -> ClusterSpec:
    sha = snap.commit
    file = cluster_file(name, layout)
    text = snap.read_file(file)
    if text is None:
        import difflib

        names = [e.name[:-5] for e in snap.list_dir(layout.registry) if e.name.endswith(".yaml")]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        raise NotFound(
            f'cluster "{name}" not found in {layout.registry}/ at {sha[:12]}',
            hint=f"did you mean {', '.join(close)}?" if close else None,
        )
    spec = parse_cluster(text, file)
    if spec.source is not None:
        return spec  # a Flux cluster directory: checked when it is expanded
    envs = layout.environments_in(
        lambda d: [e.name for e in snap.list_dir(d) if e.kind == "dir"],
        lambda d: [e.name for e in snap.list_dir(d) if e.kind == "file"],
    )
    if spec.environment not in envs:
        raise ConfigError(
            f'unknown environment "{spec.environment}"; {layout.environments_shown} has: '
            f"{', '.join(sorted(envs)) or 'none'}",
            file=file,
            key="environment",
        )
    return spec


def helm_options(g: GitRepo, sha: str | Snapshot, keys: Sequence[Any] | None) -> HelmOptions:
    """What :mod:`fleet.rendering.helm` needs at ``sha``: the fleet repo's URLs, fleet.yaml's helm.mirror, and
    ``keys`` (age keys for SOPS-encrypted valuesFrom Secrets; None leaves such releases unresolved)."""
    from fleet.registry.load import FLEET_FILE, parse_settings
    from fleet.rendering.fluxrender import fleet_urls
    from fleet.rendering.helm import Options

    settings = parse_settings(g.read_file(sha, FLEET_FILE))
    return Options(fleet_urls(g, settings), settings.helm.mirror, tuple(keys) if keys else None)


def _render_spec(snap: Snapshot, spec: ClusterSpec, layout: Layout, helm: bool = False,
                 keys: Sequence[Any] | None = None) -> Rendered:
    g, sha = snap.repo, snap.commit
    if spec.source is not None:  # imported here: GitPython and the Flux expansion only for such clusters
        from fleet.rendering.fluxrender import render_flux

        return render_flux(g, sha, spec, helm=helm_options(g, snap, keys) if helm else None).rendered
    rendered = render_overlay(g, snap, spec, overlay_dir(spec.environment, layout))
    if helm and any(isinstance(o, dict) and o.get("kind") == "HelmRelease" for o in rendered.objects):
        rendered = _with_releases(g, sha, rendered, helm_options(g, snap, keys))
    return rendered


def _with_releases(g: GitRepo, sha: str, rendered: Rendered, options: HelmOptions) -> Rendered:
    """An overlay's render with its HelmReleases expanded (:mod:`fleet.rendering.helm`): their objects after
    the overlay's, and a note for each release left unresolved."""
    import hashlib

    from fleet.rendering import helm

    done = helm.expand(g, sha, rendered.objects, options)
    objects = list(rendered.objects)
    texts = [rendered.text] if rendered.text.strip() else []
    for r in done.releases:
        for text, obj in r.objects:
            objects.append(obj)
            texts.append(text)
    text = "---\n".join(t if t.endswith("\n") else t + "\n" for t in texts)
    notes = rendered.notes + tuple(f"unresolved HelmRelease {u.id}: {u.note}" for u in done.unresolved)
    return Rendered(rendered.cluster, rendered.revision, tuple(objects), text,
                    hashlib.sha256(text.encode()).hexdigest(), notes)


def render_spec(g: GitRepo, sha: str | Snapshot, spec: ClusterSpec, layout: Layout, *, helm: bool = True,
                keys: Sequence[Any] | None = None) -> Rendered:
    """What ``spec`` (a registry entry read at commit ``sha``, or a snapshot of it) renders there: its
    overlay, or its Flux directory expanded, HelmReleases expanded (``helm``); through the content-keyed
    build cache, nothing kept (``fleet diff --base``)."""
    return _render_spec(g.snapshot(sha), spec, layout, helm, keys)


def render_cluster(repo: GitRepo | str | Path, name: str, rev: str | None = None, *, helm: bool = False,
                   keys: Sequence[Any] | None = None) -> Rendered:
    """The manifests cluster ``name`` should run at ``rev`` (default HEAD), as registered at ``rev``: its
    environment's overlay, or its Flux cluster directory expanded as Flux would (:mod:`fleet.rendering.fluxrender`).
    With ``helm`` (``fleet render``), its HelmReleases are expanded as helm-controller would install them
    (:mod:`fleet.rendering.helm`; ``keys`` decrypt SOPS-encrypted valuesFrom Secrets in memory); the sync
    and live paths leave them to the operator."""
    commit = None  # the commit plain git resolved: the snapshot is made of it, not of ``rev`` again
    if isinstance(repo, (str, Path)):  # a kept render is found with plain git, without GitPython
        found = gitplain.resolve(Path(repo), rev)
        commit = found[1] if found is not None else None
        hit = _kept(commit, name) if commit is not None else None
        if hit is not None:
            return hit
    snap = open_repo(repo).snapshot(commit or rev or "HEAD")
    if commit is None:
        hit = _kept(snap.commit, name)
        if hit is not None:
            return hit
    g = snap.repo
    layout = layout_at(g, snap)
    spec = _spec_at(snap, name, layout)
    rendered = _render_spec(snap, spec, layout, helm, keys)
    releases = any(isinstance(o, dict) and o.get("kind") == "HelmRelease" for o in rendered.objects)
    if spec.source is None and not releases:  # kept whole, for `fleet render` of this commit again
        _keep(snap, rendered, overlay_dir(spec.environment, layout), layout)  # (fleet.rendering.cache)
    return rendered


def _kept(sha: str, name: str) -> Rendered | None:
    """The render of ``name`` at commit ``sha`` kept by an earlier one (:mod:`fleet.rendering.cache`)."""
    kept = rendercache.load(sha, name)
    if kept is None or kept.objects is None:
        return None
    return Rendered(name, sha, tuple(json.loads(kept.objects)), kept.text, kept.digest)


def _keep(snap: Snapshot, r: Rendered, directory: str, layout: Layout) -> None:
    from fleet.sops import is_encrypted

    paths = build_inputs(snap.repo, snap, directory)
    plain = all(isinstance(o, dict) and not is_encrypted(o) for o in r.objects)
    rendercache.store(rendercache.Result(r.cluster, r.revision, r.text, r.digest, paths, layout.registry, plain,
                                         as_json(list(r.objects))))


def render_all(
    repo: GitRepo | str | Path, rev: str | None = None, names: Sequence[str] | None = None, *, helm: bool = False,
    keys: Sequence[Any] | None = None,
) -> list[Rendered]:
    """Every cluster (or ``names``) at ``rev``, sorted by name; each overlay built once.

    Failures are gathered: one RenderError names the first and counts the rest.
    """
    snap = open_repo(repo).snapshot(rev or "HEAD")
    registry = load_registry(snap.repo, snap)
    specs = [registry.get(n) for n in names] if names is not None else list(registry.clusters.values())
    out: list[Rendered] = []
    errors: list[tuple[str, RenderError]] = []
    for spec in sorted(specs, key=lambda s: s.name):
        try:
            out.append(_render_spec(snap, spec, registry.layout, helm, keys))
        except RenderError as e:
            errors.append((spec.name, e))
    if errors:
        first = errors[0][1]
        more = (
            f" ({len(errors)} clusters failed: {', '.join(n for n, _ in errors[:5])}"
            + (", ..." if len(errors) > 5 else "")
            + ")"
            if len(errors) > 1
            else ""
        )
        raise RenderError(first.message + more, hint=first.hint)
    return out
