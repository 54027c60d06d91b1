"""``fleet region add REGION --from REGION``: registry entries for a new region, modelled on an existing one.

Each cluster of the model region gives one new entry: its name with the region substituted (``eu-1`` ->
``us-1`` when the model region ``eu`` appears in the name as a whole ``-``/``.``-separated part),
else ``<name>-<region>``; the same environment, wave, provider and provider settings; labels and
variables with the region substituted in their values; ``region`` set to the new region. ``access``
is not copied: it names an existing cluster's API server, and a new cluster is provisioned by fleet.

:func:`plan_region` builds the entries and checks them (nothing written); :func:`write_region` adds them
all in one commit (:func:`fleet.registry.store.add_clusters`, under the repo lock).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from fleet.adapters.git import GitRepo
from fleet.errors import InputError
from fleet.registry.load import cluster_file, load_registry, open_repo
from fleet.registry.model import ClusterSpec
from fleet.registry.store import BatchWriteResult, add_clusters, dump_cluster

__all__ = [
    "RegionEntry",
    "RegionPlan",
    "new_cluster_name",
    "plan_region",
    "substitute_region",
    "write_region",
]

_REGION = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # a label value: usable in -l


@dataclass(frozen=True)
class RegionEntry:
    source: str  # the model cluster
    spec: ClusterSpec
    file: str
    text: str  # the file as it will be written


@dataclass(frozen=True)
class RegionPlan:
    region: str
    source_region: str
    base_revision: str  # the commit the model entries were read at
    entries: tuple[RegionEntry, ...]
    dropped: tuple[str, ...] = ()  # what was not copied, said plainly

    @property
    def message(self) -> str:
        names = ", ".join(e.spec.name for e in self.entries)
        return f"Add region {self.region}: {len(self.entries)} clusters modelled on {self.source_region} ({names})"


def _token(old: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])")


def substitute_region(text: str, old: str, new: str) -> str:
    """``old`` replaced by ``new`` wherever it is a whole part of ``text`` (bounded by non-alphanumerics):
    ``eu-1`` -> ``us-1``, ``api.eu.example.com`` -> ``api.us.example.com``, ``europa`` unchanged."""
    return _token(old).sub(new, text)


def new_cluster_name(name: str, old: str, new: str) -> str:
    """The new region's name for cluster ``name`` of region ``old``."""
    if _token(old).search(name):
        return substitute_region(name, old, new)
    return f"{name}-{new}"


def _sub_values(values: Mapping[str, str], old: str, new: str) -> dict[str, str]:
    return {k: substitute_region(v, old, new) for k, v in values.items()}


def _model(spec: ClusterSpec, old: str, new: str) -> ClusterSpec:
    data = spec.model_dump(mode="json", exclude_none=True)
    data.pop("access", None)
    data["name"] = new_cluster_name(spec.name, old, new)
    data["region"] = new
    data["labels"] = _sub_values(spec.labels, old, new)
    data["vars"] = _sub_values(spec.vars, old, new)
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(
            f'the entry modelled on cluster "{spec.name}" would be invalid: {where}: {msg}',
            hint="pick a region name made of lowercase letters, digits and \"-\"",
        ) from e


def plan_region(
    repo: GitRepo | str | Path, region: str, source_region: str, *, environments: Sequence[str] = ()
) -> RegionPlan:
    """The entries ``fleet region add`` would write (nothing is written). Bad input raises InputError."""
    if not _REGION.match(region):
        raise InputError(
            f'REGION "{region}" is not a valid region name (letters, digits, "-", "_" and ".", at most 63)'
        )
    if region == source_region:
        raise InputError(f'--from "{source_region}" is the region being added; name another region')
    g = open_repo(repo)
    head = g.head()
    if head is None:
        raise InputError(f"{g.root} has no commits; this is not a fleet repo", hint="run `fleet init DIR`")
    reg = load_registry(g, head)
    regions = sorted({c.region for c in reg.clusters.values()})
    models = [c for c in reg.clusters.values() if c.region == source_region]
    if not models:
        raise InputError(
            f'--from: no cluster is in region "{source_region}"; '
            f'regions in {reg.layout.registry}/: {", ".join(regions) or "none"}'
        )
    if environments:
        have = sorted({c.environment for c in models})
        unknown = [e for e in environments if e not in have]
        if unknown:
            raise InputError(
                f'--env "{unknown[0]}": region "{source_region}" has no cluster in it; it has: {", ".join(have)}'
            )
        models = [c for c in models if c.environment in environments]
    if any(c.region == region for c in reg.clusters.values()):
        raise InputError(
            f'region "{region}" already has clusters: '
            + ", ".join(c.name for c in reg.clusters.values() if c.region == region),
            hint="add clusters to it one by one with `fleet cluster add NAME --region ...`",
        )
    entries: list[RegionEntry] = []
    seen: dict[str, str] = {}
    for model in sorted(models, key=lambda c: (c.wave, c.name)):
        spec = _model(model, source_region, region)
        if spec.name in reg.clusters:
            raise InputError(
                f'cluster "{spec.name}" (modelled on "{model.name}") already exists '
                f"({cluster_file(spec.name, reg.layout)})",
                hint="remove or rename it first, or pick another region name",
            )
        if spec.name in seen:
            raise InputError(f'clusters "{seen[spec.name]}" and "{model.name}" would both become "{spec.name}"')
        seen[spec.name] = model.name
        entries.append(RegionEntry(model.name, spec, cluster_file(spec.name, reg.layout), dump_cluster(spec)))
    dropped = tuple(f'access of "{c.name}" (a new cluster is provisioned by fleet)' for c in models if c.access)
    return RegionPlan(region, source_region, head, tuple(entries), dropped)


def write_region(repo: GitRepo | str | Path, plan: RegionPlan) -> BatchWriteResult:
    """Write the plan's entries in one commit (refused, with nothing written, if a name was taken since)."""
    return add_clusters(repo, [e.spec for e in plan.entries], plan.message)
