"""What a cluster whose registry entry names a Flux cluster directory (``source: {flux: clusters/prod-eu}``)
should run: the directory expanded as Flux would apply it (:mod:`fleet.rendering.fluxtree`), every build through
fleet's own machinery (:func:`fleet.rendering.build.build_directory`: read from Git at the revision, confined to
the tree, cached by the content of its inputs).

Each build gets the kustomization Flux's kustomize-controller would write into its copy of the source
(:func:`fleet.rendering.fluxtree.flux_kustomization`); the paths that adds (components, the files and directories of
a generated kustomization) are confined too, like everything a kustomization names.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from fleet.adapters.git import GitRepo
from fleet.errors import ConfigError, FluxTreeError, InputError
from fleet.registry.load import FLEET_FILE, parse_settings
from fleet.registry.model import ClusterSpec, FleetSettings
from fleet.rendering.build import Rendered, build_directory, build_inputs, cluster_vars
from fleet.rendering.confine import check_overlay
from fleet.rendering.fluxtree import (
    KUSTOMIZATION_FILES,
    ArtifactRequest,
    BuildRequest,
    BuiltDoc,
    ExpandedObject,
    Expansion,
    Unresolved,
    expand,
    flux_kustomization,
    operator_keys,
    operator_name,
    scan_resources,
)

if TYPE_CHECKING:
    from fleet.rendering.helm import Options as HelmOptions

__all__ = ["FluxRender", "clear_cache", "fleet_urls", "flux_inputs", "render_flux", "tree_data"]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_lock = threading.Lock()
_kustomizations: dict[str, dict[str, Any]] = {}  # blob id -> parsed kustomization (immutable by id)
_urls: dict[tuple[str, str, float], tuple[str, ...]] = {}


@dataclass(frozen=True)
class FluxRender:
    rendered: Rendered
    expansion: Expansion
    inputs: tuple[str, ...]  # every repo path the builds read


def clear_cache() -> None:
    """Forget what is kept in-process (parsed kustomizations and objects, remote URLs); the builds'
    caches are :func:`fleet.rendering.build.clear_cache`'s."""
    from fleet.rendering import fluxtree

    with _lock:
        _kustomizations.clear()
        _urls.clear()
    fluxtree.clear_cache()


def fleet_urls(g: GitRepo, settings: FleetSettings) -> tuple[str, ...]:
    """The URLs the fleet repo goes by: fleet.yaml's ``git.url`` and the remote's URL (asked of git once
    per remote and version of the repository's config)."""
    try:
        stamp = (g.git_dir / "config").stat().st_mtime
    except OSError:
        stamp = 0.0
    key = (str(g.git_dir), settings.git.remote, stamp)
    with _lock:
        remote = _urls.get(key)
    if remote is None:
        found = g.remote_url(settings.git.remote)
        remote = (found,) if found else ()
        with _lock:
            if len(_urls) > 256:
                _urls.clear()
            _urls[key] = remote
    return tuple(u for u in (settings.git.url, *remote) if u)


class _Builder:
    def __init__(self, g: GitRepo, sha: str) -> None:
        self.g, self.sha = g, sha
        self.inputs: set[str] = set()
        self._artifacts: dict[str, str] = {}  # an artifact's request (JSON) -> its composed tree

    def __call__(self, req: BuildRequest) -> Sequence[BuiltDoc]:
        g = self.g
        sha = self._artifact(req.artifact) if req.artifact is not None else self.sha
        where = f" of {req.artifact.ref}" if req.artifact is not None else ""
        who = f"Kustomization {req.kustomization}" if req.kustomization else "the cluster directory"
        entry = g.entry(sha, req.path)
        if entry is None or entry.kind != "dir":
            key = "spec.path: " if req.kustomization else ""
            at = f"the artifact{where}" if req.artifact is not None else f"the repository at {sha[:12]}"
            raise FluxTreeError(
                f'{who}: {key}"./{req.path}" is not a directory of {at}',
                hint="Flux fails such a Kustomization (kustomization path not found)",
                kustomization=req.kustomization, key="spec.path" if req.kustomization else None,
            )
        listing = {e.name: e.kind for e in g.list_dir(sha, req.path)}
        kfile = next((k for k in KUSTOMIZATION_FILES if listing.get(k) == "file"), None)
        existing: dict[str, Any] | None = None
        resources: list[str] = []
        if kfile is not None:
            existing = self._kustomization(sha, f"{req.path}/{kfile}".lstrip("/"))
        else:
            resources = scan_resources(req.path, lambda d: [(e.name, e.kind) for e in g.list_dir(sha, d)])
        override = flux_kustomization(existing, resources, req.spec, self._exists(sha, req.path), who)
        text = None
        if override is not None:
            self._confine(sha, req.path, override, existing, who)
            text = json.dumps(override, indent=1, default=str) + "\n"  # JSON is YAML, and quick to write
        if req.artifact is None:
            self.inputs.update(build_inputs(g, sha, req.path, text))
        else:
            build_inputs(g, sha, req.path, text)  # confined like any build; the repo paths are the artifact's
        return build_directory(g, sha, req.path, text)

    def _artifact(self, art: ArtifactRequest) -> str:
        """The tree of an ExternalArtifact made from the fleet repo (:mod:`fleet.rendering.artifacts`)."""
        from fleet.rendering.artifacts import compose

        key = json.dumps([art.aliases, art.copy, art.ignores], sort_keys=True, default=str)
        found = self._artifacts.get(key)
        if found is None:
            made = compose(self.g, self.sha, art.aliases, art.copy, art.where, art.ignores)
            self.inputs.update(made.origins)
            found = self.g.compose(made.files)
            self._artifacts[key] = found
        return found

    def _kustomization(self, sha: str, file: str) -> dict[str, Any]:
        """The directory's own kustomization, parsed (a copy: Flux's options are merged into it)."""
        entry = self.g.entry(sha, file)
        oid = entry.oid if entry is not None else ""
        with _lock:
            cached = _kustomizations.get(oid)
        if cached is None:
            try:
                data = yaml.load(self.g.read_file(sha, file) or "", Loader=_LOADER)
            except (yaml.YAMLError, RecursionError) as e:
                raise ConfigError(f"not YAML fleet can read: {' '.join(str(e).split())[:200]}", file=file) from None
            cached = data if isinstance(data, dict) else {}
            with _lock:
                if len(_kustomizations) > 4096:
                    _kustomizations.clear()
                _kustomizations[oid] = cached
        copy: dict[str, Any] = json.loads(json.dumps(cached, default=str))
        return copy

    def _exists(self, sha: str, base: str) -> Any:
        def exists(rel: str) -> bool:
            try:
                return self.g.resolve_path(sha, base, rel)[1] is not None
            except InputError:
                return False
        return exists

    def _confine(self, sha: str, base: str, kus: dict[str, Any], existing: dict[str, Any] | None, who: str) -> None:
        """What Flux adds to a kustomization must stay in the tree, like what the kustomization names."""
        added: list[tuple[str, str]] = []
        own = set((existing or {}).get("components") or [])
        added += [(f"spec.components[{i}]", c) for i, c in enumerate(kus.get("components") or []) if c not in own]
        if existing is None:
            added += [(f"resources[{i}] (generated)", r) for i, r in enumerate(kus.get("resources") or [])]
        for key, rel in added:
            try:
                target, kind = self.g.resolve_path(sha, base, rel)
            except InputError as e:
                quoted = f'"{rel}"'
                msg = e.message if e.message.startswith(quoted) else f"{quoted} leads through {e.message}"
                raise FluxTreeError(
                    f"{who}: {key}: {msg}", kustomization=who.removeprefix("Kustomization ")
                    if who.startswith("Kustomization ") else None, key=key.split(" ", 1)[0],
                    hint="fleet renders only what the repository holds at the revision (as Flux does)",
                ) from None
            if kind == "dir":
                check_overlay(self.g, sha, target)


def _settings_at(g: GitRepo, sha: str) -> FleetSettings:
    return parse_settings(g.read_file(sha, FLEET_FILE))


def render_flux(g: GitRepo, sha: str, spec: ClusterSpec, settings: FleetSettings | None = None, *,
                helm: HelmOptions | None = None) -> FluxRender:
    """Expand ``spec``'s Flux cluster directory at ``sha``; the directory itself is substituted with the
    cluster's variables (as the operator's Kustomization that applies it does). Where Flux is the fleet's
    operator, the tree's own sync objects (``flux bootstrap``'s GitRepository and Kustomization
    ``flux-system/flux-system``) are left out: fleet's, pinned, stand in their place on the cluster. With
    ``helm``, the HelmReleases of the tree are expanded as helm-controller would install them
    (:mod:`fleet.rendering.helm`): their objects follow the tree's, and a release left unresolved says why."""
    assert spec.source is not None
    settings = settings or _settings_at(g, sha)
    builder = _Builder(g, sha)
    owned = operator_keys(operator_name(True)) if settings.operator.kind == "flux" else ()
    try:
        exp = expand(
            spec.source.flux,
            builder,
            root_vars=cluster_vars(spec),
            fleet_urls=fleet_urls(g, settings),
            where=f' (cluster "{spec.name}" at {sha[:12]})',
            operator=owned,
        )
    except FluxTreeError as e:
        found = _locate(g, sha, spec.source.flux, e.kustomization, e.key) if e.kustomization else None
        if found is None:
            raise
        raise FluxTreeError(f"{found[0]}:{found[1]}: {e.message}", hint=e.hint, kustomization=e.kustomization,
                            key=e.key) from None
    if helm is not None:
        exp = _with_releases(g, sha, exp, helm)
    texts = [o.text if o.text.endswith("\n") else o.text + "\n" for o in exp.objects]
    text = "---\n".join(texts)
    notes = tuple(f"unresolved {u.kind} {u.name}: {u.note}" for u in exp.unresolved) + exp.notes
    rendered = Rendered(
        spec.name, sha, tuple(o.object for o in exp.objects), text, hashlib.sha256(text.encode()).hexdigest(), notes
    )
    return FluxRender(rendered, exp, tuple(sorted(builder.inputs)))


def _with_releases(g: GitRepo, sha: str, exp: Expansion, options: HelmOptions) -> Expansion:
    """``exp`` with its HelmReleases expanded: each release's objects under the Kustomization that applies
    the HelmRelease; the tree's generic unresolved line of a HelmRelease replaced by what was rendered, or
    by why it was not."""
    import dataclasses

    from fleet.rendering import helm

    done = helm.expand(g, sha, [o.object for o in exp.objects], options)
    node_of = {}
    for o in exp.objects:
        if helm.is_release(o.object):
            meta = o.object.get("metadata") or {}
            node_of[f"{meta.get('namespace') or 'default'}/{meta.get('name', '?')}"] = o.node
    objects = list(exp.objects)
    for r in done.releases:
        objects += [ExpandedObject(text, obj, node_of.get(r.id, "")) for text, obj in r.objects]
    skipped = {u.id: Unresolved("HelmRelease", u.id, u.source or "-", u.note, node_of.get(u.id, ""))
               for u in done.unresolved}
    unresolved = []  # in the tree's order: a release rendered leaves the list, one skipped says why
    for u in exp.unresolved:
        if u.kind != "HelmRelease":
            unresolved.append(u)
        elif u.name in skipped:
            unresolved.append(dataclasses.replace(skipped.pop(u.name), source=u.source))
    unresolved += skipped.values()
    return dataclasses.replace(exp, objects=tuple(objects), unresolved=tuple(unresolved))


def _value(node: Any, key: str) -> Any:
    """The value node of ``key`` in a composed YAML mapping node, or None."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _text(node: Any) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _line_of(node: Any, loc: list[str | int]) -> int:
    """The line of the deepest key (or item) of ``loc`` below a composed YAML node."""
    line: int = node.start_mark.line + 1
    for part in loc:
        if isinstance(part, str) and isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(part, int) and isinstance(node, yaml.SequenceNode) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


_KEY_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def _locate(g: GitRepo, sha: str, root: str, ks_id: str, key: str | None) -> tuple[str, int] | None:
    """The file and line (of ``key``) that define Kustomization ``namespace/name``: the cluster directory's
    files first, then the rest of the repository (for messages: best effort, bounded)."""
    ns, _, name = ks_id.partition("/")
    loc: list[str | int] = [int(p[1:-1]) if p.startswith("[") else p for p in _KEY_PART.findall(key or "")]

    def files(d: str, depth: int = 0) -> list[str]:
        out: list[str] = []
        for e in g.list_dir(sha, d) if depth < 12 else []:
            p = f"{d}/{e.name}" if d else e.name
            if e.kind == "dir":
                out += files(p, depth + 1)
            elif e.kind == "file" and e.name.endswith((".yaml", ".yml")):
                out.append(p)
        return out

    first = files(root)
    seen = set(first)
    for f in (first + [f for f in files("") if f not in seen])[:5000]:
        try:
            text = g.read_file(sha, f)
        except InputError:
            continue
        if not text or name not in text or "kustomize.toolkit.fluxcd.io" not in text:
            continue
        try:
            nodes = list(yaml.compose_all(text, Loader=_LOADER))
        except yaml.YAMLError:
            continue
        for node in nodes:
            meta = _value(node, "metadata")
            if (_text(_value(node, "kind")) == "Kustomization"
                    and _text(_value(node, "apiVersion")).startswith("kustomize.toolkit.fluxcd.io/")
                    and _text(_value(meta, "name")) == name
                    and (_text(_value(meta, "namespace")) or "flux-system") == ns):
                return f, _line_of(node, loc)
    return None


def flux_inputs(g: GitRepo, sha: str, spec: ClusterSpec) -> tuple[str, ...]:
    """The repo paths a Flux-directory cluster's render reads at ``sha`` (for history and dirty checks)."""
    return render_flux(g, sha, spec).inputs


def tree_data(done: FluxRender) -> dict[str, Any]:
    """``fleet render CLUSTER --tree -o json``: the graph, what is unresolved, and the notes."""
    exp = done.expansion
    return {
        "cluster": done.rendered.cluster,
        "revision": done.rendered.revision,
        "root": exp.root,
        "objects": len(exp.objects),
        "nodes": [
            {
                "kustomization": n.id or None,
                "path": n.path,
                "status": n.status,
                "objects": n.objects,
                "definedBy": n.parent if n.parent else (None if n.parent is None else exp.root),
                "dependsOn": list(n.depends_on),
                "source": n.source or None,
                "note": n.note or None,
            }
            for n in exp.nodes
        ],
        "unresolved": [
            {"kind": u.kind, "name": u.name, "source": u.source, "note": u.note, "definedBy": u.defined_by or exp.root}
            for u in exp.unresolved
        ],
        "notes": list(exp.notes),
        "replaced": list(exp.replaced),
    }
