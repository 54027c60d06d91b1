"""Whole renders of a cluster at a commit, kept on disk, so that ``fleet render CLUSTER`` of a commit it
rendered before needs neither GitPython nor the registry's models nor kustomize.

What an overlay cluster renders at a commit is fixed by that commit (its registry entry, ``fleet.yaml``
and every file the overlay reads are in the commit's tree), by the builder (fleet-build's identity: path, size
and modification time) and by fleet itself (its version and this module's format). An entry is keyed by all
of them, the commit by its full id (resolved first: never a branch name), and its content is sealed with
an HMAC under the home's private render-cache secret, as the build cache's entries are (:mod:`fleet.rendering.cluster`):
an entry that does not verify is removed and the render runs in full. Only overlay clusters are kept, and only
renders without a HelmRelease (whose charts come from outside the commit); a Flux-directory cluster (whose
render can carry notes) is always rendered in full. Entries are written by
:func:`fleet.rendering.cluster.render_cluster`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleet import __version__
from fleet.adapters import fluxbuild
from fleet.errors import ToolMissing
from fleet.paths import discard, fleet_home, read_sealed, write_sealed, writes_allowed

__all__ = ["Result", "builder_identity", "load", "store"]

_VERSION = "fleet-render-result-v1"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a cluster name (a DNS label): a folder name here
KEEP_PER_CLUSTER = 8  # the newest renders kept per cluster (one per commit it was rendered at)


@dataclass(frozen=True)
class Result:
    """One cluster's render at one commit, as :func:`fleet.rendering.cluster.render_cluster` returned it."""

    cluster: str
    revision: str  # full commit id
    text: str  # multi-document YAML
    digest: str  # sha256 of text
    inputs: tuple[str, ...]  # the repo paths the overlay reads: uncommitted edits to them are not rendered
    registry: str  # the registry's folder at that commit ("clusters")
    plain: bool  # every object a mapping and none SOPS-encrypted: shown as rendered
    objects: str | None = None  # the objects as a JSON list, when JSON holds them exactly (else parse text)


def builder_identity() -> str:
    """Which builder renders (fleet-build): its path, size and modification time (a rebuilt one is another)."""
    return fluxbuild.identity()


def _key(revision: str, cluster: str) -> str | None:
    try:
        identity = builder_identity()
    except (ToolMissing, OSError):
        return None
    material = f"{_VERSION}\n{__version__}\n{identity}\n{revision}\n{cluster}\n"
    return hashlib.sha256(material.encode()).hexdigest()


def _dir(cluster: str) -> Path:
    return fleet_home() / "cache" / "render" / "results" / cluster


def _path(cluster: str, key: str) -> Path:
    return _dir(cluster) / f"{key}.json"


def load(revision: str, cluster: str) -> Result | None:
    """The kept render of ``cluster`` at commit ``revision`` (a full id), when there is one that verifies."""
    key = _key(revision, cluster) if _NAME.fullmatch(cluster) else None
    if key is None:
        return None
    path = _path(cluster, key)
    payload = read_sealed(path, _VERSION, key)
    if payload is not None:
        try:
            d = json.loads(payload)
            result = Result(
                cluster=str(d["cluster"]),
                revision=str(d["revision"]),
                text=str(d["text"]),
                digest=str(d["digest"]),
                inputs=tuple(str(p) for p in d["inputs"]),
                registry=str(d["registry"]),
                plain=d["plain"] is True,
                objects=d["objects"] if isinstance(d.get("objects"), str) else None,
            )
        except (ValueError, KeyError, TypeError):
            result = None
        if result is not None and (result.cluster, result.revision) == (cluster, revision):
            return result
        discard(path)  # sealed by fleet, yet not what it should be
    return None


def store(result: Result) -> None:
    """Keep ``result``, sealed, and only the :data:`KEEP_PER_CLUSTER` newest of its cluster; a FLEET_HOME
    that cannot be written only means nothing is kept."""
    key = _key(result.revision, result.cluster) if _NAME.fullmatch(result.cluster) else None
    if key is None or not writes_allowed():  # a dry run reads kept renders, never keeps one
        return
    payload = json.dumps({
        "cluster": result.cluster,
        "revision": result.revision,
        "text": result.text,
        "digest": result.digest,
        "inputs": list(result.inputs),
        "registry": result.registry,
        "plain": result.plain,
        "objects": result.objects,
    })
    if write_sealed(_path(result.cluster, key), _VERSION, key, payload):
        _prune(_dir(result.cluster))


def _prune(folder: Path) -> None:
    """Remove all but the newest :data:`KEEP_PER_CLUSTER` entries of a cluster (by modification time)."""
    entries = []
    for e in os.scandir(folder):
        if e.name.endswith(".json") and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                entries.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path))
    for _, path in sorted(entries, reverse=True)[KEEP_PER_CLUSTER:]:
        with contextlib.suppress(OSError):
            os.unlink(path)
