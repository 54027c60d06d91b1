"""The fleet registry: which clusters exist, which environment overlay each runs (``fleet.yaml``,
``clusters/<name>.yaml``, ``environments/<env>/``), read and written through Git."""

from typing import TYPE_CHECKING, Any

from fleet.registry.layout import DEFAULT_LAYOUT, Layout
from fleet.registry.load import (
    Registry,
    cluster_file,
    layout_at,
    load_registry,
    open_repo,
    parse_cluster,
    parse_selector,
)
from fleet.registry.model import (
    ClusterSource,
    ClusterSpec,
    CustomGate,
    FleetSettings,
    GateSettings,
    KubeAccess,
    OperatorSettings,
)

__all__ = [
    "DEFAULT_LAYOUT",
    "BatchWriteResult",
    "ClusterSource",
    "ClusterSpec",
    "ClusterUpdate",
    "CustomGate",
    "FleetSettings",
    "GateSettings",
    "InitResult",
    "KubeAccess",
    "Layout",
    "OperatorSettings",
    "Registry",
    "WriteResult",
    "add_cluster",
    "add_clusters",
    "cluster_file",
    "dump_cluster",
    "init_repo",
    "layout_at",
    "load_registry",
    "open_repo",
    "parse_cluster",
    "parse_selector",
    "remove_cluster",
    "set_cluster",
]

if TYPE_CHECKING:  # the write side: loaded when a write command asks for it (see __getattr__)
    from fleet.registry.store import (
        BatchWriteResult,
        ClusterUpdate,
        InitResult,
        WriteResult,
        add_cluster,
        add_clusters,
        dump_cluster,
        init_repo,
        remove_cluster,
        set_cluster,
    )

_STORE = frozenset({
    "BatchWriteResult", "ClusterUpdate", "InitResult", "WriteResult", "add_cluster", "add_clusters",
    "dump_cluster", "init_repo", "remove_cluster", "set_cluster",
})


def __getattr__(name: str) -> Any:
    """The registry's write side (``fleet.registry.store``) on first use: read commands never load it."""
    if name in _STORE:
        from fleet.registry import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
