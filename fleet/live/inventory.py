"""The inventory: what fleet applied to a cluster, at which revision, kept in the cluster itself.

A ConfigMap ``fleet-system/fleet-inventory`` holds the state (``applying`` or ``applied``), the
revision, the time and the entries (one ``group/version/kind/namespace/name`` a line). A large
inventory spills into chunk ConfigMaps named after a generation number; the head names its
generation and chunk count and is written last, so a reader never sees half of a write.

Sync writes the UNION of the old and new entries (state ``applying``) before it applies anything,
and the new entries alone (state ``applied``) only after everything applied and pruned. A sync that
fails in between leaves the union behind, so the next one still knows what to prune.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fleet.adapters.kube import Kube
from fleet.errors import KubeError
from fleet.live.objects import ObjectRef

__all__ = [
    "INVENTORY_NAME",
    "INVENTORY_NAMESPACE",
    "Inventory",
    "ensure_namespace",
    "read_inventory",
    "write_inventory",
]

INVENTORY_NAMESPACE = "fleet-system"
INVENTORY_NAME = "fleet-inventory"
CHUNK_BYTES = 256 * 1024
_LABELS = {"app.kubernetes.io/managed-by": "fleet", "fleet.dev/inventory": "true"}


@dataclass(frozen=True)
class Inventory:
    cluster: str
    revision: str
    state: str  # "applying" | "applied"
    time: str
    entries: frozenset[ObjectRef]
    previous_revision: str = ""
    generation: int = 0

    def keys(self) -> set[tuple[str, str, str, str]]:
        return {e.key for e in self.entries}


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ensure_namespace(kube: Kube) -> None:
    """Create the inventory's namespace when missing (never recorded, so never pruned)."""
    if kube.get("v1", "Namespace", INVENTORY_NAMESPACE) is None:
        kube.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": INVENTORY_NAMESPACE, "labels": dict(_LABELS)}})


def _parse_entries(text: str, where: str) -> list[ObjectRef]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(ObjectRef.from_line(line))
        except ValueError as e:
            raise KubeError(f"inventory {where} line {n}: {e}") from e
    return out


def read_inventory(kube: Kube) -> Inventory | None:
    """The cluster's inventory, or None when fleet never synced it."""
    head = kube.get("v1", "ConfigMap", INVENTORY_NAME, INVENTORY_NAMESPACE)
    if head is None:
        return None
    data: dict[str, str] = head.get("data") or {}
    where = f"{INVENTORY_NAMESPACE}/{INVENTORY_NAME}"
    try:
        generation = int(data.get("generation", "0"))
        chunks = int(data.get("chunks", "1"))
    except ValueError as e:
        raise KubeError(f'cluster "{kube.target.cluster}": inventory {where} is damaged: {e}') from e
    entries = _parse_entries(data.get("entries", ""), where)
    for i in range(1, chunks):
        name = _chunk_name(generation, i)
        cm = kube.get("v1", "ConfigMap", name, INVENTORY_NAMESPACE)
        if cm is None:
            raise KubeError(
                f'cluster "{kube.target.cluster}": inventory chunk {INVENTORY_NAMESPACE}/{name} is missing'
            )
        entries += _parse_entries((cm.get("data") or {}).get("entries", ""), f"{INVENTORY_NAMESPACE}/{name}")
    return Inventory(
        cluster=data.get("cluster", kube.target.cluster),
        revision=data.get("revision", ""),
        state=data.get("state", ""),
        time=data.get("time", ""),
        entries=frozenset(entries),
        previous_revision=data.get("previousRevision", ""),
        generation=generation,
    )


def _chunk_name(generation: int, i: int) -> str:
    return f"{INVENTORY_NAME}-g{generation}-{i}"


def _split(lines: list[str]) -> list[str]:
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for line in lines:
        if cur and size + len(line) + 1 > CHUNK_BYTES:
            chunks.append("\n".join(cur) + "\n")
            cur, size = [], 0
        cur.append(line)
        size += len(line) + 1
    chunks.append("\n".join(cur) + "\n" if cur else "")
    return chunks


def _configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    meta = {"name": name, "namespace": INVENTORY_NAMESPACE, "labels": dict(_LABELS)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def write_inventory(kube: Kube, inv: Inventory, *, old_generation: int | None = None) -> Inventory:
    """Write ``inv`` (chunks first, then the head) and drop chunks of older generations."""
    generation = (old_generation if old_generation is not None else inv.generation) + 1
    chunks = _split(sorted(e.to_line() for e in inv.entries))
    for i, text in enumerate(chunks[1:], 1):
        kube.apply(_configmap(_chunk_name(generation, i), {"entries": text}))
    kube.apply(_configmap(INVENTORY_NAME, {
        "cluster": inv.cluster,
        "revision": inv.revision,
        "previousRevision": inv.previous_revision,
        "state": inv.state,
        "time": inv.time or now(),
        "count": str(len(inv.entries)),
        "generation": str(generation),
        "chunks": str(len(chunks)),
        "entries": chunks[0],
    }))
    current = {_chunk_name(generation, i) for i in range(1, len(chunks))}
    for cm in kube.list_objects("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE,
                                label_selector="fleet.dev/inventory=true").items:
        name = cm["metadata"]["name"]
        if name != INVENTORY_NAME and name not in current:
            kube.delete("v1", "ConfigMap", name, INVENTORY_NAMESPACE)
    return replace(inv, generation=generation)
