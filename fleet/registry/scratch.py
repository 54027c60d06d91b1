"""Scratch identities: a cluster rebuilt under another name, as if it had been lost (``fleet drill``).

Inside :func:`scratch_identity`, every registry read (:func:`fleet.registry.load.load_registry`, at any
revision) also holds the scratch cluster: the live entry under the scratch name, with the same
environment, provider, settings, gates and variables, and ``FLEET_CLUSTER`` still the live name, so it
renders exactly what the live cluster runs; but not its ``access`` (the live cluster's context). Its
stack, kubeconfig, local cluster, journal and operator endpoint are all keyed by the scratch name, so
nothing of the live cluster is touched. The identity is a context variable: it holds for this thread (and
the contexts copied from it) only, and nothing is written to the repo.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fleet.errors import InputError
from fleet.registry.model import DNS_LABEL, ClusterSpec

__all__ = ["SCRATCH_SUFFIX", "active", "scratch_identity", "scratch_name", "scratch_spec", "with_scratch"]

SCRATCH_SUFFIX = "-drill"
_ACTIVE: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("fleet_scratch_identities", default=())


def scratch_name(live: str) -> str:
    """``eu-1`` -> ``eu-1-drill``; refused (exit 2) when that is no DNS label (a name over 57 characters)."""
    name = live + SCRATCH_SUFFIX
    if not DNS_LABEL.match(name):
        raise InputError(f'cluster "{live}" has no scratch name for a drill: "{name}" is longer than 63 characters')
    return name


def scratch_spec(live: ClusterSpec, scratch: str) -> ClusterSpec:
    """The live entry under the scratch name; it still renders as the live cluster (``FLEET_CLUSTER``). Its
    ``access`` (a context reaching the live cluster) is dropped: the scratch cluster is reached only through
    the kubeconfig its own provisioning writes, never through the live cluster's."""
    return live.model_copy(update={"name": scratch, "vars": {"FLEET_CLUSTER": live.name, **live.vars},
                                   "access": None})


def active() -> dict[str, str]:
    """The scratch identities in force here: scratch name -> live name."""
    return dict(_ACTIVE.get())


@contextmanager
def scratch_identity(live: str, scratch: str) -> Iterator[None]:
    """Registry reads in this context also hold ``scratch``, a copy of ``live``."""
    token = _ACTIVE.set((*_ACTIVE.get(), (scratch, live)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def with_scratch(clusters: dict[str, ClusterSpec]) -> dict[str, ClusterSpec]:
    """``clusters`` plus the scratch copies of those of them that have an active scratch identity."""
    extra = {s: scratch_spec(clusters[live], s) for s, live in _ACTIVE.get() if live in clusters and s not in clusters}
    return {**clusters, **extra} if extra else clusters
