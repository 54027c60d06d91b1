"""``fleet diff --base REV [--head REV]``: what a change does to every cluster, object by object, offline.

Both revisions are read from Git (never the working tree, never a cluster). For every cluster of either
registry (or those a selector picks), an **input key** is computed at each revision: the cluster's entry
(its variables, environment, wave, ...), the directory it builds and the Git object id of every path
that build reads (:func:`fleet.rendering.build.build_inputs`; a Flux-directory cluster reads the whole tree
but the registry, and so does an overlay whose files hold a HelmRelease with a chart from a GitRepository).
Equal keys mean the same render, so the cluster is unchanged without being built or substituted: a
change to one overlay of a thousand-cluster fleet renders only the clusters of that overlay, twice.
Clusters whose keys differ are rendered at both revisions (:func:`fleet.rendering.cluster.render_spec`,
through the content-keyed build cache; HelmReleases expanded, :mod:`fleet.rendering.helm`) and their
objects compared by (group, kind, namespace, name): added, removed, or changed with a unified diff of the
object's fields (YAML, keys sorted).

A Secret, and any object holding SOPS-encrypted values, is only ever reported as changed or unchanged:
no diff, no value, in any output. A cluster whose render fails at either revision is listed as failed
with its one line; the others are still compared.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from fleet.errors import FleetError, InputError
from fleet.registry.layout import Layout
from fleet.registry.load import Registry, load_registry, open_repo
from fleet.registry.model import ClusterSpec

if TYPE_CHECKING:
    from pathlib import Path

    from fleet.adapters.git import GitRepo
    from fleet.rendering.build import Rendered

__all__ = ["ClusterChange", "ObjectChange", "RevisionDiff", "check_revision", "diff_objects", "diff_revisions"]

# a revision must name the same commit on every machine: a reflog entry (HEAD@{yesterday}, main@{2}) names
# what this clone did, which a CI job's fresh clone does not have
_REFLOG = re.compile(r"@\{")

# (g, sha, spec, layout) -> the render; fleet.rendering.cluster.render_spec unless a test passes its own
Render = Callable[["GitRepo", str, ClusterSpec, Layout], "Rendered"]


@dataclass(frozen=True)
class ObjectChange:
    object: str  # "Kind/namespace/name" ("-" for a cluster-scoped object's namespace)
    change: str  # added | removed | changed
    secret: bool  # a Secret or SOPS-encrypted: only that it changed is said, never its values
    diff: str  # a unified diff of the object's fields (changed, not secret); "" otherwise


@dataclass(frozen=True)
class ClusterChange:
    cluster: str
    wave: int
    environment: str
    status: str  # unchanged | changed | added | removed | failed
    rendered: bool  # its inputs differed: rendered at both revisions
    added: int
    removed: int
    changed: int
    unchanged: int | None  # objects the same at both revisions (null when not rendered)
    objects: tuple[ObjectChange, ...]
    error: str | None = None  # failed: the one line of the render that failed, and at which revision


@dataclass(frozen=True)
class RevisionDiff:
    base: str  # full commit ids
    head: str
    clusters: tuple[ClusterChange, ...]  # by wave, then name
    rendered: int  # clusters rendered (their inputs differed), each at both revisions
    duration_s: float

    @property
    def changes(self) -> bool:
        return any(c.status != "unchanged" for c in self.clusters)

    @property
    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.clusters)


def check_revision(rev: str, option: str) -> str:
    """Refuse a revision that does not name one commit the same way everywhere (a reflog entry) or that
    looks like an option; the rest is :meth:`GitRepo.resolve`'s to refuse (a missing commit)."""
    shown = rev if len(rev) <= 60 and rev.isprintable() else repr(rev[:60])
    if not rev.strip():
        raise InputError(f"{option}: an empty revision")
    if rev.startswith("-"):
        raise InputError(f'{option} "{shown}": a revision cannot start with "-" (it reads as an option)',
                         hint=f"{option} main, {option} HEAD~1, or a commit id")
    if _REFLOG.search(rev):
        raise InputError(
            f'{option} "{shown}": a reflog revision (@{{...}}) names what this clone did, not a commit',
            hint="name a commit id, a branch or a tag (a CI job: the pull request's base commit)",
        )
    return rev


# ---- input keys -------------------------------------------------------------------------------------


class _Keys:
    """Input keys of clusters at one revision, each overlay's inputs walked once."""

    def __init__(self, g: GitRepo, sha: str, registry: Registry) -> None:
        self.g, self.sha, self.registry = g, sha, registry
        self._dirs: dict[str, str | None] = {}
        self._charts: dict[str, bool] = {}
        self._tree: str | None = None

    def key(self, spec: ClusterSpec) -> str | None:
        """None when the inputs cannot be told (the overlay is missing or not confined): then the cluster is
        rendered, and fails with the render's own line."""
        h = hashlib.sha256(spec.model_dump_json().encode())  # the entry: variables, environment, wave, ...
        if spec.source is None:
            directory = self.registry.layout.overlay_dir(spec.environment)
            inputs = self._overlay(directory)
            if inputs is None:
                return None
            h.update(b"overlay\n" + inputs.encode())
            if self._repo_charts(directory):  # a HelmRelease's chart may be any directory of the repo
                h.update(b"charts\n" + self._whole().encode())
        else:
            h.update(b"flux\n" + self._whole().encode())
        return h.hexdigest()

    def _overlay(self, directory: str) -> str | None:
        if directory not in self._dirs:
            from fleet.rendering.build import build_inputs

            try:
                paths = build_inputs(self.g, self.sha, directory)
            except FleetError:
                self._dirs[directory] = None
            else:
                self._dirs[directory] = directory + "\n" + "".join(f"{p} {self.g.tree_id(self.sha, p)}\n"
                                                                   for p in paths)
        return self._dirs[directory]

    def _repo_charts(self, directory: str) -> bool:
        """Whether the overlay's files may hold a HelmRelease whose chart comes from a GitRepository (the
        fleet repo, whose chart directory is not among the overlay's inputs): then the key covers the tree."""
        if directory not in self._charts:
            from fleet.rendering.build import build_inputs

            found = False
            try:
                queue = list(build_inputs(self.g, self.sha, directory))
            except FleetError:
                queue = []
            seen = 0
            while queue and not found and seen < 5000:
                path = queue.pop()
                seen += 1
                entry = self.g.entry(self.sha, path)
                if entry is None:
                    continue
                if entry.kind == "dir":
                    queue += [f"{path}/{e.name}" for e in self.g.list_dir(self.sha, path)]
                elif entry.kind == "file" and path.endswith((".yaml", ".yml", ".json")):
                    text = self.g.read_blob(entry.oid)
                    found = b"helm.toolkit.fluxcd.io" in text and b"GitRepository" in text
            self._charts[directory] = found or bool(queue)  # too many files to look through: assume so
        return self._charts[directory]

    def _whole(self) -> str:
        """Every path of the tree but the registry's folder (a Flux directory can read anything else)."""
        if self._tree is None:
            skip = [p for p in self.registry.layout.registry.split("/") if p]
            lines: list[str] = []
            here = ""
            for depth, part in enumerate(skip):
                for e in self.g.list_dir(self.sha, here):
                    if e.name != part:
                        lines.append(f"{here}/{e.name} {e.oid}" if here else f"{e.name} {e.oid}")
                here = f"{here}/{part}" if here else part
                if depth == len(skip) - 1:
                    break
            self._tree = "".join(f"{x}\n" for x in sorted(lines))
        return self._tree


# ---- comparing objects ------------------------------------------------------------------------------


def _group(obj: Mapping[str, Any]) -> str:
    api = str(obj.get("apiVersion") or "")
    return api.rsplit("/", 1)[0] if "/" in api else ""


def _ident(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    return (_group(obj), str(obj.get("kind") or "?"), str(meta.get("namespace") or ""), str(meta.get("name") or "?"))


def _ref(ident: tuple[str, str, str, str]) -> str:
    return f"{ident[1]}/{ident[2] or '-'}/{ident[3]}"


def _secret(obj: Mapping[str, Any] | None) -> bool:
    """A Secret (core group), or an object carrying SOPS-encrypted values: never shown, only compared."""
    if obj is None:
        return False
    from fleet.sops import is_encrypted

    return (obj.get("kind") == "Secret" and _group(obj) == "") or is_encrypted(obj)


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _yaml(obj: Mapping[str, Any]) -> list[str]:
    text: str = yaml.dump(dict(obj), Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text.splitlines(keepends=True)


def diff_objects(
    base: Sequence[Mapping[str, Any]], head: Sequence[Mapping[str, Any]], base_label: str = "base",
    head_label: str = "head",
) -> tuple[list[ObjectChange], int]:
    """The objects added, removed and changed from ``base`` to ``head`` (sorted by object), and how many
    are the same. Secrets and SOPS-encrypted objects carry no diff."""
    a = {_ident(o): o for o in base if isinstance(o, dict)}
    b = {_ident(o): o for o in head if isinstance(o, dict)}
    out: list[ObjectChange] = []
    same = 0
    for ident in sorted(a.keys() | b.keys(), key=lambda i: (_ref(i), i[0])):
        old, new = a.get(ident), b.get(ident)
        ref = _ref(ident)
        secret = _secret(old) or _secret(new)
        if old is None:
            out.append(ObjectChange(ref, "added", secret, ""))
        elif new is None:
            out.append(ObjectChange(ref, "removed", secret, ""))
        elif old == new:
            same += 1
        else:
            text = "" if secret else "".join(difflib.unified_diff(
                _yaml(old), _yaml(new), fromfile=f"{base_label}/{ref}", tofile=f"{head_label}/{ref}"))
            out.append(ObjectChange(ref, "changed", secret, text))
    return out, same


# ---- the service ------------------------------------------------------------------------------------


def _registry(g: GitRepo, sha: str, side: str, like: tuple[Registry, str] | None = None) -> Registry:
    """The registry at ``sha``; with ``like`` (the head's registry and commit), an entry whose file is the
    same blob there is taken from it rather than read and parsed again (a thousand files cost seconds)."""
    try:
        return _reusing(g, sha, *like) if like is not None else load_registry(g, sha)
    except FleetError as e:
        e.hint = f"(the registry at {side} {sha[:12]})" + (f"; {e.hint}" if e.hint else "")
        raise


def _reusing(g: GitRepo, sha: str, other: Registry, other_sha: str) -> Registry:
    from fleet.registry.load import FLEET_FILE, cluster_file, parse_cluster, parse_settings

    settings = parse_settings(g.read_file(sha, FLEET_FILE))
    layout = settings.layout
    if layout.registry != other.layout.registry:
        return load_registry(g, sha)
    known = {e.name: e.oid for e in g.list_dir(other_sha, layout.registry)}
    clusters: dict[str, ClusterSpec] = {}
    for e in g.list_dir(sha, layout.registry):
        if e.name.startswith(".") or not e.name.endswith((".yaml", ".yml")):
            continue
        stem = e.name.removesuffix(".yaml")
        if e.kind != "file" or e.name.endswith(".yml"):
            return load_registry(g, sha)  # refused there, with its own message
        same = other.clusters.get(stem) if known.get(e.name) == e.oid else None
        spec = same or parse_cluster(g.read_file(sha, cluster_file(stem, layout)) or "", cluster_file(stem, layout))
        clusters[spec.name] = spec
    return Registry(g.root, sha, settings, dict(sorted(clusters.items())), (), layout)


def _one_line(e: FleetError) -> str:
    return " ".join(e.message.split())


def diff_revisions(
    repo: GitRepo | str | Path,
    base: str,
    head: str = "HEAD",
    *,
    selector: str | None = None,
    names: Sequence[str] | None = None,
    render: Render | None = None,
) -> RevisionDiff:
    """Compare what every cluster (or those ``selector`` picks at either revision, or ``names``) renders
    at ``base`` and at ``head``; see the module docstring."""
    t0 = time.monotonic()
    check_revision(base, "--base")
    check_revision(head, "--head")
    if render is None:
        from fleet.rendering.cluster import render_spec

        render = render_spec
    g = open_repo(repo)
    shas = {"base": g.resolve(base), "head": g.resolve(head)}
    head_reg = _registry(g, shas["head"], "head")
    regs = {"base": _registry(g, shas["base"], "base", (head_reg, shas["head"])), "head": head_reg}
    picked: dict[str, set[str]] = {}
    for side, reg in regs.items():
        chosen = reg.select(selector) if selector else list(reg.clusters.values())
        picked[side] = {c.name for c in chosen}
    wanted = picked["base"] | picked["head"]
    if names is not None:
        missing = [n for n in names if n not in regs["base"].clusters and n not in regs["head"].clusters]
        if missing:
            from fleet.errors import NotFound

            raise NotFound(f'cluster "{missing[0]}" is in the registry at neither {shas["base"][:12]} '
                           f'nor {shas["head"][:12]}')
        wanted &= set(names)
    keys = {side: _Keys(g, sha, regs[side]) for side, sha in shas.items()}
    labels = {side: sha[:12] for side, sha in shas.items()}
    out: list[ClusterChange] = []
    rendered = 0
    for name in sorted(wanted):
        old, new = regs["base"].clusters.get(name), regs["head"].clusters.get(name)
        spec = new or old
        assert spec is not None
        key = keys["base"].key(old) if old is not None else None
        if key is not None and new is not None and key == keys["head"].key(new):
            out.append(ClusterChange(name, spec.wave, spec.environment, "unchanged", False, 0, 0, 0, None, ()))
            continue
        rendered += 1
        objects: dict[str, Sequence[Mapping[str, Any]]] = {}
        error = None
        for side, s in (("base", old), ("head", new)):
            if s is None:
                objects[side] = ()
                continue
            try:
                objects[side] = render(g, shas[side], s, regs[side].layout).objects
            except FleetError as e:
                error = f"at {side} {labels[side]}: {_one_line(e)}"
                break
        if error is not None:
            out.append(ClusterChange(name, spec.wave, spec.environment, "failed", True, 0, 0, 0, None, (), error))
            continue
        changes, same = diff_objects(objects["base"], objects["head"], labels["base"], labels["head"])
        counts = {k: sum(1 for c in changes if c.change == k) for k in ("added", "removed", "changed")}
        status = "added" if old is None else "removed" if new is None else "changed" if changes else "unchanged"
        out.append(ClusterChange(name, spec.wave, spec.environment, status, True, counts["added"],
                                 counts["removed"], counts["changed"], same, tuple(changes)))
    out.sort(key=lambda c: (c.wave, c.cluster))
    return RevisionDiff(shas["base"], shas["head"], tuple(out), rendered, round(time.monotonic() - t0, 3))
