"""HelmReleases expanded as Flux's helm-controller would install them, offline but for the charts.

For every ``HelmRelease`` (``helm.toolkit.fluxcd.io``) among a cluster's rendered objects, :func:`expand`
finds its chart, computes its values and runs ``helm template`` through fleet-build (Helm v4's client-only
install: :func:`fleet.adapters.fluxbuild.template`), so the objects it gives are what ``helm template`` of
the same chart and values prints:

- the chart: ``spec.chart.spec`` (``chart``, ``version``: a semver range, ``*`` by default, resolved against
  the repository's ``index.yaml`` as Helm does: an exact version first, else the highest that meets the
  range) from a ``HelmRepository`` of the render (HTTP; or ``type: oci``: the registry's tags, through
  fleet-build's Helm registry client), or from a ``GitRepository`` that is the fleet repo (the chart's
  directory at the revision being rendered); ``spec.chartRef`` to a ``HelmChart`` of the render (the same,
  from its spec), or to an ``OCIRepository`` of the render (its ``ref``: digest, semver, tag; its
  ``layerSelector``). A fleet.yaml ``helm.mirror`` (a directory of the repo, or an http(s) URL, holding an
  ``index.yaml`` and the charts it lists) is asked first, for offline use. ``valuesFiles`` replace the
  chart's default values as source-controller packages the chart: files of the chart merged in order (by
  fleet-build), or, for a chart of the fleet repo, files of the repo at the revision.
- the release: ``spec.releaseName``, else ``[targetNamespace-]name``; its namespace ``spec.targetNamespace``,
  else the HelmRelease's (helm-controller's api: ``GetReleaseName``, ``GetReleaseNamespace``);
- the values: ``spec.valuesFrom`` in order (ConfigMaps and Secrets of the same render and namespace;
  ``valuesKey`` default ``values.yaml``; ``targetPath`` sets one value; ``optional`` ones may be missing),
  each merged over the last, then ``spec.values`` over them;
- CRDs (the chart's ``crds/``): included unless ``install.crds`` is ``Skip`` and ``upgrade.crds`` is not
  ``Create``/``CreateReplace``;
- ``spec.postRenderers[].kustomize`` (patches, strategic merge and JSON 6902 patches, images): applied to
  ``helm template``'s output by a kustomize build through fleet-build, never re-implemented.

Charts are downloaded once and kept by their sha256 digest under ``fleet_home()/cache/helm/charts`` (the
index's digest is checked; an OCI chart by its layer's digest, read anonymously by fleet-build: no
credential of the repo or of the user); the archive is the only file the builder may read (its root is the
chart's cache folder), and the builder runs no plugin, no post-render binary and no network while it
renders: a template's ``.Files.Get`` stays inside the chart, ``lookup`` finds nothing. A chart source that
cannot be reached (connection refused, HTTP error; an OCI registry that cannot be connected to or answers
5xx/429) is a warning and the release is listed unresolved; a chart that does not exist (an OCI artifact
or tag the registry does not have), a version no chart meets, values failing the chart's
``values.schema.json``, a missing valuesFrom or valuesFile, a template error:
:class:`~fleet.errors.HelmError` naming the HelmRelease (exit 2). A SOPS-encrypted Secret
named by ``valuesFrom`` is decrypted in memory only when the caller passes the age keys (``fleet render
--decrypt``); otherwise its release is listed unresolved, so no value of it can be printed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import math
import posixpath
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fleet.adapters import fluxbuild, net
from fleet.errors import BuildLimit, ChartUnreachable, FleetError, HelmError, RenderError
from fleet.paths import fleet_home, read_sealed, write_private, write_sealed, writes_allowed
from fleet.rendering.fluxtree import SourceRef, is_fleet_source, merge_maps

if TYPE_CHECKING:
    from fleet.adapters.git import GitRepo

__all__ = [
    "HELM_GROUP",
    "Expanded",
    "Options",
    "Release",
    "Unexpanded",
    "clear_cache",
    "expand",
    "is_release",
    "release_name",
    "resolve_version",
    "stats",
]

HELM_GROUP = "helm.toolkit.fluxcd.io"
SOURCE_GROUP = "source.toolkit.fluxcd.io"
_VERSION = "fleet-helm-v1"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_INDEX = 32 << 20  # bytes of one repository index
_MAX_CHART = 64 << 20  # bytes of one chart archive
_MAX_VALUES = 8 << 20  # bytes of one values file of the fleet repo (as fleet-build's limit on a file)
# the layers `helm push` writes a chart as (helm.sh/helm/v4/pkg/registry: ChartLayerMediaType, the legacy one)
_CHART_LAYERS = ("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "application/tar+gzip")
_TIMEOUT = 30.0
_lock = threading.Lock()
_indexes: dict[str, dict[str, Any] | OSError] = {}  # index URL -> parsed index (or why it failed), per process
_oci: dict[str, fluxbuild.OciLayer | RenderError] = {}  # OCI request -> the layer (or why it failed), per process
_outputs: OrderedDict[str, str] = OrderedDict()  # template key -> helm template's output (post-rendered)
_parsed: OrderedDict[str, tuple[tuple[str, str], ...]] = OrderedDict()  # template key -> (text, JSON) of each object
_stats = {"index_fetches": 0, "oci_resolves": 0, "chart_downloads": 0, "templates": 0, "template_hits": 0}


@dataclass(frozen=True)
class Options:
    """What an expansion needs besides the objects: the fleet repo's URLs (a GitRepository with one of them
    is the fleet repo), fleet.yaml's ``helm.mirror``, and age keys to decrypt SOPS-encrypted valuesFrom
    Secrets in memory (None: such releases stay unresolved)."""

    fleet_urls: tuple[str, ...] = ()
    mirror: str | None = None
    keys: tuple[Any, ...] | None = None
    kube_version: str = ""


@dataclass(frozen=True)
class Release:
    """One HelmRelease rendered: its id (``namespace/name``), chart and version, and the objects."""

    id: str
    chart: str
    version: str
    objects: tuple[tuple[str, dict[str, Any]], ...]  # (YAML text, object)


@dataclass(frozen=True)
class Unexpanded:
    """A HelmRelease whose chart is not rendered, with why; ``warning``: its source could not be reached."""

    id: str
    source: str
    note: str
    warning: bool = False


@dataclass(frozen=True)
class Expanded:
    releases: tuple[Release, ...]
    unresolved: tuple[Unexpanded, ...]


def stats() -> dict[str, int]:
    """Counters since :func:`clear_cache`: index fetches, OCI artifacts resolved, chart downloads, templates run
    and reused."""
    return dict(_stats)


def clear_cache(*, disk: bool = False) -> None:
    """Forget the indexes and outputs kept in-process (and the chart and output caches on disk with ``disk``)."""
    with _lock:
        _indexes.clear()
        _oci.clear()
        _outputs.clear()
        _parsed.clear()
        for k in _stats:
            _stats[k] = 0
    if disk:
        import shutil

        shutil.rmtree(_cache(), ignore_errors=True)


def _cache() -> Path:
    return fleet_home() / "cache" / "helm"


def is_release(obj: Mapping[str, Any]) -> bool:
    api = str(obj.get("apiVersion") or "")
    return obj.get("kind") == "HelmRelease" and api.rsplit("/", 1)[0] == HELM_GROUP


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("namespace") or "default")


def release_name(hr: Mapping[str, Any]) -> tuple[str, str]:
    """(release name, release namespace) as helm-controller's api gives them: ``spec.releaseName``, else
    ``[targetNamespace-]name``; ``spec.targetNamespace``, else the HelmRelease's namespace."""
    spec, name = _spec(hr), str(_meta(hr).get("name") or "")
    target = str(spec.get("targetNamespace") or "")
    release = str(spec.get("releaseName") or "") or (f"{target}-{name}" if target else name)
    return release, target or _namespace(hr)


# ---- versions -----------------------------------------------------------------------------------------


def resolve_version(versions: Sequence[str], constraint: str) -> str | None:
    """The version Helm's repository index gives for ``constraint``: an exact match of the text first, else
    the highest version that meets the range (``*`` when empty; ranges as Masterminds/semver writes them:
    ``>=1.2 <2``, ``^1.2``, ``~1.2.3``, ``1.x``, ``a || b``, ``1.2 - 1.4``, commas for "and"); None when none."""
    want = constraint.strip() or "*"
    if want in versions:
        return want
    import nodesemver

    rng = " ".join(p.strip() for p in want.replace(",", " ").split())
    try:
        found = nodesemver.max_satisfying([v for v in versions if _semver(v)], rng, loose=True)
    except (ValueError, TypeError) as e:
        raise ValueError(f'version "{constraint}" is not a semver range: {e}') from None
    if found is None:
        return None
    return next((v for v in versions if v.lstrip("v=") == str(found) or v == str(found)), str(found))


def _semver(v: str) -> bool:
    import nodesemver

    try:
        return nodesemver.make_semver(v, loose=True) is not None
    except (ValueError, TypeError):
        return False


# ---- fetching -----------------------------------------------------------------------------------------


class _Unreachable(Exception):
    """A chart source that cannot be reached (the release is listed unresolved, with a warning)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(why)
        self.url, self.why = url, why


_http_url = net.is_http
_shown = net.url_shown


def _get(url: str, limit: int) -> bytes:
    if not _http_url(url):
        raise _Unreachable(url, "only http(s) URLs are fetched")
    try:
        body = net.fetch(url, timeout=_TIMEOUT, limit=limit)
    except OSError as e:
        why = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        code = getattr(e, "code", None)
        raise _Unreachable(url, f"HTTP {code}" if code else " ".join(str(why).split())[:200]) from None
    return body


def _index(url: str, where: str) -> dict[str, Any]:
    """A repository's parsed ``index.yaml`` (asked once per process)."""
    index_url = url.rstrip("/") + "/index.yaml"
    with _lock:
        found = _indexes.get(index_url)
    if isinstance(found, OSError):
        raise _Unreachable(index_url, str(found))
    if found is not None:
        return found
    try:
        raw = _get(index_url, _MAX_INDEX)
    except _Unreachable as e:
        with _lock:
            _indexes[index_url] = OSError(e.why)
        raise
    with _lock:
        _stats["index_fetches"] += 1
    try:
        data = yaml.load(raw, Loader=_LOADER)
    except (yaml.YAMLError, RecursionError):  # its text is not quoted: a URL is anyone's to point anywhere
        raise HelmError(f"{where}: {_shown(index_url)} is not a Helm repository index (not YAML)") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise HelmError(f"{where}: {_shown(index_url)} is not a Helm repository index (no entries)")
    with _lock:
        _indexes[index_url] = data
    return data


@dataclass(frozen=True)
class _Chart:
    """A chart found: its archive (or directory) under ``root``, and what keys its content."""

    root: Path
    path: str  # relative to root
    name: str
    version: str
    digest: str  # sha256 of the archive, or the Git tree id of a directory
    cleanup: Callable[[], None] | None = None
    # spec.valuesFiles: files of the chart merged by the builder (a chart of a repository), or the merge
    # already made (a chart of the fleet repo, whose files are read at the revision)
    values_files: tuple[str, ...] = ()
    ignore_missing: bool = False
    chart_values: Mapping[str, Any] | None = None


def _archive(digest: str) -> Path:
    return _cache() / "charts" / digest / "chart.tgz"


def _kept_archive(digest: str) -> Path | None:
    path = _archive(digest)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != digest:  # an edited or truncated entry is fetched again
        if writes_allowed():
            with contextlib.suppress(OSError):
                path.unlink()
        return None
    return path


def _keep_archive(data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    path = _archive(digest)
    if _kept_archive(digest) is None:
        try:
            write_private(path, data)
        except OSError:  # a FLEET_HOME that cannot be written (or a dry run): a private temporary copy
            tmp = Path(tempfile.mkdtemp(prefix="fleet-chart-")) / digest / "chart.tgz"
            tmp.parent.mkdir(parents=True)
            tmp.write_bytes(data)
            return tmp
    return path


def _from_index(index: Mapping[str, Any], base: str, name: str, constraint: str, where: str,
                fetch: Callable[[str], bytes], label: str = "") -> _Chart:
    """The chart ``name`` at the version ``constraint`` picks in ``index`` (of the repository at ``base``,
    shown as ``label``), from the cache by its digest, else downloaded with ``fetch``."""
    label = label or _shown(base)
    entries = index["entries"].get(name)
    if not isinstance(entries, list) or not entries:
        raise HelmError(f'{where}: chart "{name}" does not exist in {label}')
    versions = [str(e.get("version")) for e in entries if isinstance(e, dict) and e.get("version") is not None]
    try:
        version = resolve_version(versions, constraint)
    except ValueError as e:
        raise HelmError(f"{where}: spec.chart.spec.version: {e}") from None
    if version is None:
        shown = ", ".join(sorted(set(versions))[-6:])
        raise HelmError(f'{where}: no version of chart "{name}" in {label} meets "{constraint or "*"}" '
                        f"(it has {shown})")
    entry = next(e for e in entries if isinstance(e, dict) and str(e.get("version")) == version)
    digest = str(entry.get("digest") or "")
    if digest:
        kept = _kept_archive(digest)
        if kept is not None:
            return _Chart(kept.parent, kept.name, name, version, digest)
    listed = entry.get("urls")
    urls = [u for u in listed if isinstance(u, str)] if isinstance(listed, list) else []
    if not urls:
        raise HelmError(f'{where}: chart "{name}" {version} in {label} lists no URL')
    url = net.join_url(base.rstrip("/") + "/", urls[0]) if net.is_http(base) else urls[0]
    data = fetch(url)
    with _lock:
        _stats["chart_downloads"] += 1
    got = hashlib.sha256(data).hexdigest()
    if digest and got != digest:
        raise HelmError(f'{where}: chart "{name}" {version} from {label} does not match the index\'s digest')
    path = _keep_archive(data)
    return _Chart(path.parent, path.name, name, version, got)


# ---- the expansion ------------------------------------------------------------------------------------


class _Skip(Exception):
    """A release fleet does not render, with the note that says why."""

    def __init__(self, source: str, note: str, warning: bool = False) -> None:
        super().__init__(note)
        self.source, self.note, self.warning = source, note, warning


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(obj.get("kind") or ""), _namespace(obj), str(_meta(obj).get("name") or ""))


class _Expander:
    def __init__(self, g: GitRepo, sha: str, objects: Sequence[Mapping[str, Any]], options: Options) -> None:
        self.g, self.sha, self.options = g, sha, options
        self.sources: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self.data: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        for o in objects:
            if not isinstance(o, dict):
                continue
            api = str(o.get("apiVersion") or "")
            group = api.rsplit("/", 1)[0] if "/" in api else ""
            if group == SOURCE_GROUP:
                self.sources[_key(o)] = o
            elif group == "" and o.get("kind") in ("ConfigMap", "Secret"):
                self.data[_key(o)] = o

    # -- the chart

    def chart(self, hr: Mapping[str, Any], where: str) -> tuple[_Chart, str]:
        spec = _spec(hr)
        ns = _namespace(hr)
        ref = spec.get("chartRef")
        if isinstance(ref, dict) and ref:
            kind = str(ref.get("kind") or "?")
            sref = SourceRef(kind, str(ref.get("namespace") or ns), str(ref.get("name") or "?"))
            if kind == "OCIRepository":
                repo = self.sources.get((kind, sref.namespace, sref.name))
                if repo is None:
                    raise _Skip(str(sref), f"chart from {sref}, which is not part of this render")
                return self._oci_repository(repo, sref, where), str(sref)
            if kind != "HelmChart":
                raise HelmError(f"{where}: spec.chartRef.kind {kind!r}: helm-controller takes OCIRepository or "
                                "HelmChart")
            chart_obj = self.sources.get(("HelmChart", sref.namespace, sref.name))
            if chart_obj is None:
                raise _Skip(str(sref), f"chart from {sref}, which is not part of this render")
            cspec = _spec(chart_obj)
            return self._from_source(cspec, sref.namespace, where, "spec.chartRef"), str(sref)
        chart = spec.get("chart")
        cspec = _spec(chart) if isinstance(chart, dict) else {}
        if not cspec:
            raise HelmError(f"{where}: spec.chart.spec or spec.chartRef is required")
        raw = cspec.get("sourceRef") if isinstance(cspec.get("sourceRef"), dict) else {}
        assert isinstance(raw, dict)
        sref = SourceRef(str(raw.get("kind") or "?"), str(raw.get("namespace") or ns), str(raw.get("name") or "?"))
        return self._from_source(cspec, ns, where, "spec.chart.spec"), str(sref)

    def _from_source(self, cspec: Mapping[str, Any], ns: str, where: str, key: str) -> _Chart:
        name = str(cspec.get("chart") or "")
        if not name:
            raise HelmError(f"{where}: {key}.chart is required")
        files = _values_files(cspec, where, key)
        chart = self._chart_of_source(cspec, name, ns, where, key)
        if not files:
            return chart
        ignore = cspec.get("ignoreMissingValuesFiles") is True
        if chart.digest.startswith("git:"):  # paths of the fleet repo, as source-controller's local builder
            try:
                merged = self._git_values(files, ignore, where, key)
            except BaseException:
                if chart.cleanup is not None:
                    chart.cleanup()
                raise
            return dataclasses.replace(chart, chart_values=merged)
        return dataclasses.replace(chart, values_files=files, ignore_missing=ignore)

    def _git_values(self, files: Sequence[str], ignore: bool, where: str, key: str) -> dict[str, Any]:
        """source-controller's mergeFileValues: the files (paths from the repo's root, kept inside it) read at
        the revision and merged in order; a missing one is an error unless ``ignore``."""
        out: dict[str, Any] = {}
        for p in files:
            rel = posixpath.normpath(posixpath.join("/", p)).lstrip("/")
            entry = self.g.entry(self.sha, rel) if rel else None
            if entry is None and ignore:
                continue
            if entry is None or entry.kind != "file":
                raise HelmError(f"{where}: {key}.valuesFiles: no values file found at path '{p}' in the fleet repo "
                                "(set ignoreMissingValuesFiles: true if it may be missing)")
            blob = self.g.read_blob(entry.oid)
            if len(blob) > _MAX_VALUES:
                raise HelmError(f"{where}: {key}.valuesFiles: {rel} is {len(blob)} bytes, over the {_MAX_VALUES}-byte "
                                "limit")
            text = blob.decode("utf-8", "replace")
            try:
                data = yaml.load(text, Loader=_LOADER) if text.strip() else {}
            except (yaml.YAMLError, RecursionError) as e:
                raise HelmError(f"{where}: {key}.valuesFiles: {rel} is not YAML: {' '.join(str(e).split())[:160]}"
                                ) from None
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise HelmError(f"{where}: {key}.valuesFiles: {rel} is not a mapping of values")
            out = merge_maps(out, data)
        try:
            return dict(_plain(out))
        except HelmError as e:
            raise HelmError(f"{where}: {key}.valuesFiles: {e.message}") from None

    def _chart_of_source(self, cspec: Mapping[str, Any], name: str, ns: str, where: str, key: str) -> _Chart:
        raw = cspec.get("sourceRef") if isinstance(cspec.get("sourceRef"), dict) else {}
        assert isinstance(raw, dict)
        sref = SourceRef(str(raw.get("kind") or "?"), str(raw.get("namespace") or ns), str(raw.get("name") or "?"))
        version = str(cspec.get("version") or "*")
        defined = self.sources.get((sref.kind, sref.namespace, sref.name))
        if sref.kind == "GitRepository":
            if is_fleet_source(sref, defined, self.options.fleet_urls) is None:
                raise _Skip(str(sref), f"chart {name} from {sref}, which is not the fleet repo: not rendered")
            return self._git_chart(name, where, key)
        if sref.kind != "HelmRepository":
            raise _Skip(str(sref), f"chart {name} from {sref}: fleet renders charts of HelmRepositories and of "
                                   "the fleet repo only")
        if defined is None:
            raise _Skip(str(sref), f"chart {name} from {sref}, which is not part of this render")
        rspec = _spec(defined)
        url = str(rspec.get("url") or "")
        oci = rspec.get("type") == "oci" or url.startswith("oci://")
        try:
            mirrored = self._mirror(name, version, where)
            if mirrored is not None:
                return mirrored
            if oci:
                base = _oci_ref(url, where, f"{sref}: spec.url")
                return self._oci_chart(f"{base}/{name}", where, str(sref), name=name, helm=True, version=version,
                                       plain_http=rspec.get("insecure") is True)
            if not _http_url(url):
                raise HelmError(f"{where}: {sref}: spec.url {url!r} is not an http(s) or oci:// URL")
            return _from_index(_index(url, where), url, name, version, where, lambda u: _get(u, _MAX_CHART))
        except _Unreachable as e:  # the index, the archive, or the mirror's archive
            raise _Skip(str(sref), f"cannot reach {_shown(e.url)} ({e.why}): the chart of {sref} is not rendered",
                        warning=True) from None

    def _oci_repository(self, repo: Mapping[str, Any], sref: SourceRef, where: str) -> _Chart:
        """The chart an ``OCIRepository`` gives helm-controller: the artifact at ``spec.url`` by ``spec.ref``
        (digest, else semver (with semverFilter), else tag, else latest), its layer of
        ``spec.layerSelector.mediaType`` (the first layer without one)."""
        rspec = _spec(repo)
        ref = rspec.get("ref") if isinstance(rspec.get("ref"), dict) else {}
        selector = rspec.get("layerSelector") if isinstance(rspec.get("layerSelector"), dict) else {}
        assert isinstance(ref, dict) and isinstance(selector, dict)
        target = _oci_ref(str(rspec.get("url") or ""), where, f"{sref}: spec.url")
        media = str(selector.get("mediaType") or "")
        return self._oci_chart(target, where, str(sref), name=target.rsplit("/", 1)[-1],
                               digest=str(ref.get("digest") or ""), semver=str(ref.get("semver") or ""),
                               semver_filter=str(ref.get("semverFilter") or ""),
                               tag=str(ref.get("tag") or ""), media_types=(media,) if media else (),
                               plain_http=rspec.get("insecure") is True)

    def _oci_chart(self, ref: str, where: str, source: str, *, name: str, helm: bool = False, version: str = "",
                   digest: str = "", semver: str = "", semver_filter: str = "", tag: str = "",
                   media_types: Sequence[str] = _CHART_LAYERS, plain_http: bool = False) -> _Chart:
        """The chart at ``ref`` (``host/path``) of an OCI registry, read by fleet-build (Helm's registry client
        and ORAS, anonymously), kept by the layer's digest as HTTP charts are: the manifest is asked every
        render (a tag moves), the archive only when it is not kept."""
        try:
            layer = _oci_resolve(ref, helm=helm, version=version, tag=tag, digest=digest, semver=semver,
                                 semver_filter=semver_filter, media_types=tuple(media_types), plain_http=plain_http)
            hexdigest = layer.digest.removeprefix("sha256:")
            kept = _kept_archive(hexdigest)
            if kept is None:
                if layer.size > _MAX_CHART:
                    raise HelmError(f"{where}: chart oci://{ref}@{layer.digest} is {layer.size} bytes, over the "
                                    f"{_MAX_CHART}-byte limit")
                data = fluxbuild.oci_blob(ref, layer.digest, layer.size, plain_http=plain_http,
                                          limits=fluxbuild.Limits(max_output=_MAX_CHART))
                with _lock:
                    _stats["chart_downloads"] += 1
                if hashlib.sha256(data).hexdigest() != hexdigest:
                    raise HelmError(f"{where}: chart oci://{ref}@{layer.digest} does not match its digest")
                kept = _keep_archive(data)
        except ChartUnreachable as e:
            raise _Skip(source, f"{e.message}: the chart of {source} is not rendered", warning=True) from None
        except RenderError as e:
            if isinstance(e, HelmError):
                raise
            login = "credential not found" in e.message or " 401 " in f" {e.message} "
            raise HelmError(f"{where}: {e.message}" + (
                " (the registry asks for a login: fleet reads OCI charts anonymously, never with the credentials "
                "of this machine; a HelmRepository's private chart renders from fleet.yaml's helm.mirror)"
                if login else "")) from None
        return _Chart(kept.parent, kept.name, name, layer.tag or digest, hexdigest)

    def _mirror(self, name: str, version: str, where: str) -> _Chart | None:
        """The chart from fleet.yaml's ``helm.mirror`` when it holds it (None: ask the source)."""
        mirror = self.options.mirror
        if not mirror:
            return None
        if _http_url(mirror):
            try:
                index = _index(mirror, where)
            except _Unreachable:
                return None
            if name not in index["entries"]:
                return None
            return _from_index(index, mirror, name, version, where, lambda u: _get(u, _MAX_CHART))
        base = mirror.strip("/")
        text = self.g.read_file(self.sha, f"{base}/index.yaml")
        if text is None:
            return None
        try:
            index = yaml.load(text, Loader=_LOADER)
        except (yaml.YAMLError, RecursionError):
            raise HelmError(f"fleet.yaml helm.mirror: {base}/index.yaml is not a Helm repository index") from None
        if not isinstance(index, dict) or not isinstance(index.get("entries"), dict) or name not in index["entries"]:
            return None

        def from_repo(url: str) -> bytes:
            scheme, path = net.url_path(url)
            rel = posixpath.normpath(posixpath.join(base, path))
            if scheme or rel.startswith("../") or not rel.startswith(base + "/"):
                raise HelmError(f"fleet.yaml helm.mirror: {url!r} in {base}/index.yaml is not a file of the mirror")
            entry = self.g.entry(self.sha, rel)
            if entry is None or entry.kind != "file":
                raise HelmError(f"fleet.yaml helm.mirror: {rel} (listed in {base}/index.yaml) does not exist")
            return self.g.read_blob(entry.oid)

        return _from_index(index, base, name, version, where, from_repo, f"{base}/ (fleet.yaml helm.mirror)")

    def _git_chart(self, path: str, where: str, key: str) -> _Chart:
        rel = posixpath.normpath(path.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise HelmError(f'{where}: {key}.chart "{path}" leaves the repository')
        entry = self.g.entry(self.sha, rel)
        if entry is None or entry.kind != "dir":
            raise HelmError(f'{where}: {key}.chart "{path}" is not a directory of the repository at {self.sha[:12]}')
        tmp = tempfile.TemporaryDirectory(prefix="fleet-chart-")
        root = Path(tmp.name).resolve()
        self.g.extract(self.sha, root, [rel])
        meta = self.g.read_file(self.sha, f"{rel}/Chart.yaml") or ""
        try:
            version = str((yaml.load(meta, Loader=_LOADER) or {}).get("version") or "")
        except (yaml.YAMLError, AttributeError):
            version = ""
        return _Chart(root, rel, posixpath.basename(rel), version, f"git:{entry.oid}", tmp.cleanup)

    # -- the values

    def values(self, hr: Mapping[str, Any], where: str) -> tuple[dict[str, Any], bool]:
        """The release's values, and whether any was decrypted (SOPS): its output is then never kept on disk."""
        spec = _spec(hr)
        ns = _namespace(hr)
        out: dict[str, Any] = {}
        secret = False
        refs = spec.get("valuesFrom") or []
        if not isinstance(refs, list):
            raise HelmError(f"{where}: spec.valuesFrom: expected a list")
        for i, ref in enumerate(refs):
            key = f"spec.valuesFrom[{i}]"
            if not isinstance(ref, dict) or ref.get("kind") not in ("ConfigMap", "Secret"):
                raise HelmError(f"{where}: {key}.kind must be ConfigMap or Secret")
            kind, name = str(ref["kind"]), str(ref.get("name") or "")
            vkey = str(ref.get("valuesKey") or "values.yaml")
            optional = ref.get("optional") is True
            obj = self.data.get((kind, ns, name))
            if obj is None:
                if optional:
                    continue
                raise HelmError(f"{where}: {key}: {kind} {ns}/{name} is not part of this render "
                                "(mark it optional: true if it may be missing)")
            text = self._data(obj, vkey, where, key)
            if text is None:
                if optional:
                    continue
                raise HelmError(f'{where}: {key}: {kind} {ns}/{name} has no key "{vkey}"')
            secret = secret or sops_encrypted(obj)
            target = str(ref.get("targetPath") or "")
            if target:
                _set_path(out, target, text, where, key)
                continue
            try:
                data = yaml.load(text, Loader=_LOADER) if text.strip() else {}
            except (yaml.YAMLError, RecursionError) as e:
                raise HelmError(f'{where}: {key}: {kind} {ns}/{name} key "{vkey}" is not YAML: '
                                f"{' '.join(str(e).split())[:160]}") from None
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise HelmError(f'{where}: {key}: {kind} {ns}/{name} key "{vkey}" is not a mapping of values')
            out = merge_maps(out, data)
        inline = spec.get("values")
        if inline is not None and not isinstance(inline, dict):
            raise HelmError(f"{where}: spec.values must be a mapping")
        # as Helm reads values (YAML through JSON): a date or a non-string key becomes a string
        try:
            return _plain(merge_maps(out, inline or {})), secret
        except HelmError as e:
            raise HelmError(f"{where}: {e.message}") from None

    def _data(self, obj: Mapping[str, Any], vkey: str, where: str, key: str) -> str | None:
        from fleet import sops

        ref = f"{obj.get('kind')} {_namespace(obj)}/{_meta(obj).get('name')}"
        if sops.is_encrypted(obj):
            if not self.options.keys:
                raise _Skip(ref, f"its values come from {ref}, which is SOPS-encrypted: rendered only with "
                                 "--decrypt (in memory, never kept)")
            obj = sops.decrypt_object(obj, list(self.options.keys))
        if obj.get("kind") == "Secret":
            string = obj.get("stringData") if isinstance(obj.get("stringData"), dict) else {}
            assert isinstance(string, dict)
            if vkey in string:
                return str(string[vkey])
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            assert isinstance(data, dict)
            if vkey not in data:
                return None
            try:
                return base64.b64decode(str(data[vkey]), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise HelmError(f"{where}: {key}: {ref} data.{vkey} is not base64 of UTF-8 text") from None
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        assert isinstance(data, dict)
        return str(data[vkey]) if vkey in data else None

    # -- one release

    def release(self, hr: Mapping[str, Any]) -> Release:
        ns, name = _namespace(hr), str(_meta(hr).get("name") or "?")
        where = f"HelmRelease {ns}/{name}"
        spec = _spec(hr)
        if spec.get("suspend") is True:
            raise _Skip("", "suspended (spec.suspend: true): helm-controller installs nothing of it")
        if isinstance(spec.get("kubeConfig"), dict):
            raise _Skip("", "installs into another cluster (spec.kubeConfig): not part of this cluster")
        values, decrypted = self.values(hr, where)
        chart, _source = self.chart(hr, where)
        try:
            release, namespace = release_name(hr)
            crds = _crds(spec)
            renderers = _post_renderers(spec, where)
            key, text = self._template(chart, release, namespace, values, crds, renderers, where,
                                       keep=not decrypted)
        finally:
            if chart.cleanup is not None:
                chart.cleanup()
        with _lock:
            parsed = _parsed.get(key)
        if parsed is None:
            found = []
            try:
                for doc in yaml.load_all(text, Loader=_LOADER):
                    if isinstance(doc, dict) and doc:
                        found.append((_dump(doc), json.dumps(doc, default=str)))
            except (yaml.YAMLError, RecursionError) as e:
                raise HelmError(f"{where}: helm template printed YAML fleet cannot read: "
                                f"{' '.join(str(e).split())[:200]}") from None
            parsed = tuple(found)
            with _lock:
                _parsed[key] = parsed
                while len(_parsed) > 2048:
                    _parsed.popitem(last=False)
        objects = tuple((t, json.loads(j)) for t, j in parsed)  # fresh objects: callers may change them
        return Release(f"{ns}/{name}", chart.name, chart.version, objects)

    def _template(self, chart: _Chart, release: str, namespace: str, values: Mapping[str, Any], crds: bool,
                  renderers: list[dict[str, Any]], where: str, keep: bool = True) -> tuple[str, str]:
        """``helm template`` (then the post-renderers) of ``chart``, cached in-process and, unless ``keep`` is
        False (values decrypted from SOPS: plaintext never goes to disk), on disk."""
        material = json.dumps([_VERSION, fluxbuild.identity(), chart.digest, release, namespace, values, crds,
                               renderers, self.options.kube_version, list(chart.values_files), chart.ignore_missing,
                               chart.chart_values], sort_keys=True, default=str)
        key = hashlib.sha256(material.encode()).hexdigest()
        with _lock:
            hit = _outputs.get(key)
            if hit is not None:
                _outputs.move_to_end(key)
                _stats["template_hits"] += 1
                return key, hit
        disk = _cache() / "rendered" / key[:2] / f"{key}.yaml"
        text = read_sealed(disk, _VERSION, key) if keep else None
        if text is None:
            with _lock:
                _stats["templates"] += 1
            try:
                text = fluxbuild.template(chart.root, chart.path, release=release, namespace=namespace,
                                          values=values, include_crds=crds, kube_version=self.options.kube_version,
                                          chart_values=chart.chart_values, values_files=chart.values_files,
                                          ignore_missing_values_files=chart.ignore_missing)
                for renderer in renderers:
                    text = _post_render(text, renderer)
            except RenderError as e:
                raise HelmError(f"{where}: {e.message}") from None
            if keep:
                write_sealed(disk, _VERSION, key, text)
        else:
            with _lock:
                _stats["template_hits"] += 1
        with _lock:
            _outputs[key] = text
            while len(_outputs) > 2048:
                _outputs.popitem(last=False)
        return key, text


def _oci_resolve(ref: str, **ask: Any) -> fluxbuild.OciLayer:
    """:func:`fluxbuild.oci_resolve`, asked once per process for the same question (as a repository's index is
    read once): a fleet-wide render or diff asks the registry once per chart, not once per cluster; a
    failure is kept too, so a registry that is down is not waited for again."""
    key = json.dumps([ref, ask], sort_keys=True)
    with _lock:
        found = _oci.get(key)
    if isinstance(found, RenderError):
        raise found
    if found is not None:
        return found
    try:
        layer = fluxbuild.oci_resolve(ref, **ask)
    except RenderError as e:
        if not isinstance(e, BuildLimit):
            with _lock:
                _oci[key] = e
        raise
    with _lock:
        _stats["oci_resolves"] += 1
        _oci[key] = layer
    return layer


def _oci_ref(url: str, where: str, key: str) -> str:
    """``oci://host[:port]/path`` as ``host[:port]/path`` (what fleet-build takes); one line naming ``key``
    when it is not such a URL."""
    rest = url.removeprefix("oci://") if url.startswith("oci://") else ""
    rest = rest.rstrip("/")
    host, _, path = rest.partition("/")
    if not host or not path or any(c in rest for c in "@?# \t\n") or ".." in path.split("/"):
        raise HelmError(f"{where}: {key} {url!r} is not an oci://host/repository URL")
    return rest


def _values_files(cspec: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
    """``valuesFiles`` (with the deprecated ``valuesFile`` first, as source-controller's GetValuesFiles)."""
    raw = cspec.get("valuesFiles") or []
    if not isinstance(raw, list) or not all(isinstance(f, str) and f for f in raw):
        raise HelmError(f"{where}: {key}.valuesFiles: expected a list of paths")
    files = list(raw)
    single = cspec.get("valuesFile")
    if single:
        if not isinstance(single, str):
            raise HelmError(f"{where}: {key}.valuesFile: expected a path")
        if single not in files:
            files.insert(0, single)
    return tuple(files)


def _crds(spec: Mapping[str, Any]) -> bool:
    """Whether the chart's ``crds/`` are installed: ``install.crds`` (default Create) unless Skip; an
    upgrade's ``upgrade.crds`` Create or CreateReplace brings them too."""
    install = spec.get("install") if isinstance(spec.get("install"), dict) else {}
    upgrade = spec.get("upgrade") if isinstance(spec.get("upgrade"), dict) else {}
    assert isinstance(install, dict) and isinstance(upgrade, dict)
    return install.get("crds", "Create") != "Skip" or upgrade.get("crds") in ("Create", "CreateReplace")


def _post_renderers(spec: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    raw = spec.get("postRenderers") or []
    if not isinstance(raw, list):
        raise HelmError(f"{where}: spec.postRenderers: expected a list")
    for i, r in enumerate(raw):
        kz = r.get("kustomize") if isinstance(r, dict) else None
        if not isinstance(kz, dict):
            raise HelmError(f"{where}: spec.postRenderers[{i}]: only kustomize post-renderers exist")
        kus: dict[str, Any] = {}
        for field in ("patches", "patchesStrategicMerge", "patchesJson6902", "images"):
            items = kz.get(field)
            if items is None:
                continue
            if not isinstance(items, list):
                raise HelmError(f"{where}: spec.postRenderers[{i}].kustomize.{field}: expected a list")
            if field == "patchesStrategicMerge":  # objects in the HelmRelease: kustomize takes them as text
                items = [json.dumps(p) if isinstance(p, dict) else p for p in items]
            elif field == "patchesJson6902":
                items = [{"target": p.get("target") or {}, "patch": json.dumps(p.get("patch"))}
                         if isinstance(p, dict) else p for p in items]
            kus[field] = items
        if kus:
            out.append(kus)
    return out


def _post_render(text: str, kus: Mapping[str, Any]) -> str:
    """helm-controller's kustomize post-renderer: the rendered manifests as the one resource of a
    kustomization holding the patches and images, built by fleet-build (Flux's kustomize library)."""
    with tempfile.TemporaryDirectory(prefix="fleet-postrender-") as tmp:
        root = Path(tmp).resolve()
        (root / "resources.yaml").write_text(text, encoding="utf-8")
        kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                         "resources": ["resources.yaml"], **kus}
        (root / "kustomization.yaml").write_text(json.dumps(kustomization), encoding="utf-8")
        return fluxbuild.build(root, ".")


def _plain(value: Any, depth: int = 0) -> Any:
    """Values as JSON holds them (what the builder takes): keys as strings, a date or binary as text."""
    if depth > 200:
        raise HelmError("values nested deeper than 200 levels")
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise HelmError(f"values: {value} is not a number Helm reads (JSON holds no NaN or infinity)")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value.isoformat() if hasattr(value, "isoformat") else value)


def sops_encrypted(obj: Mapping[str, Any]) -> bool:
    from fleet import sops

    return sops.is_encrypted(obj)


def _set_path(values: dict[str, Any], path: str, value: str, where: str, key: str) -> None:
    """``targetPath``: ``value`` (a string) at the dotted ``path`` (``\\.`` escapes a dot)."""
    parts = [p.replace("\0", ".") for p in path.replace("\\.", "\0").split(".")]
    if any(not p or "[" in p for p in parts):
        raise HelmError(f"{where}: {key}.targetPath {path!r}: fleet sets dotted paths of mappings only")
    node = values
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(obj: Mapping[str, Any]) -> str:
    text: str = yaml.dump(dict(obj), Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def expand(g: GitRepo, sha: str, objects: Sequence[Mapping[str, Any]], options: Options) -> Expanded:
    """Every HelmRelease among ``objects`` rendered (see the module docstring); those fleet cannot render
    are listed with why. Raises :class:`HelmError` for a release whose input is wrong."""
    releases = [o for o in objects if isinstance(o, dict) and is_release(o)]
    if not releases:
        return Expanded((), ())
    ex = _Expander(g, sha, objects, options)
    done: list[Release] = []
    skipped: list[Unexpanded] = []
    for hr in releases:
        rid = f"{_namespace(hr)}/{_meta(hr).get('name') or '?'}"
        try:
            done.append(ex.release(hr))
        except _Skip as e:
            skipped.append(Unexpanded(rid, e.source, e.note, e.warning))
        except HelmError:
            raise
        except FleetError as e:
            if isinstance(e, RenderError):
                raise HelmError(f"HelmRelease {rid}: {e.message}", hint=e.hint) from None
            raise
    return Expanded(tuple(done), tuple(skipped))
