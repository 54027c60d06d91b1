"""Writing the registry: ``fleet init`` and ``fleet cluster add|set|remove``.

Every write is one commit with the user's git identity, made under the repo's fleet lock on top of the
committed registry (never the working tree), with the branch moved by compare-and-swap. Writes
refuse when ``clusters/`` or ``fleet.yaml`` has uncommitted changes, and change nothing when refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleet.adapters.git import GitRepo
from fleet.errors import DirtyTree, InputError, Unwritable
from fleet.registry.load import (
    FLEET_FILE,
    Registry,
    cluster_file,
    load_registry,
    open_repo,
    parse_settings,
)
from fleet.registry.model import DNS_LABEL, ClusterSpec, check_url, shown, text_problem

__all__ = [
    "BatchWriteResult",
    "ClusterUpdate",
    "InitResult",
    "WriteResult",
    "add_cluster",
    "add_clusters",
    "dump_cluster",
    "init_repo",
    "remove_cluster",
    "set_cluster",
    "spec_from_input",
]

# git check-ref-format's rules, for the branch fleet init creates
_BRANCH = re.compile(r"^(?!-)(?!.*@\{)[^\x00-\x20\x7f ~^:?*\[\\]+\Z")

# Fields in the order a cluster file is written.
_ORDER = (
    "apiVersion",
    "kind",
    "name",
    "environment",
    "provider",
    "region",
    "wave",
    "labels",
    "vars",
    "settings",
    "access",
    "gates",
    "source",
)
_FLAGS = {
    "environment": "--env",
    "provider": "--provider",
    "region": "--region",
    "wave": "--wave",
    "labels": "--label",
    "vars": "--var",
    "settings": "--setting",
    "source": "--flux",
    "name": "NAME",
}


@dataclass(frozen=True)
class WriteResult:
    cluster: str
    revision: str  # the new commit
    file: str
    message: str
    spec: ClusterSpec | None  # None after remove


@dataclass(frozen=True)
class BatchWriteResult:
    """Several clusters written in one commit (:func:`add_clusters`)."""

    clusters: tuple[str, ...]
    revision: str  # the new commit
    files: tuple[str, ...]
    message: str
    specs: tuple[ClusterSpec, ...]


@dataclass(frozen=True)
class InitResult:
    root: Path
    revision: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ClusterUpdate:
    """What ``fleet cluster set`` changes; None / empty means leave as is."""

    environment: str | None = None
    provider: str | None = None
    region: str | None = None
    wave: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    remove_labels: Sequence[str] = ()
    vars: Mapping[str, str] = field(default_factory=dict)
    remove_vars: Sequence[str] = ()
    settings: Mapping[str, str | int | bool] = field(default_factory=dict)
    remove_settings: Sequence[str] = ()

    def is_empty(self) -> bool:
        return self == ClusterUpdate()


def dump_cluster(spec: ClusterSpec) -> str:
    """The text of ``clusters/<name>.yaml`` (stable key order; empty maps and unset blocks left out)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    out: dict[str, Any] = {}
    for key in _ORDER:
        value = data.get(key)
        if value in (None, {}, []):
            continue
        out[key] = value
    return yaml.safe_dump(out, sort_keys=False, default_flow_style=False, allow_unicode=True)


def spec_from_input(data: Mapping[str, Any]) -> ClusterSpec:
    """Validate what a user typed on the command line; errors name the flag, not a file."""
    try:
        return ClusterSpec.model_validate(dict(data))
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = [p for p in first["loc"] if isinstance(p, (str, int))]
        flag = _FLAGS.get(str(loc[0]), str(loc[0])) if loc else "input"
        what = ".".join(str(p) for p in loc[1:2]) if loc[:1] != ["source"] else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "literal_error":
            msg = f'"{first.get("input")}" is not allowed; allowed values: ' + str(
                first.get("ctx", {}).get("expected", "")
            ).replace("'", "").replace(" or ", ", ")
        raise InputError(f"{flag}{f' {what}' if what else ''}: {msg}") from e


# ---- the write path --------------------------------------------------------------------------


def _write(
    repo: GitRepo,
    mutate: Callable[[Registry], tuple[dict[str, str | None], str, ClusterSpec | None, str]],
) -> WriteResult:
    with repo.lock():
        head = repo.head()
        if head is None:
            raise InputError(
                f"{repo.root} has no commits; this is not a fleet repo", hint="run `fleet init DIR`"
            )
        registry = load_registry(repo, head)
        _check_branch(repo, registry.settings.git.branch)
        blocked = repo.write_blockers()
        if blocked:
            raise Unwritable(blocked)
        dirty = repo.is_dirty([registry.layout.registry, FLEET_FILE])
        if dirty:
            listed = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
            raise DirtyTree(
                f"uncommitted changes in {listed}; commit or stash them first",
                hint=f"fleet writes {registry.layout.registry}/ and fleet.yaml itself and will not mix in your edits",
            )
        changes, message, spec, name = mutate(registry)
        sha = repo.commit(changes, message)
    return WriteResult(name, sha, cluster_file(name, registry.layout), message, spec)


def _check_branch(repo: GitRepo, branch: str) -> None:
    """Registry writes go only onto fleet.yaml's ``git.branch``, never a detached HEAD or another branch."""
    current = repo.branch()
    if current == branch:
        return
    where = "HEAD is detached" if current is None else f'the checked-out branch is "{shown(current)}"'
    raise InputError(
        f'{where}; fleet writes the registry only on branch "{shown(branch)}" (fleet.yaml git.branch)',
        hint=f"git switch {branch}",
    )


def _check_environment(registry: Registry, repo: GitRepo, env: str, spec: ClusterSpec | None = None) -> None:
    if spec is not None and spec.source is not None:
        _check_source(registry, repo, spec.source.flux)
        return
    if env in registry.environments:
        return
    layout = registry.layout
    if DNS_LABEL.match(env) and (repo.root / layout.overlay_dir(env)).is_dir():
        raise InputError(
            f'environment "{env}" exists in the working tree but is not committed',
            hint=f"commit {layout.overlay_dir(env)}/ first: clusters render what is in Git",
        )
    raise InputError(
        f'unknown environment "{env}"; {layout.environments_shown} has: {", ".join(registry.environments) or "none"}'
    )


def _check_source(registry: Registry, repo: GitRepo, path: str) -> None:
    """A Flux cluster directory must be committed: clusters render what is in Git."""
    entry = repo.entry(registry.revision, path) if registry.revision else None
    if entry is not None and entry.kind == "dir":
        return
    if (repo.root / path).is_dir():
        raise InputError(
            f'Flux directory "{path}" exists in the working tree but is not committed',
            hint=f"commit {path}/ first: clusters render what is in Git",
        )
    raise InputError(f'Flux directory "{path}" does not exist in the repository')


def _summary(spec: ClusterSpec) -> str:
    flux = f"flux {spec.source.flux}, " if spec.source is not None else ""
    return f"{flux}env {spec.environment}, provider {spec.provider}, region {spec.region}, wave {spec.wave}"


def add_cluster(repo: GitRepo | str | Path, spec: ClusterSpec) -> WriteResult:
    """Add ``clusters/<name>.yaml``; refuses an existing name or an unknown environment."""
    g = open_repo(repo)
    cluster_file(spec.name)  # a DNS label, before anything is read

    def mutate(reg: Registry) -> tuple[dict[str, str | None], str, ClusterSpec | None, str]:
        file = cluster_file(spec.name, reg.layout)
        if spec.name in reg.clusters:
            raise InputError(
                f'cluster "{spec.name}" already exists ({file})',
                hint=f"change it with `fleet cluster set {spec.name} ...`",
            )
        _check_environment(reg, g, spec.environment, spec)
        return {file: dump_cluster(spec)}, f"Add cluster {spec.name} ({_summary(spec)})", spec, spec.name

    return _write(g, mutate)


def add_clusters(repo: GitRepo | str | Path, specs: Sequence[ClusterSpec], message: str) -> BatchWriteResult:
    """Add several ``clusters/<name>.yaml`` in ONE commit (``fleet region add``), under the same lock and
    compare-and-swap as :func:`add_cluster`. Refuses, writing nothing, when any name already exists, is
    given twice, or names an unknown environment."""
    g = open_repo(repo)
    if not specs:
        raise InputError("no clusters to add")
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InputError(f'cluster "{spec.name}" is given twice')
        seen.add(spec.name)
    files = [cluster_file(s.name) for s in specs]

    def mutate(reg: Registry) -> tuple[dict[str, str | None], str, ClusterSpec | None, str]:
        files[:] = [cluster_file(s.name, reg.layout) for s in specs]
        taken = [s.name for s in specs if s.name in reg.clusters]
        if taken:
            raise InputError(
                f'cluster "{taken[0]}" already exists ({cluster_file(taken[0], reg.layout)})'
                + (f" (and {len(taken) - 1} more: {', '.join(taken[1:4])})" if len(taken) > 1 else ""),
                hint="pick another region name, or remove the existing clusters first",
            )
        for env, first in {s.environment: s for s in reversed(specs)}.items():
            _check_environment(reg, g, env, first)
        changes: dict[str, str | None] = {f: dump_cluster(s) for f, s in zip(files, specs, strict=True)}
        return changes, message, specs[0], specs[0].name

    done = _write(g, mutate)
    return BatchWriteResult(tuple(s.name for s in specs), done.revision, tuple(files), done.message, tuple(specs))


def _apply(old: ClusterSpec, up: ClusterUpdate) -> tuple[ClusterSpec, list[str]]:
    data = old.model_dump(mode="json", exclude_none=True)
    changed: list[str] = []
    for key in ("environment", "provider", "region", "wave"):
        new = getattr(up, key)
        if new is not None and new != data.get(key):
            changed.append(f"{key} {data.get(key)} -> {new}")
            data[key] = new
    for key, sets, removes in (
        ("labels", up.labels, up.remove_labels),
        ("vars", up.vars, up.remove_vars),
        ("settings", up.settings, up.remove_settings),
    ):
        current = dict(data.get(key) or {})
        for k in removes:
            if k not in current:
                raise InputError(f'{key} of cluster "{old.name}" has no key "{k}" to remove')
            del current[k]
            changed.append(f"-{key}.{k}")
        for k, v in sets.items():
            if current.get(k) != v:
                current[k] = v
                # a variable's value may be a secret: the commit message names the variable only
                changed.append(f"{key}.{k}" if key == "vars" else f"{key}.{k}={v}")
        data[key] = current
    return spec_from_input(data), changed


def set_cluster(repo: GitRepo | str | Path, name: str, update: ClusterUpdate) -> WriteResult:
    """Change fields of a cluster; refuses when nothing would change."""
    g = open_repo(repo)
    cluster_file(name)
    if update.is_empty():
        raise InputError("nothing to change", hint="pass e.g. --wave 2, --label team=web or --var REPLICAS=3")

    def mutate(reg: Registry) -> tuple[dict[str, str | None], str, ClusterSpec | None, str]:
        new, changed = _apply(reg.get(name), update)
        if not changed:
            raise InputError(f'cluster "{name}" already has these values; nothing to change')
        if update.environment is not None:
            _check_environment(reg, g, new.environment, new)
        message = f"Set cluster {name}: {', '.join(changed)}"
        return {cluster_file(name, reg.layout): dump_cluster(new)}, message, new, name

    return _write(g, mutate)


def remove_cluster(repo: GitRepo | str | Path, name: str) -> WriteResult:
    """Delete ``clusters/<name>.yaml``. Its last-good ref and audit notes stay (history)."""
    g = open_repo(repo)
    cluster_file(name)

    def mutate(reg: Registry) -> tuple[dict[str, str | None], str, ClusterSpec | None, str]:
        spec = reg.get(name)
        return {cluster_file(name, reg.layout): None}, f"Remove cluster {name} ({_summary(spec)})", None, name

    return _write(g, mutate)


# ---- fleet init ------------------------------------------------------------------------------


def _template_files() -> dict[str, str]:
    root = resources.files("fleet") / "templates" / "init"
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            elif not child.name.startswith(".") and child.name != "__pycache__":
                out[rel] = child.read_text(encoding="utf-8")

    walk(root, "")
    return out


def init_repo(
    path: str | Path, *, name: str | None = None, branch: str = "main", remote_url: str | None = None
) -> InitResult:
    """Create a fleet repo in ``path`` (new, or empty apart from ``.git``) with a first commit."""
    root = Path(path).expanduser().absolute()
    fleet_name = name or root.name.lower()
    if not DNS_LABEL.match(fleet_name):
        raise InputError(
            f'"{shown(fleet_name)}" is not a valid fleet name (a DNS label)', hint="pass --name NAME"
        )
    bad_form = ".." in branch or "//" in branch or branch.endswith((".lock", "/", "."))
    if not _BRANCH.match(branch) or text_problem(branch) or bad_form:
        raise InputError(f'--branch: "{shown(branch)}" is not a valid branch name')
    if remote_url is not None:
        problem = text_problem(remote_url)
        if problem:
            raise InputError(f"--remote: {problem}")
        try:
            check_url(remote_url)
        except ValueError as e:
            raise InputError(f"--remote: {e}") from None
    if root.exists() and not root.is_dir():
        raise InputError(f"{shown(str(root))} exists and is not a directory")
    if root.is_dir():
        try:
            extra = sorted(p.name for p in root.iterdir() if p.name != ".git")
        except OSError as e:
            raise Unwritable.of(shown(str(root)), e, "the new fleet repo") from None
        if extra:
            raise InputError(
                f"{root} is not empty ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})",
                hint="fleet init creates a new repo: pass a new or empty directory",
            )
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # /proc/x, a read-only or missing parent: bad input, not a bug
        raise Unwritable.of(shown(str(root)), e, "the new fleet repo") from None
    try:
        g = GitRepo.init(root, branch=branch)
        with g:
            if g.head() is not None:
                raise InputError(f"{root} already has commits", hint="fleet init creates a new repo")
            g.identity()  # refuse before writing anything when there is none
            files = _template_files()
            files[FLEET_FILE] = files[FLEET_FILE].replace("@NAME@", fleet_name).replace("@BRANCH@", branch)
            if remote_url:
                files[FLEET_FILE] = files[FLEET_FILE].replace(
                    "  # url: https://git.example.com/platform/fleet.git", f"  url: {json.dumps(remote_url)}"
                )
            parse_settings(files[FLEET_FILE])  # what is committed reads back as given
            with g.lock():
                sha = g.commit(dict(sorted(files.items())), f"Initialize fleet repo {fleet_name}")
            if remote_url:
                g.add_remote("origin", remote_url)
    except BaseException:
        if created:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        raise
    return InitResult(root, sha, tuple(sorted(files)))
