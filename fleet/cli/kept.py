"""``fleet render CLUSTER`` of a commit whose render fleet kept (:mod:`fleet.rendering.cache`), without typer.

A render kept for its commit needs only plain ``git`` (the commit id, the uncommitted changes) and the kept
entry: no GitPython, no registry models, no kustomize. :func:`fleet.cli.render` uses :func:`kept_render`
for every form it prints; :func:`fleet.cli.main` serves the plainest form, ``fleet render CLUSTER`` (the
manifests, from the current directory's repository), through :func:`print_kept` before it loads typer (and
the pydantic that typer's option parsing needs), as it draws ``fleet --help`` without typer. Anything else,
and a commit with no kept render, goes through typer as usual.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleet.output import StderrReporter

__all__ = ["Kept", "kept_render", "print_kept", "warn_edits"]

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a cluster name: a DNS label


def warn_edits(dirty: Iterable[str], watched: Iterable[str]) -> None:
    """Say so when uncommitted changes touch what was rendered: fleet renders Git, not files."""
    watched = tuple(watched)
    hit = [d for d in dirty if any(d == w or d.startswith(w.rstrip("/") + "/") for w in watched)]
    if hit:
        StderrReporter().warn(f"uncommitted changes ({', '.join(hit[:3])}) are not rendered: fleet renders Git")


class Kept:
    """A render :mod:`fleet.rendering.cache` kept, shown as :class:`fleet.rendering.cluster.Rendered` would be."""

    def __init__(self, cluster: str, revision: str, text: str, digest: str, objects: str | None) -> None:
        self.cluster, self.revision, self.text, self.digest = cluster, revision, text, digest
        self._objects = objects

    @functools.cached_property
    def objects(self) -> tuple[dict[str, Any], ...]:
        if self._objects is not None:
            return tuple(json.loads(self._objects))
        import yaml  # only for -o json|table: -o yaml prints the text

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return tuple(yaml.load_all(self.text, Loader=loader))


def kept_render(path: Path, cluster: str, rev: str | None) -> Kept | None:
    """The render of ``cluster`` at ``rev`` that fleet kept for that commit, found without GitPython, the
    registry's models or kustomize; None (the full path runs) when there is none, when it holds
    SOPS-encrypted objects, or when git cannot answer plainly. Warns of uncommitted edits to what it
    renders, as the full path does."""
    from fleet.adapters import gitplain
    from fleet.rendering import cache as rendercache

    found = gitplain.resolve(path, rev)
    if found is None:
        return None
    root, sha = found
    kept = rendercache.load(sha, cluster)
    if kept is None or not kept.plain:
        return None
    if rev is None:
        dirty = gitplain.changed_paths(root)
        if dirty is None:
            return None
        # the cluster's own registry file (its variables) and fleet.yaml count; other clusters' files do not
        own = (f"{kept.registry}/{cluster}.yaml", "fleet.yaml")
        warn_edits((p for p in dirty if not p.startswith(kept.registry + "/") or p in own), (*kept.inputs, *own))
    return Kept(kept.cluster, kept.revision, kept.text, kept.digest, kept.objects)


def print_kept(args: list[str]) -> bool:
    """Serve ``fleet render CLUSTER`` (exactly that: no option, no ``FLEET_REPO``) from a kept render:
    True when printed, False when typer must run the command."""
    if len(args) != 2 or args[0] != "render" or not _NAME.fullmatch(args[1]) or "FLEET_REPO" in os.environ:
        return False
    kept = kept_render(Path.cwd(), args[1], None)
    if kept is None:
        return False
    sys.stdout.write(kept.text)
    sys.stdout.flush()
    return True
