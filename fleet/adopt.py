"""``fleet adopt``: make an existing Git repo a fleet repo without moving or rewriting any of its files.

It reads the tree at HEAD, detects its layout and proposes settings:

- a **Flux repo** (``clusters/<name>/`` holding Flux ``Kustomization`` objects, as ``flux bootstrap``
  and Flux's examples lay it out): one registry entry per cluster directory (``source: {flux: DIR}``),
  the registry beside Flux's folders (``fleet/clusters``, since ``clusters/`` is Flux's);
- a **kustomize tree** (``bases/`` plus ``overlays/<env>/``, at any depth): ``environments.path`` set to
  the overlays' pattern (``overlays/{env}``), an empty registry to add clusters to.

Then it writes ``fleet.yaml`` and the registry folder in one commit (the user's identity, fleet's lock,
compare-and-swap of the branch, like every registry write). It refuses, changing nothing, when
``fleet.yaml`` exists or the working tree has uncommitted changes; ``dry_run`` only says what it would
write.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.adapters.git import GitRepo
from fleet.errors import DirtyTree, InputError, Unwritable
from fleet.registry.layout import DEFAULT_ENVIRONMENTS, DEFAULT_REGISTRY, KUSTOMIZATION_FILES, Layout
from fleet.registry.load import FLEET_FILE, parse_settings
from fleet.registry.model import DNS_LABEL, ClusterSource, ClusterSpec, shown
from fleet.registry.store import dump_cluster

__all__ = ["AdoptPlan", "adopt_repo", "plan_adoption"]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_FILES = 20000  # YAML files read to find Flux objects
_MAX_BYTES = 1 << 20
_FLUX_KS = "kustomize.toolkit.fluxcd.io/"


@dataclass(frozen=True)
class AdoptPlan:
    root: Path
    name: str
    branch: str
    kind: str  # "flux", "kustomize" or "plain"
    layout: Layout
    clusters: tuple[ClusterSpec, ...]
    environments: tuple[str, ...]
    files: dict[str, str]  # what the commit writes (new files only)
    findings: tuple[str, ...] = ()  # what was detected, in words
    revision: str | None = None  # the commit, once written
    flux_kustomizations: int = 0
    notes: tuple[str, ...] = field(default=())


def _walk(g: GitRepo, rev: str, d: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(path, kind) of everything in the tree at ``rev``, depth first, sorted; ``.git`` never."""
    if depth > 32:
        return
    for e in g.list_dir(rev, d):
        path = f"{d}/{e.name}" if d else e.name
        yield path, e.kind
        if e.kind == "dir":
            yield from _walk(g, rev, path, depth + 1)


def _flux_kustomizations(g: GitRepo, rev: str, files: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(file, object) of every Flux Kustomization in the tree's YAML files (unreadable files skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for f in files[:_MAX_FILES]:
        try:
            text = g.read_file(rev, f)
        except InputError:
            continue
        if not text or len(text) > _MAX_BYTES or "kustomize.toolkit.fluxcd.io" not in text:
            continue
        try:
            docs = list(yaml.load_all(text, Loader=_LOADER))
        except (yaml.YAMLError, RecursionError):
            continue
        for d in docs:
            if isinstance(d, dict) and d.get("kind") == "Kustomization" and str(d.get("apiVersion", "")).startswith(
                _FLUX_KS
            ):
                out.append((f, d))
    return out


def _clean(p: Any) -> str:
    return posixpath.normpath(str(p or ".").lstrip("/")).removeprefix("./") if p else ""


def _cluster_dirs(found: list[tuple[str, dict[str, Any]]], dirs: set[str]) -> list[str]:
    """Flux cluster directories: the path of each ``flux-system`` Kustomization (``flux bootstrap``'s), and
    each ``clusters/<name>`` holding Flux Kustomizations."""
    out: set[str] = set()
    for file, obj in found:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        if meta.get("name") == "flux-system" and isinstance(spec, dict):
            p = _clean(spec.get("path"))
            if p and p in dirs:
                out.add(p)
        parts = file.split("/")
        if len(parts) >= 3 and parts[0] == "clusters":
            out.add("/".join(parts[:2]))
    return sorted(out)


def _overlay_patterns(g: GitRepo, rev: str, dirs: set[str]) -> list[tuple[str, list[str]]]:
    """Candidate environment patterns: ``X/{env}`` where X's subdirectories hold kustomizations; a folder
    named ``overlays`` first, then ``environments``, then ``apps`` (Flux's examples)."""
    out: list[tuple[str, list[str]]] = []
    for d in sorted(dirs):
        base = posixpath.basename(d)
        if base not in ("overlays", "environments", "apps"):
            continue
        envs = []
        for e in g.list_dir(rev, d):
            if e.kind != "dir" or e.name in ("base", "bases") or not DNS_LABEL.match(e.name):
                continue
            if {x.name for x in g.list_dir(rev, f"{d}/{e.name}")} & set(KUSTOMIZATION_FILES):
                envs.append(e.name)
        if envs:
            out.append((f"{d}/{{env}}", envs))
    rank = {"overlays": 0, "environments": 1, "apps": 2}
    out.sort(key=lambda x: (rank[posixpath.basename(x[0][: -len("/{env}")])], -len(x[1]), x[0]))
    return out


def _dns(name: str) -> str | None:
    n = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return n if n and DNS_LABEL.match(n) else None


def _fleet_yaml(name: str, branch: str, layout: Layout) -> str:
    return (
        "# fleet-wide settings (schema: `fleet schema fleet`); written by `fleet adopt`\n"
        "apiVersion: fleet.dev/v1\n"
        "kind: Fleet\n"
        f"name: {name}\n"
        "registry:             # one <name>.yaml per cluster\n"
        f"  path: {layout.registry}\n"
        "environments:         # each environment's kustomize overlay\n"
        f'  path: "{layout.environments}"\n'
        "git:\n"
        "  remote: origin       # the git remote `fleet push` / `fleet pull` use\n"
        f"  branch: {branch}\n"
        "operator:\n"
        "  kind: flux\n"
        "  interval: 1m\n"
        "gates:\n"
        "  timeout: 300         # seconds all health gates may take together\n"
    )


_REGISTRY_README = """# The fleet registry

One `<name>.yaml` per cluster (`fleet cluster add NAME --env ENV`, or `--flux DIR` for a Flux cluster
directory); `fleet schema cluster` prints the schema. Written by `fleet adopt`: nothing else in this
repository was moved or changed.
"""


def plan_adoption(
    repo: str | Path,
    *,
    name: str | None = None,
    registry: str | None = None,
    environments: str | None = None,
) -> AdoptPlan:
    """What :func:`adopt_repo` would write (nothing is written). Refuses as adopt does."""
    root = Path(repo).expanduser().absolute()
    if not root.is_dir():
        raise InputError(f"{root} is not a directory")
    g = GitRepo.open(root)
    head = g.head()
    if head is None:
        raise InputError(f"{g.root} has no commits: adopt a repository with history",
                         hint="commit your files first, or use `fleet init DIR` for a new fleet repo")
    if (g.root / FLEET_FILE).exists() or g.read_file(head, FLEET_FILE) is not None:
        raise InputError(f"{FLEET_FILE} already exists: {g.root} is a fleet repo already; nothing written")
    branch = g.branch()
    if branch is None:
        raise InputError("HEAD is detached; fleet adopts a repository on a branch", hint="git switch BRANCH")
    dirty = g.is_dirty(["."])
    if dirty:
        listed = ", ".join(shown(d) for d in dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        raise DirtyTree(f"uncommitted changes ({listed}): commit or stash them first; adopt writes one commit and "
                        "will not mix in your edits")
    fleet_name = name or _dns(g.root.name) or "fleet"
    if not DNS_LABEL.match(fleet_name):
        raise InputError(f'--name: "{shown(fleet_name)}" is not a valid fleet name (a DNS label)')

    entries = list(_walk(g, head))
    dirs = {p for p, k in entries if k == "dir"}
    yaml_files = [p for p, k in entries if k == "file" and p.endswith((".yaml", ".yml"))]
    found = _flux_kustomizations(g, head, yaml_files)
    cluster_dirs = _cluster_dirs(found, dirs)
    patterns = _overlay_patterns(g, head, dirs)
    findings: list[str] = []
    kind = "flux" if cluster_dirs else "kustomize" if patterns else "plain"

    if registry is None:
        taken = {p for p, _ in entries}
        registry = next(r for r in (DEFAULT_REGISTRY, "fleet/clusters", "fleet-registry/clusters")
                        if r not in taken and not any(t.startswith(r + "/") for t in taken))
        if registry != DEFAULT_REGISTRY:
            findings.append(f"registry: {registry} (clusters/ is taken: it holds the repo's own files)")
        else:
            findings.append(f"registry: {registry}")
    else:
        findings.append(f"registry: {registry} (--registry)")
    if environments is None:
        if patterns:
            environments, seen = patterns[0]
            findings.append(f"environments: {environments} ({', '.join(seen)})")
            for other, more in patterns[1:]:
                findings.append(f"also found overlays at {other} ({', '.join(more)}): pass --environments to use them")
        else:
            environments = DEFAULT_ENVIRONMENTS
            findings.append(f"environments: {environments} (no overlays found; the default)")
    else:
        findings.append(f"environments: {environments} (--environments)")
    try:
        settings_text = _fleet_yaml(fleet_name, branch, Layout(registry, environments))
        settings = parse_settings(settings_text)
    except InputError as e:
        raise InputError(e.message.replace("fleet.yaml:", "the proposed fleet.yaml:", 1), hint=e.hint) from None
    layout = settings.layout
    envs = tuple(layout.environments_in(
        lambda d: [e.name for e in g.list_dir(head, d) if e.kind == "dir"],
        lambda d: [e.name for e in g.list_dir(head, d) if e.kind == "file"],
    ))

    clusters: list[ClusterSpec] = []
    if cluster_dirs:
        noun = "directory" if len(cluster_dirs) == 1 else "directories"
        findings.insert(0, f"a Flux repo: {len(cluster_dirs)} cluster {noun} ({', '.join(cluster_dirs)}), "
                           f"{len(found)} Flux Kustomizations")
        for d in cluster_dirs:
            cname = _dns(posixpath.basename(d))
            if cname is None or any(c.name == cname for c in clusters):
                findings.append(f"skipped {d}: its name is no DNS label (`fleet cluster add NAME --flux {d}`)")
                continue
            env = _environment_of(d, found, layout, envs) or cname
            clusters.append(ClusterSpec(name=cname, environment=env, source=ClusterSource(flux=d)))
    elif patterns:
        findings.insert(0, f"a kustomize tree: overlays {', '.join(envs)} ({environments})")
    else:
        findings.insert(0, "no Flux cluster directories and no kustomize overlays found")

    files: dict[str, str] = {FLEET_FILE: settings_text}
    for spec in clusters:
        files[layout.cluster_file(spec.name)] = dump_cluster(spec)
    if not clusters:
        files[f"{layout.registry}/README.md"] = _REGISTRY_README
    clash = [f for f in files if g.entry(head, f) is not None or (g.root / f).exists()]
    if clash:
        raise InputError(f"{clash[0]} exists: adopt never changes an existing file",
                         hint="pass --registry PATH to put the registry elsewhere")
    return AdoptPlan(g.root, fleet_name, branch, kind, layout, tuple(clusters), envs, files, tuple(findings),
                     flux_kustomizations=len(found))


def _environment_of(cluster_dir: str, found: list[tuple[str, dict[str, Any]]], layout: Layout,
                    envs: tuple[str, ...]) -> str | None:
    """The environment a cluster directory deploys: the first overlay of the pattern one of its
    Kustomizations builds (``./apps/staging`` -> ``staging``), else its name when that is an environment."""
    for file, obj in found:
        if not file.startswith(cluster_dir + "/"):
            continue
        path = _clean((obj.get("spec") or {}).get("path"))
        for env in envs:
            if path == layout.overlay_dir(env):
                return env
    base = _dns(posixpath.basename(cluster_dir))
    return base if base in envs else None


def adopt_repo(
    repo: str | Path,
    *,
    name: str | None = None,
    registry: str | None = None,
    environments: str | None = None,
    dry_run: bool = False,
) -> AdoptPlan:
    """Write ``fleet.yaml`` and the registry in one commit (see the module docstring); ``dry_run`` writes
    nothing and returns the plan."""
    plan = plan_adoption(repo, name=name, registry=registry, environments=environments)
    if dry_run:
        return plan
    g = GitRepo.open(plan.root)
    g.identity()  # refuse before writing anything when there is none
    with g.lock():
        blocked = g.write_blockers()
        if blocked:
            raise Unwritable(blocked)
        if g.head() is None or g.is_dirty(["."]) or g.read_file(g.resolve("HEAD"), FLEET_FILE) is not None:
            raise InputError(f"{plan.root} changed while fleet was adopting it; run fleet adopt again")
        what = (f"{len(plan.clusters)} Flux cluster directories" if plan.clusters
                else f"environments {', '.join(plan.environments) or 'none yet'}")
        sha = g.commit(dict(sorted(plan.files.items())), f"Adopt {plan.name} as a fleet repo ({what})")
    return AdoptPlan(plan.root, plan.name, plan.branch, plan.kind, plan.layout, plan.clusters, plan.environments,
                     plan.files, plan.findings, sha, plan.flux_kustomizations)
