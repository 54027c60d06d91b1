"""fleet-build, the toolchain's renderer (tools/fluxbuild): the only module that talks to it.

fleet-build is a Go program on Flux's own kustomize library (``github.com/fluxcd/pkg/kustomize``: the
secure on-disk build kustomize-controller runs, and its post-build substitution) and Helm's SDK
(``helm template``). One process serves many requests, a JSON object a line on its stdin, one JSON
answer a line on its stdout; it is started on the first request and kept, and started again when it
ended (it exits after a request that ran over its time or memory budget, since the runaway work cannot
be stopped otherwise).

Confinement is the builder's: every file kustomize opens goes through Flux's secure filesystem rooted at
the directory :func:`build` names, so nothing outside it can be read (a path, a symlink, ``/proc``), and
the builder has no network, no ``PATH`` and an environment of its own (nothing of fleet's is passed on).
Every file kustomize reads is first checked for size, YAML alias expansion and nesting depth; a request
has a wall-clock budget, a heap budget and an output cap. Its errors come cut to a few lines, paths
relative to the root.

Errors: a refusal or failure of the repo's input (including a limit it ran into) is a
:class:`~fleet.errors.RenderError` (exit 2; :class:`~fleet.errors.BuildLimit` for a time or memory
budget); a builder that cannot be started is
:class:`~fleet.errors.ToolMissing`, and so is a malformed exchange (a fleet-build that does not match this
fleet: the hint says how to rebuild it).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import itertools
import json
import os
import select
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet import toolchain
from fleet.adapters import proc
from fleet.errors import BuildLimit, ChartUnreachable, RenderError, ToolMissing

__all__ = ["Limits", "OciLayer", "build", "close", "identity", "oci_blob", "oci_resolve", "substitute", "template"]


@dataclass(frozen=True)
class Limits:
    """The budget of one request (the builder's defaults are the same)."""

    timeout: float = 60.0  # seconds of wall-clock time
    max_output: int = 64 << 20  # bytes of YAML in the answer
    max_heap: int = 1 << 30  # bytes of live heap while the request runs
    max_file: int = 8 << 20  # bytes of one file kustomize reads
    max_depth: int = 200  # nesting levels of one YAML document
    max_aliases: int = 10_000  # YAML aliases in one file
    max_nodes: int = 2_000_000  # YAML nodes of one file once its aliases are expanded

    def fields(self) -> dict[str, int]:
        return {
            "timeout_ms": int(self.timeout * 1000),
            "max_output": self.max_output,
            "max_heap": self.max_heap,
            "max_file": self.max_file,
            "max_depth": self.max_depth,
            "max_aliases": self.max_aliases,
            "max_nodes": self.max_nodes,
        }


DEFAULT = Limits()
_GRACE = 15.0  # seconds past a request's own budget before fleet stops the builder itself


class _Builder:
    def __init__(self) -> None:
        self.child: proc.Piped[bytes] | None = None
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def _start(self) -> proc.Piped[bytes]:
        path = toolchain.find("fleet-build")
        env = {
            "PATH": "",  # it runs no program
            "HOME": "/nonexistent",
            "GOMEMLIMIT": str(DEFAULT.max_heap),  # the builder sets each request's own budget
            "GOMAXPROCS": str(max(1, min(4, os.cpu_count() or 1))),
        }
        return proc.pipe([path, "serve"], env=env)

    def ask(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        with self.lock:
            if self.child is None or self.child.poll() is not None:
                self._reap()
                self.child = self._start()
            child = self.child
            assert child.stdin is not None and child.stdout is not None
            rid = str(next(self.ids))
            line = json.dumps({**req, "id": rid}, separators=(",", ":")).encode() + b"\n"
            try:
                child.stdin.write(line)
                child.stdin.flush()
            except OSError as e:
                self._reap()
                raise RenderError(f"fleet-build stopped before it took the request: {e}") from e
            # the builder keeps its own budget; this one only catches a builder that hangs
            if not select.select([child.stdout], [], [], timeout + _GRACE)[0]:
                self._reap(kill=True)
                raise RenderError(f"fleet-build did not answer within {timeout + _GRACE:.0f}s: stopped")
            raw = child.stdout.readline()
            if not raw:
                code = child.wait()
                self._reap()
                raise RenderError(f"fleet-build ended without an answer (exit {code}): out of memory?")
            try:
                answer = json.loads(raw)
            except ValueError as e:
                self._reap(kill=True)
                raise _mismatch(f"answered something that is not JSON: {raw[:120]!r}") from e
            if not isinstance(answer, dict) or answer.get("id") != rid:
                self._reap(kill=True)
                raise _mismatch("answered another request than the one asked")
            if answer.get("kind") == "limit":  # it exits after such a request: wait for that
                with contextlib.suppress(proc.Timeout):
                    child.wait(timeout=_GRACE)
                self._reap(kill=True)
            return answer

    def _reap(self, kill: bool = False) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            if child.stdin:
                child.stdin.close()
        if kill and child.poll() is None:
            with contextlib.suppress(OSError):
                child.kill()
        try:
            child.wait(timeout=_GRACE)
        except proc.Timeout:  # a child that does not end on EOF is killed
            with contextlib.suppress(OSError):
                child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()

    def close(self) -> None:
        with self.lock:
            self._reap()


def _mismatch(what: str) -> ToolMissing:
    return ToolMissing(f"fleet-build {what}: it does not match this fleet", hint=toolchain.REPAIR)


_builder = _Builder()
atexit.register(_builder.close)


def close() -> None:
    """Stop the builder process (started again by the next request)."""
    _builder.close()


def identity() -> str:
    """Which fleet-build renders: its path, size and modification time (a rebuilt one is another)."""
    path = toolchain.find("fleet-build")
    st = path.stat()
    return f"fleet-build {path} {st.st_size} {int(st.st_mtime)}"


def _answer(req: dict[str, Any], limits: Limits) -> dict[str, Any]:
    answer = _builder.ask({**req, **limits.fields()}, limits.timeout)
    if answer.get("ok") is True:
        return answer
    message = str(answer.get("error") or "failed without saying why")
    if answer.get("kind") == "internal":
        raise _mismatch(f"refused fleet's request: {message}")
    if answer.get("kind") == "unreachable":
        raise ChartUnreachable(" ".join(message.split()))
    raise (BuildLimit if answer.get("kind") == "limit" else RenderError)(" ".join(message.split()))


def build(root: Path, directory: str, limits: Limits = DEFAULT) -> str:
    """``kustomize build ROOT/DIRECTORY`` as kustomize-controller builds it, confined to ``root`` (a
    private directory holding the repo's files): the YAML stream, or :class:`RenderError` with the cut
    error (paths relative to ``root``)."""
    answer = _answer({"op": "build", "root": str(root), "path": directory}, limits)
    return str(answer.get("yaml", ""))


def substitute(docs: Sequence[str], values: Mapping[str, str], limits: Limits = DEFAULT) -> list[str]:
    """kustomize-controller's post-build substitution (strict, ``values`` as ``postBuild.substitute``) of
    each document; one that opts out comes back unchanged."""
    answer = _answer({"op": "substitute", "docs": list(docs), "vars": dict(values)}, limits)
    out = answer.get("docs") or []
    if len(out) != len(docs):
        raise _mismatch(f"substituted {len(out)} documents of {len(docs)}")
    return [str(d) for d in out]


def template(
    root: Path,
    chart: str,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    include_crds: bool = False,
    kube_version: str = "",
    chart_values: Mapping[str, Any] | None = None,
    values_files: Sequence[str] = (),
    ignore_missing_values_files: bool = False,
    limits: Limits = DEFAULT,
) -> str:
    """``helm template RELEASE ROOT/CHART`` (a chart directory or archive inside ``root``) with ``values``:
    client-only, no plugins, no post-renderer, no network; what ``helm template`` prints. The chart's default
    values (its values.yaml) are replaced by ``chart_values``, or by ``values_files`` (files of the chart,
    merged in order as source-controller merges a HelmChart's ``valuesFiles``; a missing one is a
    :class:`RenderError` unless ``ignore_missing_values_files``)."""
    req: dict[str, Any] = {
        "op": "template",
        "root": str(root),
        "chart": chart,
        "values": dict(values or {}),
        "release": release,
        "namespace": namespace,
        "include_crds": include_crds,
        "kube_version": kube_version,
    }
    if chart_values is not None:
        req["chart_values"] = dict(chart_values)
    if values_files:
        req["values_files"] = list(values_files)
        req["ignore_missing_values_files"] = ignore_missing_values_files
    return str(_answer(req, limits).get("yaml", ""))


@dataclass(frozen=True)
class OciLayer:
    """An OCI artifact resolved: the tag picked (the chart version for a Helm repository), the manifest's
    digest, and the chart layer (``sha256:...`` digest, size, media type)."""

    tag: str
    manifest: str
    digest: str
    size: int
    media_type: str


def oci_resolve(
    ref: str,
    *,
    helm: bool = False,
    version: str = "",
    tag: str = "",
    digest: str = "",
    semver: str = "",
    semver_filter: str = "",
    media_types: Sequence[str] = (),
    plain_http: bool = False,
    limits: Limits = DEFAULT,
) -> OciLayer:
    """The chart layer of the OCI artifact at ``ref`` (``host[:port]/path``, no scheme, no tag), read by the
    builder with the registry client of Helm and ORAS, anonymously: with ``helm`` the tag Helm picks for
    ``version`` among the repository's semver tags (a HelmRepository of type oci); else ``digest``, else the
    highest tag in ``semver`` (after ``semver_filter``), else ``tag``, else ``latest`` (an OCIRepository).
    The layer is the first of ``media_types`` (the first layer when empty). Plain HTTP only with
    ``plain_http``. A registry that cannot be reached: :class:`ChartUnreachable`; an artifact or tag that is
    not there, a malformed manifest: :class:`RenderError`; in one line naming ``oci://ref``."""
    req: dict[str, Any] = {"op": "oci_resolve", "ref": ref, "helm": helm, "version": version, "tag": tag,
                           "digest": digest, "semver": semver, "semver_filter": semver_filter,
                           "media_types": list(media_types), "plain_http": plain_http}
    answer = _answer(req, limits)
    layer = answer.get("layer")
    if not isinstance(layer, dict) or not str(layer.get("digest") or "").startswith("sha256:"):
        raise _mismatch(f"resolved oci://{ref} without a sha256 layer")
    return OciLayer(str(answer.get("tag") or ""), str(answer.get("manifest") or ""), str(layer["digest"]),
                    int(layer.get("size") or 0), str(layer.get("media_type") or ""))


def oci_blob(ref: str, digest: str, size: int, *, plain_http: bool = False, limits: Limits = DEFAULT) -> bytes:
    """The blob ``digest`` (``size`` bytes, at most ``limits.max_output``) of the OCI repository ``ref``, its
    size and digest checked by the builder."""
    req = {"op": "oci_blob", "ref": ref, "digest": digest, "size": size, "plain_http": plain_http}
    data = _answer(req, limits).get("data")
    try:
        return base64.b64decode(str(data or ""), validate=True)
    except binascii.Error as e:
        raise _mismatch(f"sent oci://{ref}@{digest} as something that is not base64") from e
