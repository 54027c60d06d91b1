"""Kustomize builds of a directory of the fleet repo at a revision, read from Git (never the working
tree), and a build rendered for one cluster: its variables substituted with Flux
``postBuild.substitute`` semantics (:class:`Rendered`). :mod:`fleet.rendering.cluster` picks what a cluster
builds (its environment's overlay, or a Flux cluster directory through :mod:`fleet.rendering.fluxrender`); both
build here.

Builds are cached by the content of their inputs: the Git object ids of every file and directory the
overlay's kustomizations reference (found by following them), so a thousand clusters over five
environments run kustomize five times, and a commit that touches only ``clusters/`` runs it not at all.
The cache is in-process and on disk (``fleet_home()/cache/render``); substitution is per cluster on top.

Rendering is confined to the repository by construction: each build runs in fleet-build
(:mod:`fleet.adapters.fluxbuild`: Flux's kustomize library on its secure filesystem) rooted at a private
temporary directory holding only files of the tree at the revision, so nothing outside it can be opened,
and within time, memory and size limits. Before that, :mod:`fleet.rendering.confine` checks every path
the overlay's kustomizations name, for a clear error line (file, line, key); nothing depends on it.
A disk cache entry carries an HMAC of its key and content under a private per-home secret; an entry that
does not verify is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import posixpath
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fleet.adapters import fluxbuild
from fleet.errors import BuildLimit, FleetError, NotFound, RenderError
from fleet.paths import discard, fleet_home, read_sealed, write_sealed
from fleet.registry.layout import DEFAULT_LAYOUT, Layout
from fleet.registry.load import (
    CLUSTERS_DIR,
    KUSTOMIZATION_FILES,
    layout_at,
    open_repo,
)
from fleet.registry.model import ClusterSpec
from fleet.rendering import cache as rendercache
from fleet.rendering.substitute import substitute

if TYPE_CHECKING:  # GitPython loads when a Git object is read, not for a render kept for its commit
    from fleet.adapters.git import GitRepo, Snapshot

__all__ = [
    "BUILTIN_VARS",
    "Doc",
    "Rendered",
    "as_json",
    "build_directory",
    "build_inputs",
    "build_overlay",
    "clear_cache",
    "cluster_vars",
    "inputs",
    "overlay_dir",
    "render_overlay",
    "stats",
    "substitute",
]

BUILTIN_VARS = ("FLEET_CLUSTER", "FLEET_ENVIRONMENT", "FLEET_REGION", "FLEET_PROVIDER", "FLEET_WAVE")
_CACHE_VERSION = "fleet-render-v2"
_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"
_DOC_SPLIT = re.compile(r"^---[ \t]*\n", re.MULTILINE)
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MEMO_SIZE = 512  # builds kept in-process: a Flux repo expands to hundreds (bench/flux_expand_bench.py)


@dataclass(frozen=True)
class Rendered:
    cluster: str
    revision: str  # full commit id
    objects: tuple[dict[str, Any], ...]  # in kustomize's order
    text: str  # multi-document YAML
    digest: str  # sha256 of text
    notes: tuple[str, ...] = ()  # what the render could not include, said on stderr (a Flux tree's unresolved)

    @property
    def short(self) -> str:
        return self.revision[:12]


@dataclass(frozen=True)
class _Doc:
    text: str
    ref: str  # "Kind/namespace/name", for messages
    substitute: bool
    data: str | None = None  # the object as JSON (parsed once, kept with the build), None when JSON cannot hold it


Doc = _Doc  # one built object: its text, "Kind/namespace/name", and whether substitution applies


@dataclass(frozen=True)
class _Build:
    key: str
    docs: tuple[_Doc, ...]


_memo: OrderedDict[str, _Build] = OrderedDict()
_inputs_memo: dict[tuple[str, str, str], tuple[bool, tuple[str, ...]]] = {}
_key_memo: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}
_lock = threading.Lock()
_stats = {"kustomize_runs": 0, "memo_hits": 0, "disk_hits": 0}


def stats() -> dict[str, int]:
    """Counters since the last :func:`clear_cache`: kustomize runs, in-process and on-disk cache hits."""
    return dict(_stats)


def clear_cache(*, disk: bool = False) -> None:
    """Forget the in-process cache (and the on-disk one with ``disk``); reset :func:`stats`."""
    with _lock:
        _memo.clear()
        _inputs_memo.clear()
        _key_memo.clear()
        for k in _stats:
            _stats[k] = 0
    if disk:
        import shutil

        shutil.rmtree(_cache_dir(), ignore_errors=True)


def cluster_vars(spec: ClusterSpec) -> dict[str, str]:
    """The variables substituted for a cluster: fleet's built-ins, then the cluster's ``vars`` (which win).

    The operator's Flux Kustomization must carry the same (``postBuild.substitute``).
    """
    builtin = {
        "FLEET_CLUSTER": spec.name,
        "FLEET_ENVIRONMENT": spec.environment,
        "FLEET_REGION": spec.region,
        "FLEET_PROVIDER": spec.provider,
        "FLEET_WAVE": str(spec.wave),
    }
    return {**builtin, **spec.vars}


def overlay_dir(environment: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """The overlay directory of ``environment`` (fleet.yaml's ``environments.path``, default
    ``environments/{env}``)."""
    return layout.overlay_dir(environment)


# ---- inputs: what kustomize reads -------------------------------------------------------------


def _strings(node: Any, seen: set[int] | None = None, depth: int = 0) -> Iterable[str]:
    """Every string in ``node``; a container reached twice (a YAML alias) is walked once, so an alias
    bomb (a billion laughs) costs its size in nodes, not its expansion."""
    seen = set() if seen is None else seen
    if isinstance(node, str):
        yield node
    elif isinstance(node, (dict, list)):
        if id(node) in seen or depth > 64:
            return
        seen.add(id(node))
        for v in node.values() if isinstance(node, dict) else node:
            yield from _strings(v, seen, depth + 1)


def _is_remote(s: str) -> bool:
    return "://" in s or s.startswith(("github.com/", "gitlab.com/", "bitbucket.org/", "git@"))


def _walk_inputs(snap: Snapshot, start: str, override: Any = None) -> tuple[str, ...] | None:
    """Repo paths the kustomization in ``start`` reads, following every path-like string it holds
    (``override``: the parsed kustomization used in ``start`` instead of its file, as Flux writes one).

    None when that cannot be known (a remote resource, a kustomization that is not YAML): the caller
    then keys on the whole tree but ``clusters/``.
    """
    found: set[str] = {start}
    queue = [start]
    seen: set[str] = set()
    while queue:
        d = queue.pop()
        if d in seen:
            continue
        seen.add(d)
        names = {e.name for e in snap.list_dir(d)}
        kfile = next((k for k in KUSTOMIZATION_FILES if k in names), None)
        if d == start and override is not None:
            data = override
        elif kfile is None:
            continue
        else:
            try:
                data = yaml.load(snap.read_file(f"{d}/{kfile}") or "", Loader=_YAML_LOADER)
            except (yaml.YAMLError, RecursionError):
                return None
        for s in _strings(data):
            if not s or "\n" in s or len(s) > 1024:
                continue
            if _is_remote(s):
                return None
            target = posixpath.normpath(posixpath.join(d, s.split("?", 1)[0]))
            if target == "." or target.startswith(("../", "/")) or target == "..":
                continue
            oid = snap.tree_id(target)
            if oid is None:
                continue
            found.add(target)
            if snap.list_dir(target):  # a directory: it may hold a kustomization of its own
                queue.append(target)
    # drop paths inside other found directories: the directory's tree id covers them
    dirs = sorted(found)
    return tuple(p for p in dirs if not any(p.startswith(q + "/") for q in dirs if q != p))


def _whole_tree(snap: Snapshot) -> tuple[str, ...]:
    """Every top-level path but the registry's folder (when it is one: an adopted Flux repo's registry
    lives deeper, and its ``clusters/`` holds what Flux builds)."""
    try:
        registry = layout_at(snap.repo, snap).registry
    except FleetError:
        registry = CLUSTERS_DIR
    return tuple(e.name for e in snap.list_dir("") if e.name != registry and e.kind != "submodule")


def inputs(
    repo: GitRepo | str | Path, environment: str, rev: str = "HEAD", layout: Layout | None = None
) -> tuple[str, ...]:
    """The repo paths (files or directories) the overlay of ``environment`` reads at ``rev``."""
    snap = open_repo(repo).snapshot(rev)
    directory = overlay_dir(environment, layout or layout_at(snap.repo, snap))
    return _input_paths(snap, directory, f'environment "{environment}"')[1]


def _input_paths(
    snap: Snapshot, directory: str, what: str = "", kustomization: str | None = None
) -> tuple[bool, tuple[str, ...]]:
    """(exact, paths): exact is False when fleet fell back to the whole tree but ``clusters/``."""
    sha = snap.commit
    memo_key = (str(snap.repo.git_dir), sha, directory + "\0" + (kustomization or ""))
    if memo_key in _inputs_memo:
        return _inputs_memo[memo_key]
    start = directory
    if snap.tree_id(start) is None:
        raise NotFound(f"{what or 'directory'} not found: {start}/ does not exist at {sha[:12]}".lstrip())
    from fleet.rendering.confine import check_overlay

    check_overlay(snap.repo, snap, start)  # nothing outside the tree, nothing remote
    override = yaml.load(kustomization, Loader=_YAML_LOADER) if kustomization is not None else None
    paths = _walk_inputs(snap, start, override)
    result = (True, paths) if paths is not None else (False, _whole_tree(snap))
    if len(_inputs_memo) > 4096:  # a long-lived process renders many revisions
        _inputs_memo.clear()
        _key_memo.clear()
    _inputs_memo[memo_key] = result
    return result


def _cache_key(
    snap: Snapshot, directory: str, what: str = "", kustomization: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """The content key of a build: kustomize's identity and the object id of every input path (and the
    kustomization written in place of the directory's own, when there is one)."""
    memo_key = (str(snap.repo.git_dir), snap.commit, directory + "\0" + (kustomization or ""))
    if memo_key in _key_memo:
        return _key_memo[memo_key]
    exact, paths = _input_paths(snap, directory, what, kustomization)
    h = hashlib.sha256(
        f"{_CACHE_VERSION}\n{_kustomize_identity()}\n{directory}\n{exact}\n".encode()
    )
    if kustomization is not None:
        h.update(f"kustomization {hashlib.sha256(kustomization.encode()).hexdigest()}\n".encode())
    for p in paths:
        h.update(f"{p} {snap.tree_id(p)}\n".encode())
    _key_memo[memo_key] = (h.hexdigest(), paths)
    return _key_memo[memo_key]


def _kustomize_identity() -> str:
    return rendercache.builder_identity()


# ---- building ---------------------------------------------------------------------------------


def _cache_dir() -> Path:
    return fleet_home() / "cache" / "render"


def _read_cached(disk: Path, key: str) -> str | None:
    """A disk cache entry's text when its seal verifies; a missing, unreadable, edited or foreign entry
    is None (and a bad one is removed), so the build runs again."""
    return read_sealed(disk, _CACHE_VERSION, key)


def _write_cached(disk: Path, key: str, text: str) -> None:
    """Store a build, sealed; a FLEET_HOME that cannot be written only means no disk cache, and a dry run
    (:func:`fleet.paths.no_writes`) does not fill it."""
    write_sealed(disk, _CACHE_VERSION, key, text)


def as_json(obj: Any) -> str | None:
    """``obj`` as JSON text when JSON gives it back exactly (mappings with string keys, lists, strings,
    booleans, integers, finite floats, null); None when YAML gave something more (a date, binary, ...)."""

    def plain(o: Any, depth: int) -> bool:
        if depth > 100:
            return False
        if o is None or isinstance(o, (str, bool, int)):
            return True
        if isinstance(o, float):
            return math.isfinite(o)
        if isinstance(o, list):
            return all(plain(v, depth + 1) for v in o)
        if isinstance(o, dict):
            return all(isinstance(k, str) and plain(v, depth + 1) for k, v in o.items())
        return False

    if not plain(obj, 0):
        return None
    return json.dumps(obj, separators=(",", ":"))


def _parts(text: str) -> list[str]:
    return [p if p.endswith("\n") else p + "\n" for p in _DOC_SPLIT.split(text) if p.strip()]


def _docs_file(disk: Path) -> Path:
    return disk.with_name(disk.name.removesuffix(".yaml") + ".docs.json")


def _read_docs(disk: Path, key: str, text: str) -> tuple[_Doc, ...] | None:
    """The build's objects as :func:`_split` found them, kept beside its entry (sealed as it is), so that a
    build from the disk cache is not parsed again; None when missing or not verified (then it is)."""
    path = _docs_file(disk)
    payload = read_sealed(path, _CACHE_VERSION, f"{key} docs")
    if payload is None:
        return None
    parts = _parts(text)
    with contextlib.suppress(ValueError, TypeError):
        meta = json.loads(payload)
        if isinstance(meta, list) and len(meta) == len(parts):
            return tuple(_Doc(body, str(ref), bool(sub), data if isinstance(data, str) else None)
                         for body, (ref, sub, data) in zip(parts, meta, strict=True))
    discard(path)
    return None


def _write_docs(disk: Path, key: str, docs: Sequence[_Doc]) -> None:
    """Keep the build's objects beside its entry (nothing in a dry run: a cache only)."""
    write_sealed(_docs_file(disk), _CACHE_VERSION, f"{key} docs", json.dumps([[d.ref, d.substitute, d.data]
                                                                              for d in docs]))


def _split(text: str) -> tuple[_Doc, ...]:
    docs = []
    for body in _parts(text):
        try:
            parsed = yaml.load(body, Loader=_YAML_LOADER)
        except yaml.YAMLError as e:
            raise RenderError(f"kustomize printed YAML fleet cannot read: {e}") from e
        obj = parsed or {}
        meta = obj.get("metadata") or {} if isinstance(obj, dict) else {}
        ref = (
            f"{obj.get('kind', '?')}/{meta.get('namespace') or '-'}/{meta.get('name', '?')}" if meta else "?"
        )
        off = any((meta.get(k) or {}).get(_DISABLED) == "disabled" for k in ("annotations", "labels"))
        docs.append(_Doc(body, ref, not off, as_json(parsed)))
    return tuple(docs)


def _kustomize(
    snap: Snapshot, directory: str, paths: Sequence[str], kustomization: str | None = None
) -> str:
    """Build ``directory`` with fleet-build (Flux's kustomize library): the files under ``paths`` of ``snap``
    are extracted into a private temporary directory, which is the builder's root: its filesystem opens
    nothing outside it (:mod:`fleet.adapters.fluxbuild`)."""
    with tempfile.TemporaryDirectory(prefix="fleet-render-") as tmp:
        root = Path(tmp).resolve()
        snap.extract(root, paths)
        if kustomization is not None:  # as Flux's kustomize-controller writes it into its copy of the source
            (root / directory).mkdir(parents=True, exist_ok=True)
            for name in KUSTOMIZATION_FILES:
                (root / directory / name).unlink(missing_ok=True)
            (root / directory / "kustomization.yaml").write_text(kustomization, encoding="utf-8")
        with _lock:
            _stats["kustomize_runs"] += 1
        try:
            return fluxbuild.build(root, directory)
        except RenderError as e:
            raise type(e)(f"kustomize build {directory} at {snap.commit[:12]} failed: {e.message}") from e


def build_overlay(repo: GitRepo | str | Path, environment: str, rev: str = "HEAD") -> str:
    """``kustomize build environments/<environment>`` at ``rev`` (cached), before substitution."""
    snap = open_repo(repo).snapshot(rev)
    directory = overlay_dir(environment, layout_at(snap.repo, snap))
    return "".join(d.text for d in _build(snap, directory, f'environment "{environment}"').docs)


def build_directory(g: GitRepo, sha: str | Snapshot, directory: str,
                    kustomization: str | None = None) -> tuple[Doc, ...]:
    """``kustomize build DIRECTORY`` at ``sha`` (a commit or a snapshot of one), confined and cached as an
    overlay's build, before substitution; ``kustomization`` is written in place of the directory's own (as
    Flux does)."""
    return _build(g.snapshot(sha), directory, "directory", kustomization).docs


def build_inputs(g: GitRepo, sha: str | Snapshot, directory: str,
                 kustomization: str | None = None) -> tuple[str, ...]:
    """The repo paths :func:`build_directory` reads for the same arguments (confined, as it is)."""
    return _input_paths(g.snapshot(sha), directory, "directory", kustomization)[1]


def _build(snap: Snapshot, directory: str, what: str = "", kustomization: str | None = None) -> _Build:
    key, paths = _cache_key(snap, directory, what, kustomization)
    with _lock:
        if key in _memo:
            _memo.move_to_end(key)
            _stats["memo_hits"] += 1
            return _memo[key]
    disk = _cache_dir() / key[:2] / f"{key}.yaml"
    cacheable = True
    cached = _read_cached(disk, key)
    if cached is not None:
        text = cached
        with _lock:
            _stats["disk_hits"] += 1
    else:
        try:
            text = _kustomize(snap, directory, paths, kustomization)
        except BuildLimit:
            raise  # over its time or memory budget: more of the tree cannot help
        except RenderError:
            whole = _whole_tree(snap)
            if tuple(paths) == whole:
                raise
            # kustomize read something fleet did not see: build from the whole tree, and do not cache
            # under a key that misses that input.
            text = _kustomize(snap, directory, whole, kustomization)
            cacheable = False
        if cacheable:
            _write_cached(disk, key, text)
    docs = _read_docs(disk, key, text) if cached is not None else None
    if docs is None:
        docs = _split(text)
        if cacheable:
            _write_docs(disk, key, docs)
    build = _Build(key, docs)
    if not cacheable:
        return build
    with _lock:
        _memo[key] = build
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return build


def _render(build: _Build, spec: ClusterSpec, sha: str, directory: str) -> Rendered:
    values = cluster_vars(spec)
    texts = []
    parsed: list[str | None] = []  # an object's JSON, when the build's parse of it still holds
    for doc in build.docs:
        if doc.substitute and "$" in doc.text:
            where = f' in {doc.ref} (cluster "{spec.name}", {directory} at {sha[:12]})'
            texts.append(substitute(doc.text, values, where=where))
            parsed.append(None)
        else:
            texts.append(doc.text)
            parsed.append(doc.data)
    text = "---\n".join(texts)
    try:
        objects = tuple(yaml.load(t, Loader=_YAML_LOADER) if data is None else json.loads(data)
                        for t, data in zip(texts, parsed, strict=True))
    except yaml.YAMLError as e:
        raise RenderError(f'cluster "{spec.name}": substituted manifests are not valid YAML: {e}') from e
    return Rendered(spec.name, sha, objects, text, hashlib.sha256(text.encode()).hexdigest())


def render_overlay(g: GitRepo, sha: str | Snapshot, spec: ClusterSpec, directory: str) -> Rendered:
    """The cluster ``spec`` rendered from the overlay ``directory`` at ``sha`` (a commit or a snapshot of one):
    built (cached), then its variables substituted."""
    snap = g.snapshot(sha)
    return _render(_build(snap, directory, f'environment "{spec.environment}"'), spec, snap.commit, directory)
