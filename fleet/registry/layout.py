"""Where the registry and the environment overlays live in a fleet repo (``fleet.yaml``'s ``registry.path``
and ``environments.path``), so fleet can adopt a repo laid out otherwise without moving a file.

The defaults are what ``fleet init`` writes: ``clusters/<name>.yaml`` and ``environments/<env>/``. An
adopted Flux repo keeps its ``clusters/<name>/`` folders and puts the registry elsewhere
(``registry: {path: fleet/clusters}``); a kustomize tree names its overlays with a pattern
(``environments: {path: "deploy/overlays/{env}"}``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "DEFAULT_LAYOUT",
    "DEFAULT_REGISTRY",
    "ENV_FIELD",
    "Layout",
    "path_problem",
]

DEFAULT_REGISTRY = "clusters"
DEFAULT_ENVIRONMENTS = "environments/{env}"
ENV_FIELD = "{env}"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SEGMENT = re.compile(r"^[A-Za-z0-9._@+=,-]+\Z")


def path_problem(value: str, *, pattern: bool = False) -> str | None:
    """Why ``value`` is not a repository-relative directory fleet can use (or None). With ``pattern``, it
    must hold ``{env}`` exactly once, as a whole path segment."""
    if not value or value.strip() != value:
        return "must be a non-empty path without surrounding spaces"
    if value.startswith("/") or "\\" in value:
        return f'"{value}" must be a relative path with "/" separators'
    parts = value.removeprefix("./").rstrip("/").split("/")
    for part in parts:
        if part in ("", ".", ".."):
            return f'"{value}" must stay inside the repository (no "..", no empty or "." segment)'
        if part == ".git" or part.startswith(".git/"):
            return f'"{value}" must not be inside .git'
        if pattern and part == ENV_FIELD:
            continue
        if not _SEGMENT.match(part):
            what = "{env} must be a whole path segment" if "{" in part or "}" in part else "has a character"
            return f'"{value}": segment "{part}" {what} that fleet does not allow in a path'
    if pattern and parts.count(ENV_FIELD) != 1:
        return f'"{value}" must hold {ENV_FIELD} exactly once, as a whole segment (e.g. deploy/overlays/{ENV_FIELD})'
    return None


def _clean(value: str) -> str:
    return value.removeprefix("./").rstrip("/")


@dataclass(frozen=True)
class Layout:
    """The registry folder and the environment pattern of one fleet repo (at one revision)."""

    registry: str = DEFAULT_REGISTRY
    environments: str = DEFAULT_ENVIRONMENTS

    @classmethod
    def of(cls, registry: str, environments: str) -> Layout:
        """The layout of fleet.yaml's ``registry.path`` and ``environments.path`` (``./`` and a trailing
        ``/`` dropped); :attr:`fleet.registry.model.FleetSettings.layout` gives a fleet.yaml's."""
        return cls(_clean(registry), _clean(environments))

    @property
    def env_parent(self) -> str:
        """The directory whose subdirectories are the environments (``environments``, ``deploy/overlays``)."""
        return self.environments.split(ENV_FIELD, 1)[0].rstrip("/")

    @property
    def env_below(self) -> str:
        """What follows ``{env}`` in the pattern (``""``, or ``"/overlay"`` for ``apps/{env}/overlay``)."""
        return self.environments.split(ENV_FIELD, 1)[1]

    @property
    def environments_shown(self) -> str:
        """The pattern as messages show it: ``environments/``, ``deploy/overlays/{env}/``."""
        return f"{self.env_parent}/" if not self.env_below else f"{self.environments}/"

    def cluster_file(self, name: str) -> str:
        """``<registry>/<name>.yaml`` for a name already checked to be a DNS label."""
        return f"{self.registry}/{name}.yaml"

    def overlay_dir(self, environment: str) -> str:
        return self.environments.replace(ENV_FIELD, environment)

    def environments_in(self, dirs: Callable[[str], list[str]], files: Callable[[str], list[str]]) -> list[str]:
        """The environments a tree holds: each ``{env}`` whose overlay directory has a kustomization."""
        out = []
        for d in dirs(self.env_parent):
            overlay = posixpath.join(self.env_parent, d) + self.env_below
            if set(files(overlay)) & set(KUSTOMIZATION_FILES):
                out.append(d)
        return sorted(out)


DEFAULT_LAYOUT = Layout()
