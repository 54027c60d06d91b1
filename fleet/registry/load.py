"""Reading the registry: ``fleet.yaml``, ``clusters/*.yaml`` and ``environments/*``, at a revision or
from the working tree, into one frozen :class:`Registry`. Every error names file, line and key.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from fleet.errors import ConfigError, InputError, NotFound
from fleet.registry.layout import DEFAULT_LAYOUT, Layout, path_problem
from fleet.registry.model import DNS_LABEL, ClusterSpec, FleetSettings, shown
from fleet.registry.scratch import with_scratch
from fleet.registry.yamlpos import Loc, Positions, dotted, load_yaml

if TYPE_CHECKING:  # GitPython is loaded when a Git object is needed, not to read the working tree
    from fleet.adapters.git import GitRepo, Snapshot

__all__ = [
    "CLUSTERS_DIR",
    "ENVIRONMENTS_DIR",
    "FLEET_FILE",
    "KUSTOMIZATION_FILES",
    "Layout",
    "Registry",
    "cluster_file",
    "describe_validation_error",
    "layout_at",
    "load_registry",
    "open_repo",
    "parse_cluster",
    "read_worktree",
    "snapshot_of",
    "worktree_root",
]

FLEET_FILE = "fleet.yaml"
CLUSTERS_DIR = "clusters"
ENVIRONMENTS_DIR = "environments"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
PSEUDO_LABELS = ("name", "env", "environment", "region", "wave", "provider")


def cluster_file(name: str, layout: Layout = DEFAULT_LAYOUT) -> str:
    """``<registry>/<name>.yaml`` (default ``clusters/<name>.yaml``); refuses a name that is no DNS label."""
    if not DNS_LABEL.match(name):
        raise InputError(
            f'"{shown(name)}" is not a valid cluster name (a DNS label: lowercase letters, digits and "-")'
        )
    return layout.cluster_file(name)


def open_repo(repo: GitRepo | str | Path) -> GitRepo:
    from fleet.adapters.git import GitRepo

    return repo if isinstance(repo, GitRepo) else GitRepo.open(repo)


def worktree_root(repo: GitRepo | str | Path) -> Path:
    """The root of the working tree holding ``repo``, as git finds it (the nearest directory up the path
    that holds ``.git``), without loading GitPython. Anything else (a path that does not exist, no
    ``.git`` up the path, a bare repository) is left to :func:`open_repo`, whose errors it raises."""
    if not isinstance(repo, (str, Path)):
        return repo.root
    start = Path(os.path.abspath(Path(repo).expanduser()))
    if start.is_dir():
        for d in (start, *start.parents):
            dot = d / ".git"
            if dot.is_file() or (dot / "HEAD").is_file():
                return d.resolve()
    return open_repo(repo).root


@dataclass(frozen=True)
class Registry:
    """The fleet repo's registry at one revision (``revision`` None: the working tree)."""

    root: Path
    revision: str | None
    settings: FleetSettings
    clusters: dict[str, ClusterSpec]
    environments: tuple[str, ...]
    layout: Layout = DEFAULT_LAYOUT

    def get(self, name: str) -> ClusterSpec:
        if name in self.clusters:
            return self.clusters[name]
        close = difflib.get_close_matches(name, list(self.clusters), n=3, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else (
                "`fleet cluster list` shows the clusters"
                if self.clusters
                else "add one with `fleet cluster add`"
            )
        )
        where = f" at {self.revision[:12]}" if self.revision else ""
        raise NotFound(f'cluster "{shown(name)}" not found in {self.layout.registry}/{where}', hint=hint)

    def select(self, selector: str | None) -> list[ClusterSpec]:
        """Clusters matching a kubectl-like label selector (``k=v,k!=v,k in (a,b),k notin (a),k,!k``).

        The pseudo-labels ``name``, ``env`` (or ``environment``), ``region``, ``wave`` and ``provider``
        match the cluster's own fields.
        """
        reqs = parse_selector(selector or "")
        return [c for c in self.clusters.values() if all(r.matches(_labels_of(c)) for r in reqs)]


def _labels_of(c: ClusterSpec) -> dict[str, str]:
    pseudo = {
        "name": c.name,
        "env": c.environment,
        "environment": c.environment,
        "region": c.region,
        "wave": str(c.wave),
        "provider": c.provider,
    }
    return {**c.labels, **pseudo}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        return not has or labels[self.key] not in self.values  # != and notin, as kubectl


_REQ = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<val>[\w.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^()]*)\))?)\s*(?:,|$)"
)


def parse_selector(selector: str) -> list[Requirement]:
    out: list[Requirement] = []
    pos = 0
    text = selector.strip()
    while pos < len(text):
        m = _REQ.match(text, pos)
        if not m or m.end() == pos:
            raise InputError(
                f'invalid selector "{shown(selector)}" at "{shown(text[pos:])}"',
                hint='use e.g. "env=prod,region in (eu-1,eu-2),team!=data"',
            )
        if m["nkey"]:
            out.append(Requirement(m["nkey"], "!exists"))
        elif m["op"]:
            out.append(Requirement(m["key"], "!=" if m["op"] == "!=" else "=", (m["val"],)))
        elif m["setop"]:
            vals = tuple(v.strip() for v in m["set"].split(",") if v.strip())
            out.append(Requirement(m["key"], m["setop"], vals))
        else:
            out.append(Requirement(m["key"], "exists"))
        pos = m.end()
    return out


# ---- sources: the working tree or a revision -------------------------------------------------


class _Source(Protocol):
    def read(self, path: str) -> str | None: ...
    def files(self, path: str) -> list[str]: ...
    def dirs(self, path: str) -> list[str]: ...


class _Worktree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _inside(self, path: str) -> Path:
        """``root/path``, refused (exit 2, nothing read, nothing quoted) when it or a folder on its way is a
        symlink that leads out of the repository: a registry file is read from the repository only."""
        p = self.root / path
        if p.is_symlink() or any(q.is_symlink() for q in p.parents if q != self.root and self.root in q.parents):
            real = p.resolve()
            if real != self.root and self.root not in real.parents:
                raise ConfigError("is a symlink that leads out of the repository; fleet reads registry files "
                                  "from the repository only", file=shown(path))
        return p

    def read(self, path: str) -> str | None:
        p = self._inside(path)
        try:
            return p.read_text(encoding="utf-8") if p.is_file() else None
        except UnicodeDecodeError as e:
            raise ConfigError(f"not UTF-8 text (byte {e.start})", file=shown(path)) from None
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror or e}", file=shown(path)) from None

    def files(self, path: str) -> list[str]:
        return sorted(p.name for p in self._list(path) if p.is_file())

    def dirs(self, path: str) -> list[str]:
        return sorted(p.name for p in self._list(path) if p.is_dir())

    def _list(self, path: str) -> list[Path]:
        d = self._inside(path)
        try:
            return list(d.iterdir()) if d.is_dir() else []
        except OSError as e:
            raise ConfigError(f"cannot read the directory: {e.strerror or e}", file=shown(path)) from None


def read_worktree(root: Path, path: str) -> str | None:
    """The text of ``path`` in the working tree at ``root`` (None when absent): refused (ConfigError, exit 2,
    nothing read or quoted) when it is not UTF-8 or is a symlink that leads out of the repository."""
    return _Worktree(root).read(path)


class _Revision:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def read(self, path: str) -> str | None:
        return self.snap.read_file(path)

    def files(self, path: str) -> list[str]:
        return [e.name for e in self.snap.list_dir(path) if e.kind == "file"]

    def dirs(self, path: str) -> list[str]:
        return [e.name for e in self.snap.list_dir(path) if e.kind == "dir"]


def snapshot_of(repo: GitRepo | str | Path, rev: str | Snapshot) -> Snapshot:
    """``rev`` as a :class:`fleet.adapters.git.Snapshot` (a snapshot passes through; a revision is resolved
    once in ``repo``)."""
    if not isinstance(rev, str):
        return rev
    return open_repo(repo).snapshot(rev)


# ---- validation errors -> file:line: key: message --------------------------------------------


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (for the allowed keys of an unknown key)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        current = _inner_model(fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def describe_validation_error(
    err: ValidationError, model: type[BaseModel], positions: Positions | None, file: str | None
) -> ConfigError:
    """One ConfigError for a pydantic error: the first problem with file, line and key; others in the hint."""
    items: list[tuple[int | None, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for e in err.errors(include_url=False):
        loc: Loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "["))))
        if positions is not None and e["type"] not in ("missing", "extra_forbidden"):
            while loc and loc not in positions.lines:  # drop union member names like "str", "int"
                loc = loc[:-1]
        msg = _message(e, model, loc)
        key = dotted(loc)
        if (key, msg) in seen:
            continue
        seen.add((key, msg))
        items.append((positions.line_of(loc) if positions else None, key, msg))
    items.sort(key=lambda it: it[0] if it[0] is not None else 1 << 30)
    line, key, msg = items[0]
    others = [f"{f'line {ln}: ' if ln else ''}{k}: {m}" for ln, k, m in items[1:]]
    return ConfigError(
        msg, file=file, line=line, key=key or None, hint=("also " + "; ".join(others)) if others else None
    )


def _message(e: Any, model: type[BaseModel], loc: Loc) -> str:
    kind, msg, value = e["type"], str(e["msg"]), e.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(model, loc)
        allowed = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        return (
            "unknown key"
            + (f' (did you mean "{close[0]}"?)' if close else "")
            + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        )
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = str(e.get("ctx", {}).get("expected", "")).replace("'", "")
        return f'"{value}" is not allowed; allowed values: {expected.replace(" or ", ", ")}'
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_type" and isinstance(value, (int, float, bool)):
        return f"{msg} (got {value!r}: quote it in YAML)"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{msg} (got {value!r})"
    return msg


# ---- loading ---------------------------------------------------------------------------------


def parse_cluster(text: str, file: str) -> ClusterSpec:
    """One ``clusters/<name>.yaml``: schema, and the file name matching ``name``."""
    data, pos = load_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping (a Cluster: name, environment, ...)", file=file, line=1)
    try:
        spec = ClusterSpec.model_validate(data)
    except ValidationError as e:
        raise describe_validation_error(e, ClusterSpec, pos, file) from e
    stem = Path(file).name.removesuffix(".yaml")
    if spec.name != stem:
        folder = posixpath.dirname(file) or CLUSTERS_DIR
        raise ConfigError(
            f'name "{spec.name}" does not match the file name {Path(file).name}',
            file=file,
            line=pos.line_of(("name",)),
            key="name",
            hint=f"rename the file to {folder}/{spec.name}.yaml, or set name: {stem}",
        )
    return spec


def parse_settings(text: str | None, file: str = FLEET_FILE) -> FleetSettings:
    if text is None:
        raise ConfigError(
            "not found at the repo root; this is not a fleet repo",
            file=file,
            hint="run `fleet init DIR` to create one",
        )
    data, pos = load_yaml(text, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping (kind: Fleet)", file=file, line=1)
    try:
        settings = FleetSettings.model_validate(data)
    except ValidationError as e:
        raise describe_validation_error(e, FleetSettings, pos, file) from e
    problem = operator_source_problem(settings.operator.source)
    if problem:
        raise ConfigError(problem, file=file, line=pos.line_of(("operator", "source")), key="operator.source",
                          hint="toolchain, an https:// URL, or a path inside the repository (e.g. flux/install.yaml)")
    return settings


def operator_source_problem(source: str) -> str | None:
    """Why fleet.yaml's ``operator.source`` cannot be used (or None): what fleet hands to a cluster comes from
    the repository or from fleet, so it is ``toolchain``, an http(s) URL, or a path inside the repository; an
    absolute path, ``~``, ``..`` or any other scheme (``file://``) would put a file of this machine into the
    cluster's plan."""
    if source == "toolchain" or source.startswith(("https://", "http://")):
        return None
    if "://" in source or source.startswith(("~", "/")) or ":" in source.split("/", 1)[0]:
        return f'"{shown(source)}" is outside the repository: give a path inside it, or an https:// URL'
    problem = path_problem(source)
    return f"{problem} (a path inside the repository)" if problem else None


def _environments(src: _Source, layout: Layout = DEFAULT_LAYOUT) -> tuple[str, ...]:
    return tuple(layout.environments_in(src.dirs, src.files))


def _check_environment(
    spec: ClusterSpec, envs: Iterable[str], text: str, file: str, layout: Layout = DEFAULT_LAYOUT,
    src: _Source | None = None,
) -> None:
    if spec.source is not None:  # a Flux cluster directory: the environment only names it, for selectors
        if src is not None:
            _check_flux_dir(spec, src, text, file)
        return
    envs = tuple(envs)
    if spec.environment in envs:
        return
    _, pos = load_yaml(text, file)
    raise ConfigError(
        f'unknown environment "{spec.environment}"; {layout.environments_shown} has: {", ".join(envs) or "none"}',
        file=file,
        line=pos.line_of(("environment",)),
        key="environment",
    )


def _check_access(spec: ClusterSpec, root: Path, text: str, file: str) -> None:
    """``access.kubeconfig`` must not lead into the repository (through ``~``, an absolute path to the
    checkout or a symlink): what the fleet repo carries never runs an exec plugin or names a token file."""
    if spec.access is None or spec.access.kubeconfig is None:
        return
    real = Path(os.path.realpath(Path(spec.access.kubeconfig).expanduser()))
    top = Path(os.path.realpath(root))
    if real == top or top in real.parents:
        _, pos = load_yaml(text, file)
        raise ConfigError(
            "names a kubeconfig inside the fleet repo; a kubeconfig is the user's own configuration (its exec "
            "plugins run, its token files are read), kept outside the repository",
            file=file, line=pos.line_of(("access", "kubeconfig")), key="access.kubeconfig",
            hint="point it at a file of yours outside the repo (e.g. ~/.kube/config), or leave it out",
        )


def _check_flux_dir(spec: ClusterSpec, src: _Source, text: str, file: str) -> None:
    assert spec.source is not None
    path = spec.source.flux
    parent, _, name = path.rpartition("/")
    if name in src.dirs(parent):
        return
    _, pos = load_yaml(text, file)
    raise ConfigError(
        f'"{path}" is not a directory of the repository',
        file=file,
        line=pos.line_of(("source", "flux")),
        key="source.flux",
        hint="name a Flux cluster directory (one holding Flux Kustomizations), committed",
    )


def layout_at(repo: GitRepo | str | Path, rev: str | Snapshot | None = None) -> Layout:
    """The layout (registry folder, environment pattern) ``fleet.yaml`` sets at ``rev`` (a revision or a
    snapshot of one; None: the working tree)."""
    if rev is None:
        return parse_settings(_Worktree(worktree_root(repo)).read(FLEET_FILE)).layout
    return parse_settings(snapshot_of(repo, rev).read_file(FLEET_FILE)).layout


def load_registry(repo: GitRepo | str | Path, rev: str | Snapshot | None = None) -> Registry:
    """The registry at ``rev`` (a revision or a snapshot of one: read from Git, working tree untouched), or
    in the working tree."""
    src: _Source
    if rev is None:  # the working tree: no Git object needed
        root, revision = worktree_root(repo), None
        src = _Worktree(root)
    else:
        snap = snapshot_of(repo, rev)
        root, revision = snap.repo.root, snap.commit
        src = _Revision(snap)
    settings = parse_settings(src.read(FLEET_FILE))
    layout = settings.layout
    envs = _environments(src, layout)
    clusters: dict[str, ClusterSpec] = {}
    for fname in src.files(layout.registry):
        if fname.startswith(".") or not fname.endswith((".yaml", ".yml")):
            continue
        file = f"{layout.registry}/{fname}"
        if fname.endswith(".yml"):
            raise ConfigError("cluster files end in .yaml", file=file, hint=f"rename it to {file[:-4]}.yaml")
        if not DNS_LABEL.match(fname[:-5]):
            raise ConfigError(f'file name "{shown(fname)}" is not <DNS label>.yaml', file=shown(file))
        text = src.read(file) or ""
        spec = parse_cluster(text, file)
        _check_environment(spec, envs, text, file, layout, src)
        _check_access(spec, root, text, file)
        clusters[spec.name] = spec
    clusters = with_scratch(clusters)  # a drill's scratch cluster, while one runs in this context
    return Registry(root, revision, settings, dict(sorted(clusters.items())), envs, layout)
