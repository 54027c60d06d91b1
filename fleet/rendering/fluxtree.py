"""A Flux cluster directory expanded as Flux would apply it, offline: pure, with the build passed in.

Flux applies a cluster directory (``clusters/prod-eu``) through a Kustomization; the objects it holds
include more Flux ``Kustomization`` objects (``kustomize.toolkit.fluxcd.io/v1``), each building a ``path``
of a source with its own options, in ``dependsOn`` order, and so on. :func:`expand` does the same:

1. build the root directory; substitute it with ``root_vars`` (the variables of the Kustomization that
   applies it: fleet's operator carries the cluster's, see :func:`fleet.rendering.build.cluster_vars`);
2. for every Flux Kustomization among the objects whose ``sourceRef`` is the fleet repo itself (the
   ``flux-system`` GitRepository of ``flux bootstrap``, fleet's own ``fleet`` one, or a GitRepository
   defined in the tree whose URL is the fleet repo's), once everything it ``dependsOn`` is expanded:
   build its ``path`` at the same revision with its options (:func:`flux_kustomization`, as
   kustomize-controller's generator writes them: targetNamespace, namePrefix/nameSuffix, patches,
   images, components, ...), substitute (``postBuild.substitute`` over ``substituteFrom`` ConfigMaps and
   Secrets the tree defines, as the controller does in strict mode), set ``commonMetadata``; the
   objects it gives may hold more Kustomizations: repeat;
   A Kustomization whose ``sourceRef`` is an ``ExternalArtifact`` that an ``ArtifactGenerator`` of the tree
   makes from the fleet repo alone is built the same way, in that artifact (the request carries the
   generator's ``copy`` operations: :class:`ArtifactRequest`; :mod:`fleet.rendering.artifacts` makes it);
3. what comes from elsewhere is **unresolved**, listed with a note and never dropped silently:
   Kustomizations of other sources (OCIRepository, Bucket, other Git repositories), suspended ones,
   HelmReleases' charts (the HelmRelease itself stays an object; :mod:`fleet.rendering.fluxrender` has
   :mod:`fleet.rendering.helm` expand them when the render asks for it, and keeps only those it cannot).

An object two Kustomizations both produce is kept once when both are identical (noted), and refused
when they differ (Flux would apply both and the last reconcile would win). The build function runs
``kustomize build`` (:mod:`fleet.rendering.fluxrender` passes fleet's confined, cached one); tests pass fakes.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from fleet.errors import MISSING_HINT, FluxTreeError, MissingVariables, RenderError
from fleet.rendering.substitute import substitute

__all__ = [
    "KUSTOMIZE_GROUP",
    "ArtifactRequest",
    "BuildRequest",
    "Builder",
    "BuiltDoc",
    "ExpandedObject",
    "Expansion",
    "Node",
    "SourceRef",
    "Unresolved",
    "Unsupported",
    "clear_cache",
    "expand",
    "flux_kustomization",
    "is_fleet_source",
    "merge_maps",
    "normalize_url",
    "operator_keys",
    "operator_name",
    "scan_resources",
    "tree_lines",
]

KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
GENERATOR_GROUP = "source.extensions.fluxcd.io"  # Flux source-watcher: ArtifactGenerator
HELM_GROUP = "helm.toolkit.fluxcd.io"
SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
FLUX_NAMESPACE = "flux-system"
FLEET_SOURCES = ("flux-system", "fleet")  # flux bootstrap's GitRepository, and fleet's operator's
# The name of fleet's operator objects (a GitRepository and a Kustomization in flux-system): "fleet", and
# for a cluster of a Flux directory "flux-system", the names `flux bootstrap` gives them, so the tree's
# Kustomizations that build from GitRepository flux-system get fleet's pinned source.
OPERATOR_NAME = "fleet"
FLUX_DIRECTORY_OPERATOR_NAME = "flux-system"


def operator_name(flux_directory: bool) -> str:
    """The name of fleet's operator objects on a cluster (of a Flux directory or not)."""
    return FLUX_DIRECTORY_OPERATOR_NAME if flux_directory else OPERATOR_NAME


def operator_keys(name: str) -> tuple[tuple[str, str, str, str], ...]:
    """The keys (group, kind, namespace, name) of fleet's operator objects called ``name``."""
    return ((SOURCE_GROUP, "GitRepository", FLUX_NAMESPACE, name), (KUSTOMIZE_GROUP, "Kustomization",
                                                                      FLUX_NAMESPACE, name))
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """YAML as kustomize prints it: keys sorted, multi-line strings as literal blocks."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") and value == value.rstrip(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_DUMPER: Any = _Dumper
# What source-controller leaves out of every artifact (its default exclusions), so Flux's generated
# kustomization never lists them.
_SOURCE_EXCLUDED = frozenset({
    ".sops.yaml", ".flux.yaml", ".goreleaser.yml", ".travis.yml", ".gitlab-ci.yml", "appveyor.yml",
    ".drone.yml", "cloudbuild.yaml", "codeship-services.yml", "codeship-steps.yml",
})
_EXCLUDED_DIRS = frozenset({".git", ".github", ".circleci"})
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class BuiltDoc(Protocol):
    """One object of a build, as :func:`fleet.rendering.build.build_directory` gives it."""

    @property
    def text(self) -> str: ...
    @property
    def ref(self) -> str: ...  # "Kind/namespace/name", for messages
    @property
    def substitute(self) -> bool: ...


class Unsupported(Exception):
    """What a :data:`Builder` raises for a request it does not render (an artifact made by extracting
    tarballs, ...): the Kustomization is listed unresolved, with the exception's text as its note."""


@dataclass(frozen=True)
class ArtifactRequest:
    """An ExternalArtifact an ArtifactGenerator of the tree makes from the fleet repo: the ``copy``
    operations of its output artifact, whose ``aliases`` are all the fleet repo."""

    ref: str  # "ExternalArtifact/namespace/name"
    generator: str  # "namespace/name" of the ArtifactGenerator
    aliases: tuple[str, ...]
    copy: tuple[Any, ...]
    ignores: tuple[str | None, ...] = ()  # each alias's GitRepository spec.ignore, when the tree defines one

    @property
    def where(self) -> str:
        return f"ArtifactGenerator {self.generator}: artifact {self.ref.rsplit('/', 1)[-1]}"


@dataclass(frozen=True)
class BuildRequest:
    """Build ``path`` (a repo directory, or a directory of ``artifact``) with a Flux Kustomization's
    options (``spec``; empty for the root). ``kustomization`` is ``namespace/name``, or None for the root."""

    path: str
    spec: Mapping[str, Any]
    kustomization: str | None
    artifact: ArtifactRequest | None = None


Builder = Callable[[BuildRequest], Sequence[BuiltDoc]]


@dataclass(frozen=True)
class SourceRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Node:
    """One Flux Kustomization of the tree (or the root directory, ``id`` ``""``)."""

    id: str  # "namespace/name"; "" for the root directory
    path: str  # the repo directory it builds ("" = the repo root)
    status: str  # root | expanded | self | unresolved | suspended
    objects: int
    parent: str | None  # the node whose objects define it
    depends_on: tuple[str, ...] = ()
    source: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return self.id or (self.path or ".")


@dataclass(frozen=True)
class Unresolved:
    """Something the tree asks Flux for that fleet does not render, with why."""

    kind: str
    name: str  # "namespace/name"
    source: str
    note: str
    defined_by: str  # the node whose objects hold it ("" = the root directory)


@dataclass(frozen=True)
class ExpandedObject:
    text: str
    object: dict[str, Any]
    node: str  # the node that applies it ("" = the root directory)


@dataclass(frozen=True)
class Expansion:
    root: str
    nodes: tuple[Node, ...]  # in the order they were expanded (the root first)
    objects: tuple[ExpandedObject, ...]
    unresolved: tuple[Unresolved, ...]
    notes: tuple[str, ...] = ()  # identical objects produced by two Kustomizations, pinned refs, ...
    replaced: tuple[str, ...] = ()  # the tree's copies of the operator's own objects, left out ("Kind/ns/name")

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


# ---- small helpers -----------------------------------------------------------------------------


def _group(obj: Mapping[str, Any]) -> str:
    api = str(obj.get("apiVersion") or "")
    return api.rsplit("/", 1)[0] if "/" in api else ""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _ref(obj: Mapping[str, Any]) -> str:
    m = _meta(obj)
    return f"{obj.get('kind', '?')}/{m.get('namespace') or '-'}/{m.get('name', '?')}"


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    m = _meta(obj)
    return (_group(obj), str(obj.get("kind", "")), str(m.get("namespace") or ""), str(m.get("name", "")))


def _is(obj: Mapping[str, Any], group: str, kind: str) -> bool:
    return obj.get("kind") == kind and _group(obj) == group


def normalize_url(url: str) -> str:
    """A Git URL reduced to ``host/path`` (no scheme, user, port, ``.git`` or trailing slash), lowercase,
    so ``ssh://git@host/org/repo.git``, ``git@host:org/repo`` and ``https://host/org/repo`` compare equal."""
    u = url.strip()
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(?P<host>[^/:]+)(?::\d+)?(?P<path>/.*)?$", u)
    if m:
        host, path = m["host"], m["path"] or ""
    else:
        scp = re.match(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.*)$", u)
        if not scp:
            return u.rstrip("/").removesuffix(".git").lower()
        host, path = scp["host"], "/" + scp["path"]
    return f"{host}{path}".rstrip("/").removesuffix(".git").lower()


def is_fleet_source(ref: SourceRef, defined: Mapping[str, Any] | None, fleet_urls: Sequence[str]) -> str | None:
    """Why ``ref`` is the fleet repo itself (a reason for the tree), or None when it is another source."""
    if ref.kind != "GitRepository":
        return None
    if ref.name in FLEET_SOURCES and ref.namespace == FLUX_NAMESPACE:
        return f"{ref}: the fleet repo"
    if defined is None:
        return None
    url = str((defined.get("spec") or {}).get("url") or "")
    wanted = {normalize_url(u) for u in fleet_urls if u}
    if url and normalize_url(url) in wanted:
        return f"{ref}: {url}, the fleet repo"
    return None


def clean_path(path: Any) -> str | None:
    """A Kustomization's ``spec.path`` as a repo path ("" = the root, Flux's default); None when it
    leaves the repository (Flux would clamp it at the artifact's root; fleet refuses it)."""
    p = posixpath.normpath(str(path or "").lstrip("/") or ".")  # Flux joins it under the artifact's root
    if p == ".." or p.startswith("../"):
        return None
    return "" if p == "." else p


# ---- what kustomize-controller writes into the path before building -----------------------------


def scan_resources(path: str, list_dir: Callable[[str], Sequence[tuple[str, str]]]) -> list[str]:
    """What Flux's generator lists as ``resources`` when ``path`` has no kustomization file: every
    ``.yaml``/``.yml`` file below it, and each subdirectory holding a kustomization file (not descended),
    in the order Go's ``filepath.Walk`` visits them. ``list_dir(dir)`` gives (name, kind) pairs."""
    out: list[str] = []

    def walk(d: str, rel: str) -> None:
        for name, kind in sorted(list_dir(d)):
            full = f"{d}/{name}" if d else name
            here = f"{rel}/{name}"
            if kind == "dir":
                if name in _EXCLUDED_DIRS:
                    continue
                sub = {n for n, k in list_dir(full) if k in ("file", "link")}
                if sub & set(KUSTOMIZATION_FILES):
                    out.append(here)
                    continue
                walk(full, here)
            elif kind in ("file", "link") and name.endswith((".yaml", ".yml")) and name not in _SOURCE_EXCLUDED:
                out.append(here)

    walk(path, ".")
    return out


def _local_relative(path: str) -> bool:
    low = path.lower()
    remote = ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/")
    return not (any(len(p) < len(path) and low.startswith(p) for p in remote) or path.startswith("/")
                or low.startswith("file:///"))


def flux_kustomization(
    existing: Mapping[str, Any] | None,
    resources: Sequence[str],
    spec: Mapping[str, Any],
    exists: Callable[[str], bool],
    where: str,
) -> dict[str, Any] | None:
    """The kustomization kustomize-controller builds in a Kustomization's path (fluxcd/pkg/kustomize
    ``Generator.GenerateManifest``): the directory's own (``existing``), or one listing ``resources``, with
    the Kustomization's options merged in. None when the directory's own would be built unchanged.
    ``exists(rel)``: whether a path relative to the directory exists (``ignoreMissingComponents``)."""
    created = existing is None
    if existing is None:
        kus: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
        if resources:
            kus["resources"] = list(resources)
        else:
            kus["namespace"] = "_placeholder"  # Flux's: an empty kustomization is no build error
    else:
        kus = json.loads(json.dumps(dict(existing)))
        if not kus.get("resources"):
            kus["buildMetadata"] = ["originAnnotations"]  # as Flux does for a kustomization without resources
    changed = created or ("buildMetadata" in kus and existing is not None and "buildMetadata" not in existing)
    for field_, key in (("targetNamespace", "namespace"), ("namePrefix", "namePrefix"), ("nameSuffix", "nameSuffix")):
        if isinstance(spec.get(field_), str):
            kus[key] = spec[field_]
            changed = True
    for i, p in enumerate(_list(spec.get("patches"), where, "spec.patches")):
        if not isinstance(p, dict):
            raise _field(where, f"spec.patches[{i}]", "a patch is a mapping (patch, target)")
        entry: dict[str, Any] = {"patch": p.get("patch", "")}
        if isinstance(p.get("target"), dict):
            entry["target"] = p["target"]
        kus.setdefault("patches", []).append(entry)
        changed = True
    ignore_missing = spec.get("ignoreMissingComponents") is True
    for i, comp in enumerate(_list(spec.get("components"), where, "spec.components")):
        if not isinstance(comp, str) or not _local_relative(comp):
            raise _field(where, f"spec.components[{i}]", f'component path "{comp}" must be local and relative')
        if ignore_missing and not exists(comp):
            continue
        kus.setdefault("components", []).append(comp)
        changed = True
    for p in _list(spec.get("patchesStrategicMerge"), where, "spec.patchesStrategicMerge"):
        kus.setdefault("patchesStrategicMerge", []).append(json.dumps(p))
        changed = True
    for i, p in enumerate(_list(spec.get("patchesJson6902"), where, "spec.patchesJson6902")):
        if not isinstance(p, dict):
            raise _field(where, f"spec.patchesJson6902[{i}]", "a patch is a mapping (patch, target)")
        kus.setdefault("patchesJson6902", []).append(
            {"patch": json.dumps(p.get("patch"), separators=(",", ":")), "target": p.get("target") or {}}
        )
        changed = True
    for i, img in enumerate(_list(spec.get("images"), where, "spec.images")):
        if not isinstance(img, dict) or not img.get("name"):
            raise _field(where, f"spec.images[{i}]", "an image needs a name")
        _merge_image(kus.setdefault("images", []), img)
        changed = True
    build_metadata = spec.get("buildMetadata")
    if isinstance(build_metadata, list) and build_metadata:
        kus["buildMetadata"] = list(build_metadata)
        changed = True
    return kus if changed else None


def _field(where: str, key: str, message: str, hint: str | None = None) -> FluxTreeError:
    """An error about one field of a Kustomization (``where``: "Kustomization namespace/name")."""
    ks = where.removeprefix("Kustomization ") if where.startswith("Kustomization ") else None
    return FluxTreeError(f"{where}: {key}: {message}", hint=hint, kustomization=ks, key=key)


def _list(value: Any, where: str, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _field(where, key, "expected a list")
    return value


def _merge_image(images: list[dict[str, Any]], image: Mapping[str, Any]) -> None:
    for current in images:
        if current.get("name") == image["name"]:
            if image.get("newName"):
                current["newName"] = image["newName"]
            if image.get("newTag") or image.get("digest"):  # tag and digest move together, as in Flux
                for k in ("newTag", "digest"):
                    if image.get(k):
                        current[k] = image[k]
                    else:
                        current.pop(k, None)
            return
    images.append({k: image[k] for k in ("name", "newName", "newTag", "digest") if image.get(k)})


# ---- the expansion ---------------------------------------------------------------------------


@dataclass
class _Pending:
    obj: dict[str, Any]
    parent: str
    ancestors: tuple[str, ...]  # paths of the nodes above it (a path applied again is "self")

    @property
    def id(self) -> str:
        m = _meta(self.obj)
        return f"{m.get('namespace') or FLUX_NAMESPACE}/{m.get('name', '?')}"

    @property
    def namespace(self) -> str:
        return str(_meta(self.obj).get("namespace") or FLUX_NAMESPACE)

    @property
    def spec(self) -> dict[str, Any]:
        s = self.obj.get("spec")
        return s if isinstance(s, dict) else {}

    def depends_on(self) -> tuple[str, ...]:
        out = []
        for d in self.spec.get("dependsOn") or []:
            if isinstance(d, dict) and d.get("name"):
                out.append(f"{d.get('namespace') or self.namespace}/{d['name']}")
        return tuple(out)


@dataclass
class _State:
    build: Builder
    fleet_urls: Sequence[str]
    where: str
    operator: frozenset[tuple[str, str, str, str]] = frozenset()
    nodes: list[Node] = field(default_factory=list)
    objects: list[ExpandedObject] = field(default_factory=list)
    placed: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    sources: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    pending: dict[str, _Pending] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    # (namespace, artifact name) -> (the ArtifactGenerator's "namespace/name", the generator, its output artifact)
    generators: dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)

    def place(self, docs: Sequence[tuple[str, dict[str, Any]]], node: str, ancestors: tuple[str, ...]) -> int:
        count = 0
        for text, obj in docs:
            key = _key(obj)
            if key in self.operator:
                self.replaced.append(_ref(obj))
                continue
            if key in self.placed:
                first = self.objects[self.placed[key]]
                if first.object == obj:
                    self.notes.append(
                        f"{_ref(obj)} is produced by {_who(first.node)} and {_who(node)} alike: kept once"
                    )
                    continue
                raise FluxTreeError(
                    f"{_ref(obj)} is produced by {_who(first.node)} and by {_who(node)}, differently: "
                    "Flux would apply both and the last reconcile would win",
                    hint="keep the object in one Kustomization (or make both produce the same object)",
                )
            self.placed[key] = len(self.objects)
            self.objects.append(ExpandedObject(text, obj, node))
            count += 1
            self.discover(obj, node, ancestors)
        return count

    def discover(self, obj: dict[str, Any], node: str, ancestors: tuple[str, ...]) -> None:
        if _is(obj, GENERATOR_GROUP, "ArtifactGenerator"):
            m = _meta(obj)
            ns = str(m.get("namespace") or FLUX_NAMESPACE)
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            for art in (spec or {}).get("artifacts") or []:
                if isinstance(art, dict) and art.get("name"):
                    self.generators.setdefault((ns, str(art["name"])), (f"{ns}/{m.get('name', '?')}", obj, art))
        elif _group(obj) == SOURCE_GROUP:
            m = _meta(obj)
            self.sources[(str(obj.get("kind")), str(m.get("namespace") or FLUX_NAMESPACE), str(m.get("name")))] = obj
        elif _is(obj, KUSTOMIZE_GROUP, "Kustomization"):
            p = _Pending(obj, node, ancestors)
            if p.id not in self.pending and p.id not in self.done:
                self.pending[p.id] = p
        elif _is(obj, HELM_GROUP, "HelmRelease"):
            m = _meta(obj)
            spec = obj.get("spec") or {}
            chart = ((spec.get("chart") or {}).get("spec") or {}) if isinstance(spec, dict) else {}
            src = chart.get("sourceRef") or {}
            if isinstance(spec, dict) and spec.get("chartRef"):
                src = spec["chartRef"]
            ns = str(m.get("namespace") or "default")
            source = f"{src.get('kind', '?')}/{src.get('namespace') or ns}/{src.get('name', '?')}" if src else "?"
            what = f'chart "{chart.get("chart")}"' if chart.get("chart") else "its chart"
            self.unresolved.append(Unresolved(
                "HelmRelease", f"{ns}/{m.get('name', '?')}", source,
                f"{what} from {source} is not rendered: the HelmRelease is kept as an object; what "
                "helm-controller installs from it is not part of this render",
                node,
            ))


def _who(node: str) -> str:
    return f"Kustomization {node}" if node else "the cluster directory"


_parsed: OrderedDict[str, str] = OrderedDict()  # object text -> its JSON (parsing YAML is most of a warm run)
_parsed_lock = threading.Lock()
_PARSED_SIZE = 20000


def clear_cache() -> None:
    """Forget the parsed objects kept in-process (a new process starts without them)."""
    with _parsed_lock:
        _parsed.clear()


def _parse(text: str, where: str) -> dict[str, Any]:
    """The object ``text`` holds (a fresh copy each time: callers may change it)."""
    with _parsed_lock:
        cached = _parsed.get(text)
        if cached is not None:
            _parsed.move_to_end(text)
    if cached is not None:
        again: dict[str, Any] = json.loads(cached)
        return again
    try:
        obj = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        raise RenderError(f"{where}: substituted manifests are not valid YAML: {e}") from e
    if not isinstance(obj, dict):
        return {}
    try:
        as_json = json.dumps(obj)
    except (TypeError, ValueError):  # a YAML date or a non-string key: not kept, parsed every time
        return obj
    if json.loads(as_json) == obj:
        with _parsed_lock:
            _parsed[text] = as_json
            while len(_parsed) > _PARSED_SIZE:
                _parsed.popitem(last=False)
    return obj


def _substitute_docs(
    docs: Sequence[BuiltDoc], values: Mapping[str, str] | None, where: Callable[[str], str], hint: str
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in docs:
        text = doc.text
        if values is not None and doc.substitute and "$" in text:
            try:
                text = substitute(text, values, where=where(doc.ref))
            except MissingVariables as e:
                e.hint = hint
                raise
        out.append((text, _parse(text, where("?"))))
    return out


def _dump(obj: Mapping[str, Any]) -> str:
    text: str = yaml.dump(dict(obj), Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text


_Docs = list[tuple[str, dict[str, Any]]]


def _common_metadata(docs: _Docs, spec: Mapping[str, Any]) -> _Docs:
    cm = spec.get("commonMetadata")
    if not isinstance(cm, dict):
        return docs
    labels = cm.get("labels") if isinstance(cm.get("labels"), dict) else {}
    annotations = cm.get("annotations") if isinstance(cm.get("annotations"), dict) else {}
    if not labels and not annotations:
        return docs
    out = []
    for _, obj in docs:
        meta = obj.setdefault("metadata", {})
        for key, extra in (("labels", labels), ("annotations", annotations)):
            if extra:
                meta[key] = {**(meta.get(key) or {}), **{str(k): str(v) for k, v in extra.items()}}
        out.append((_dump(obj), obj))
    return out


def _var_values(obj: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's ``data``, or a Secret's ``data`` (base64) and ``stringData``, newlines removed."""
    out: dict[str, str] = {}
    if obj.get("kind") == "Secret":
        for k, v in (obj.get("data") or {}).items():
            try:
                out[str(k)] = base64.b64decode(str(v), validate=True).decode("utf-8").replace("\n", "")
            except (binascii.Error, UnicodeDecodeError):
                raise FluxTreeError(f"{_ref(obj)}: data.{k} is not base64 of UTF-8 text") from None
        for k, v in (obj.get("stringData") or {}).items():
            out[str(k)] = str(v).replace("\n", "")
    else:
        for k, v in (obj.get("data") or {}).items():
            out[str(k)] = str(v).replace("\n", "")
    return out


_MISSING_HINT = (
    "set it in the Kustomization's postBuild.substitute, or in a ConfigMap or Secret of its "
    "postBuild.substituteFrom; " + MISSING_HINT.split("; ", 1)[1]
)


def expand(
    root: str,
    build: Builder,
    *,
    root_vars: Mapping[str, str] | None = None,
    fleet_urls: Sequence[str] = (),
    where: str = "",
    operator: Collection[tuple[str, str, str, str]] = (),
) -> Expansion:
    """Expand the Flux cluster directory ``root`` (a repo path); see the module docstring. ``where`` ends
    messages (e.g. ``' (cluster "eu-1" at 1a2b3c4d5e6f)'``). ``operator``: the keys (group, kind, namespace,
    name) of the objects the operator that applies ``root`` owns on the cluster (fleet's own GitRepository
    and Kustomization, annotated so Flux never applies over them): a copy the tree holds is left out, with
    a note."""
    st = _State(build, fleet_urls, where, frozenset(operator))
    docs = build(BuildRequest(root, {}, None))
    substituted = _substitute_docs(
        docs, root_vars, lambda ref: f" in {ref} (cluster directory {root or '.'}{_inner(where)})", MISSING_HINT
    )
    count = st.place(substituted, "", (root,))
    st.nodes.append(Node("", root, "root", count, None, note="the cluster directory"))
    deferred: set[str] = set()
    while st.pending:
        ready = sorted(
            (p for p in st.pending.values() if all(d in st.done for d in p.depends_on())),
            key=lambda p: p.id,
        )
        progressed = False
        for p in ready:
            others = [q for q in st.pending if q != p.id]
            if _expand_one(st, p, final=not others):
                progressed = True
                deferred.discard(p.id)
                break  # what it produced may make others ready, or be what they substitute from
            deferred.add(p.id)
        if progressed:
            continue
        if ready:  # every ready one waits for a ConfigMap or Secret nothing pending can still define...
            _expand_one(st, ready[0], final=True)  # ...so it is missing: optional ones go on without it
            continue
        raise _stuck(st)
    return Expansion(root, tuple(st.nodes), tuple(st.objects), tuple(st.unresolved), tuple(st.notes),
                     tuple(st.replaced))


def _inner(where: str) -> str:
    """`` (cluster "eu-1" at 1a2b)`` as ``, cluster "eu-1" at 1a2b``, to go inside parentheses."""
    inner = where.strip().removeprefix("(").removesuffix(")")
    return f", {inner}" if inner else ""


def _stuck(st: _State) -> FluxTreeError:
    for p in sorted(st.pending.values(), key=lambda p: p.id):
        missing = [d for d in p.depends_on() if d not in st.done and d not in st.pending]
        if missing:
            return FluxTreeError(
                f"Kustomization {p.id} depends on {missing[0]}, which the tree does not define: Flux would "
                f"never apply it{st.where}",
                hint="define that Kustomization in the tree, or remove it from dependsOn",
                kustomization=p.id, key="spec.dependsOn",
            )
    chain = _cycle(st)
    return FluxTreeError(f"dependsOn cycle: {' -> '.join(chain)}{st.where}", hint="Flux would apply none of them")


def _cycle(st: _State) -> list[str]:
    start = sorted(st.pending)[0]
    seen: list[str] = [start]
    while True:
        nxt = next(d for d in st.pending[seen[-1]].depends_on() if d in st.pending)
        if nxt in seen:
            return [*seen[seen.index(nxt):], nxt]
        seen.append(nxt)


def _expand_one(st: _State, p: _Pending, *, final: bool) -> bool:
    """Expand one ready Kustomization; False (nothing done) while a substituteFrom it needs may still come."""
    spec = p.spec
    here = f"Kustomization {p.id}"
    raw = spec.get("sourceRef")
    raw_ref: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ref = SourceRef(
        str(raw_ref.get("kind") or "?"), str(raw_ref.get("namespace") or p.namespace), str(raw_ref.get("name") or "?")
    )
    depends = p.depends_on()
    path = clean_path(spec.get("path"))
    if path is None:
        raise _field(here, "spec.path", f'"{spec.get("path")}" leaves the repository{st.where}')

    def finish(node: Node) -> bool:
        st.nodes.append(node)
        st.done.add(p.id)
        del st.pending[p.id]
        return True

    if spec.get("suspend") is True:
        st.unresolved.append(Unresolved("Kustomization", p.id, str(ref),
                                        "suspended (spec.suspend: true): Flux applies nothing of it", p.parent))
        return finish(Node(p.id, path, "suspended", 0, p.parent, depends, str(ref), "suspended"))
    if isinstance(spec.get("kubeConfig"), dict):
        note = "applies to another cluster (spec.kubeConfig): its objects are not part of this cluster"
        st.unresolved.append(Unresolved("Kustomization", p.id, str(ref), note, p.parent))
        return finish(Node(p.id, path, "unresolved", 0, p.parent, depends, str(ref), note))
    artifact: ArtifactRequest | None = None
    if ref.kind == "ExternalArtifact":
        made = st.generators.get((ref.namespace, ref.name))
        if made is None and not final:
            return False  # an ArtifactGenerator a pending Kustomization applies may still make it
        if made is not None:
            found = _artifact_request(st, ref, *made)
            if isinstance(found, str):
                st.unresolved.append(Unresolved("Kustomization", p.id, str(ref), found, p.parent))
                return finish(Node(p.id, path, "unresolved", 0, p.parent, depends, str(ref), found))
            artifact = found
    defined = st.sources.get((ref.kind, ref.namespace, ref.name))
    why = is_fleet_source(ref, defined, st.fleet_urls) if artifact is None else "made from the fleet repo"
    if why is None:
        if ref.kind == "GitRepository" and defined is not None:
            url = (defined.get("spec") or {}).get("url")
            note = f"source {ref} is another Git repository ({url}): its objects are not rendered"
        elif ref.kind == "GitRepository":
            note = f"source {ref} is not defined in the tree: its objects are not rendered"
        else:
            note = f"source {ref} is not the fleet repo: its objects are not rendered"
        st.unresolved.append(Unresolved("Kustomization", p.id, str(ref), note, p.parent))
        return finish(Node(p.id, path, "unresolved", 0, p.parent, depends, str(ref), note))
    if defined is not None:
        pin = (defined.get("spec") or {}).get("ref") or {}
        pin = pin if isinstance(pin, dict) else {}
        fixed = {k: v for k, v in pin.items() if k in ("tag", "semver", "commit", "name") and v}
        if fixed and ref.name not in FLEET_SOURCES:
            st.notes.append(f"{ref} pins {fixed}; {here} is rendered at the revision being rendered")
    place = path if artifact is None else f"{ref}:{path}"  # a directory of the artifact, not of the repo
    if place in p.ancestors:
        return finish(Node(p.id, path, "self", 0, p.parent, depends, str(ref),
                           f"applies {path or '.'} again (above it in the tree): not expanded twice"))
    values = _values(st, p, final)
    if values is _WAIT:
        return False
    assert not isinstance(values, _Wait)
    try:
        docs = st.build(BuildRequest(path, spec, p.id, artifact))
    except Unsupported as e:
        note = f"source {ref} is made by ArtifactGenerator {artifact.generator if artifact else '?'}: {e}"
        st.unresolved.append(Unresolved("Kustomization", p.id, str(ref), note, p.parent))
        return finish(Node(p.id, path, "unresolved", 0, p.parent, depends, str(ref), note))
    substituted = _substitute_docs(
        docs, values, lambda r: f" in {r} ({here}, path {path or '.'}{_inner(st.where)})", _MISSING_HINT
    )
    final_docs = _common_metadata(substituted, spec)
    count = st.place(final_docs, p.id, (*p.ancestors, place))
    return finish(Node(p.id, path, "expanded", count, p.parent, depends, str(ref)))


def _artifact_request(st: _State, ref: SourceRef, generator: str, gen: Mapping[str, Any],
                      art: Mapping[str, Any]) -> ArtifactRequest | str:
    """The request to build from the ExternalArtifact ``ref`` that ArtifactGenerator ``generator`` makes,
    or why it is not rendered (a source that is not the fleet repo, ...)."""
    made = f"source {ref} is made by ArtifactGenerator {generator}"
    meta = _meta(gen)
    marks = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
    if str(marks.get("source.extensions.fluxcd.io/reconcile", "")).lower() == "disabled":
        return f"{made}, whose reconciliation is disabled: Flux makes no new artifact from it"
    spec = gen.get("spec") if isinstance(gen.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if spec.get("pathPattern"):
        return f"{made} with a pathPattern, which fleet does not expand: its objects are not rendered"
    gen_ns = generator.split("/", 1)[0]
    sources = {str(s.get("alias")): s for s in spec.get("sources") or [] if isinstance(s, dict)}
    copy = art.get("copy") if isinstance(art.get("copy"), list) else []
    aliases: list[str] = []
    ignores: list[str | None] = []
    for op in copy or []:
        frm = str(op.get("from") or "") if isinstance(op, dict) else ""
        alias = frm[1:].split("/", 1)[0] if frm.startswith("@") else ""
        if alias and alias not in aliases:
            aliases.append(alias)
    for alias in aliases:
        src = sources.get(alias)
        ignore = None
        if src is not None:  # else the copy fails as source-watcher's does ("source alias not found")
            sref = SourceRef(str(src.get("kind") or "?"), str(src.get("namespace") or gen_ns),
                             str(src.get("name") or "?"))
            defined = st.sources.get((sref.kind, sref.namespace, sref.name))
            if is_fleet_source(sref, defined, st.fleet_urls) is None:
                return f"{made} from {sref} (@{alias}), which is not the fleet repo: its objects are not rendered"
            found = ((defined or {}).get("spec") or {}).get("ignore")
            ignore = found if isinstance(found, str) else None
        ignores.append(ignore)
    return ArtifactRequest(str(ref), generator, tuple(aliases), tuple(copy or ()), tuple(ignores))


class _Wait:
    pass


_WAIT = _Wait()


def _values(st: _State, p: _Pending, final: bool) -> dict[str, str] | _Wait | None:
    """The variables of a Kustomization's postBuild (None: no substitution), as the controller loads them:
    ``substituteFrom`` in order (later ones win), then ``substitute`` over them."""
    post = p.spec.get("postBuild")
    if not isinstance(post, dict):
        return None
    values: dict[str, str] = {}
    for i, src in enumerate(post.get("substituteFrom") or []):
        if not isinstance(src, dict) or src.get("kind") not in ("ConfigMap", "Secret"):
            raise _field(f"Kustomization {p.id}", f"spec.postBuild.substituteFrom[{i}]",
                         "kind must be ConfigMap or Secret")
        key = ("", str(src["kind"]), p.namespace, str(src.get("name")))
        at = st.placed.get(key)
        if at is None:
            if not final:
                return _WAIT
            if src.get("optional") is True:
                continue
            raise _field(
                f"Kustomization {p.id}", f"spec.postBuild.substituteFrom[{i}]",
                f"{src['kind']} {p.namespace}/{src.get('name')} is not defined in the tree{st.where}",
                hint="define it in the tree (fleet renders from Git only), or mark the reference optional: true",
            )
        values.update(_var_values(st.objects[at].object))
    subst = post.get("substitute")
    if isinstance(subst, dict):
        values.update({str(k): str(v).replace("\n", "") for k, v in subst.items()})
    if not values and post.get("substituteStrategy") != "Always":
        return None  # Flux substitutes only when there is a variable (or the strategy says Always)
    return values


def merge_maps(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Flux's MergeMaps: mappings merged key by key, anything else taken from ``over``: helm-controller's values
    (fleet.rendering.helm) and source-watcher's YAML merge of copied files (fleet.rendering.artifacts)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_maps(out[k], v)
        else:
            out[k] = v
    return out


def tree_lines(exp: Expansion) -> list[str]:
    """The Kustomization graph as a table: each node under the one whose objects define it, with its path,
    its object count and what else there is to say (dependsOn, unresolved, ...)."""
    children: dict[str | None, list[Node]] = {}
    for n in exp.nodes:
        children.setdefault(n.parent, []).append(n)
    rows: list[tuple[str, str, str, str]] = []

    def note(n: Node) -> str:
        parts = [f"after {', '.join(n.depends_on)}"] if n.depends_on else []
        if n.status == "self":
            parts.append("this directory again: not expanded twice")
        elif n.status == "unresolved":
            parts.append(f"unresolved: {n.note}")
        elif n.status == "suspended":
            parts.append("suspended: nothing applied")
        return "; ".join(parts)

    def walk(n: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else f"{prefix}{'└── ' if last else '├── '}"
        count = str(n.objects) if n.status in ("root", "expanded") else "-"
        rows.append((branch + n.label, n.path or ".", count, note(n)))
        kids = children.get(n.id, []) if n.status in ("root", "expanded") else []
        below = "" if top else prefix + ("    " if last else "│   ")
        for i, k in enumerate(kids):
            walk(k, below, i == len(kids) - 1, False)

    for top in children.get(None, []):
        walk(top, "", True, True)
    header = ("KUSTOMIZATION", "PATH", "OBJECTS", "NOTE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in [header, *rows]
    ]
    total = sum(n.objects for n in exp.nodes)
    lines.append(f"{total} objects from {sum(1 for n in exp.nodes if n.status in ('root', 'expanded'))} builds")
    if exp.unresolved:
        lines.append(f"unresolved ({len(exp.unresolved)}): not rendered, listed so nothing is dropped silently")
        lines += [f"  {u.kind} {u.name}: {u.note}" for u in exp.unresolved]
    if exp.replaced:
        lines.append(f"the operator's own ({len(exp.replaced)}): fleet's, pinned at the revision, stand in their "
                     "place on the cluster, and Flux applies nothing over them")
        lines += [f"  {x}" for x in exp.replaced]
    if exp.notes:
        lines.append("notes:")
        lines += [f"  {x}" for x in exp.notes]
    return lines
