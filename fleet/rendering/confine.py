"""Render confinement, the early check: a kustomization may read only what the repository holds at the
revision.

The guarantee is fleet-build's (:mod:`fleet.adapters.fluxbuild`): kustomize runs with load restrictions
off, as Flux's kustomize-controller, on Flux's secure filesystem rooted at a private copy of the tree, so
it cannot open anything outside it, whatever this module misses (tests/integration/test_render_hostile.py
switches it off). This module checks first, for errors that name the file, line, key and value, every
field kustomize loads files from, in the overlay and in every kustomization, component and plugin
configuration the overlay reaches:

- no absolute path, no ``..`` above the repository root (counted in the tree, symlinks followed);
- no symlink that leaves the tree or points to an absolute path;
- no remote resource (a URL or a git repository): rendering never reaches the network.

A refusal is a :class:`~fleet.errors.ConfigError` naming the kustomization file (and line) and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from fleet.adapters.git import GitRepo, Snapshot
from fleet.errors import ConfigError, InputError
from fleet.registry.yamlpos import load_yaml

__all__ = ["KUSTOMIZATION_NAMES", "check_overlay", "is_remote"]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_KUSTOMIZATIONS = 2000

# top-level lists whose entries are paths (or URLs) kustomize loads
_RESOURCE_LISTS = ("resources", "bases", "components")  # a file, a directory (a kustomization) or a URL
_FILE_LISTS = ("crds", "configurations")
_PLUGIN_LISTS = ("generators", "transformers", "validators")  # a file, a directory, or inline YAML
# keys of a builtin plugin's configuration (in a file or inline) that name files
_PLUGIN_FILE_KEYS = ("path", "paths", "files", "envs", "env", "valuesFile", "additionalValuesFiles",
                     "chartHome", "configHome", "values")
_HOST_PATH = re.compile(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:\d+)?/")


def is_remote(value: str) -> bool:
    """Whether kustomize would fetch ``value`` over the network (a URL, a git repo, ``host.tld/...``)."""
    v = value.strip()
    return (
        "://" in v
        or v.startswith(("git@", "git::", "gh:", "ssh:", "file:", "http:", "https:"))
        or bool(_HOST_PATH.match(v))
    )


def _refs(data: Any) -> Iterator[tuple[str, Any, str]]:
    """(key, value, kind) for every file-loading field of a kustomization; kind is "resource", "file",
    "plugin" or "remote" (a field that only ever names a URL)."""
    if not isinstance(data, dict):
        return
    for field in (*_RESOURCE_LISTS, *_FILE_LISTS, *_PLUGIN_LISTS):
        kind = "resource" if field in _RESOURCE_LISTS else "plugin" if field in _PLUGIN_LISTS else "file"
        for i, v in enumerate(_as_list(data.get(field))):
            yield f"{field}[{i}]", v, kind
    for i, v in enumerate(_as_list(data.get("patchesStrategicMerge"))):
        if isinstance(v, str) and "\n" not in v and not v.lstrip().startswith("{"):
            yield f"patchesStrategicMerge[{i}]", v, "file"
    for field in ("patches", "patchesJson6902", "replacements"):
        for i, p in enumerate(_as_list(data.get(field))):
            if isinstance(p, dict) and "path" in p:
                yield f"{field}[{i}].path", p["path"], "file"
    for field in ("configMapGenerator", "secretGenerator"):
        for i, gen in enumerate(_as_list(data.get(field))):
            if isinstance(gen, dict):
                yield from _generator_refs(f"{field}[{i}]", gen)
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and "path" in openapi:
        yield "openapi.path", openapi["path"], "file"
    for i, chart in enumerate(_as_list(data.get("helmCharts"))):
        if isinstance(chart, dict):
            for key in ("valuesFile", "additionalValuesFiles"):
                for j, v in enumerate(_as_list(chart.get(key))):
                    yield f"helmCharts[{i}].{key}" + (f"[{j}]" if key.endswith("s") else ""), v, "file"
            if chart.get("repo"):
                yield f"helmCharts[{i}].repo", chart["repo"], "remote"
    globals_ = data.get("helmGlobals")
    if isinstance(globals_, dict):
        for key in ("chartHome", "configHome"):
            if key in globals_:
                yield f"helmGlobals.{key}", globals_[key], "file"
    for i, gen in enumerate(_as_list(data.get("helmChartInflationGenerator"))):
        if isinstance(gen, dict):
            for key in ("chartHome", "values"):
                if key in gen:
                    yield f"helmChartInflationGenerator[{i}].{key}", gen[key], "file"
            if gen.get("chartRepoUrl"):
                yield f"helmChartInflationGenerator[{i}].chartRepoUrl", gen["chartRepoUrl"], "remote"


def _generator_refs(where: str, gen: dict[str, Any]) -> Iterator[tuple[str, Any, str]]:
    for i, f in enumerate(_as_list(gen.get("files"))):
        # "key=path" or "path"
        yield f"{where}.files[{i}]", f.split("=", 1)[-1] if isinstance(f, str) else f, "file"
    for i, f in enumerate(_as_list(gen.get("envs"))):
        yield f"{where}.envs[{i}]", f, "file"
    if "env" in gen:
        yield f"{where}.env", gen["env"], "file"


def _plugin_refs(doc: Any) -> Iterator[tuple[str, Any, str]]:
    """The file-naming fields of one builtin plugin configuration (PatchTransformer, ConfigMapGenerator...)."""
    if not isinstance(doc, dict):
        return
    for key in _PLUGIN_FILE_KEYS:
        for i, v in enumerate(_as_list(doc.get(key))):
            if key == "files" and isinstance(v, str):
                v = v.split("=", 1)[-1]
            if key == "values" and not isinstance(v, str):
                continue
            yield key + (f"[{i}]" if isinstance(doc.get(key), list) else ""), v, "file"
    for i, r in enumerate(_as_list(doc.get("replacements"))):
        if isinstance(r, dict) and "path" in r:
            yield f"replacements[{i}].path", r["path"], "file"
    for key in ("chartRepoUrl", "repo"):
        if doc.get(key):
            yield key, doc[key], "remote"


def _first_line(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return " ".join(str(e).split())[:200]


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _line(text: str, file: str, key: str) -> int | None:
    """The line of a dotted key with indexes (``patches[0].path``) in ``text``, when it can be found."""
    try:
        _, pos = load_yaml(text, file)
    except ConfigError:
        return None
    loc: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        loc.append(int(part[1:-1]) if part.startswith("[") else part)
    return pos.line_of(tuple(loc))


class _Checker:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.seen: set[str] = set()

    def refuse(self, file: str, text: str, key: str, value: str, why: str) -> ConfigError:
        shown = value if len(value) <= 200 else value[:200] + "..."
        return ConfigError(
            f'"{shown}" {why}',
            file=file,
            line=_line(text, file, key.split(" ", 1)[0]),
            key=key,
            hint="fleet renders only what the repository holds at the revision (as Flux does)",
        )

    def resolve(self, file: str, text: str, key: str, base: str, value: str) -> tuple[str, str | None]:
        try:
            return self.snap.resolve_path(base, value)
        except InputError as e:
            why = e.message.removeprefix(f'"{value}" ')
            if why == e.message:  # a symlink on the way: say which
                why = f"leads through {e.message}"
            raise self.refuse(file, text, key, value, why) from None

    def kustomization(self, directory: str) -> None:
        if directory in self.seen or len(self.seen) > _MAX_KUSTOMIZATIONS:
            return
        self.seen.add(directory)
        names = {e.name for e in self.snap.list_dir(directory)}
        kname = next((k for k in KUSTOMIZATION_NAMES if k in names), None)
        if kname is None:
            return
        file = f"{directory}/{kname}" if directory else kname
        real, kind = self.resolve(file, "", "(file)", directory, kname)
        text = self.snap.read_file(real) if kind == "file" else None
        if text is None:
            return
        try:
            data = yaml.load(text, Loader=_LOADER)
        except (yaml.YAMLError, RecursionError) as e:
            # what fleet cannot read it cannot check: refused, not passed to kustomize unchecked
            raise ConfigError(f"not YAML fleet can read: {_first_line(e)}", file=file) from None
        for key, value, kind in _refs(data):
            self.check(file, text, key, directory, value, kind)

    def check(self, file: str, text: str, key: str, base: str, value: Any, kind: str) -> None:
        if not isinstance(value, str):
            return  # kustomize reports the type
        if kind == "remote":
            raise self.refuse(file, text, key, value, "is a remote source; fleet never fetches one")
        if kind == "plugin" and "\n" in value:  # an inline plugin configuration
            self.plugin_docs(file, text, key, base, value)
            return
        if kind in ("resource", "plugin") and is_remote(value):
            raise self.refuse(file, text, key, value, "is a remote resource; fleet never fetches one")
        if "\x00" in value:
            raise self.refuse(file, text, key, value.replace("\x00", "\\0"), "holds a NUL character")
        path = value.split("?", 1)[0] if kind == "resource" else value
        target, found = self.resolve(file, text, key, base, path)
        if found == "dir" and kind in ("resource", "plugin"):
            self.kustomization(target)
        elif found == "file" and kind == "plugin":
            self.plugin_docs(file, text, key, base, self.snap.read_file(target) or "")

    def plugin_docs(self, file: str, text: str, key: str, base: str, body: str) -> None:
        try:
            docs = list(yaml.load_all(body, Loader=_LOADER))
        except (yaml.YAMLError, RecursionError) as e:
            raise ConfigError(f"a plugin configuration is not YAML fleet can read: {_first_line(e)}", file=file,
                              key=key) from None
        for doc in docs:
            for sub, value, kind in _plugin_refs(doc):
                self.check(file, text, f"{key} {sub}", base, value, kind)


def check_overlay(g: GitRepo, rev: str | Snapshot, directory: str) -> None:
    """Refuse (ConfigError) when the kustomization in ``directory`` at ``rev`` (a revision or a snapshot of
    one), or anything it reaches, names a file outside the repository tree or a remote source."""
    _Checker(g.snapshot(rev)).kustomization(directory)
