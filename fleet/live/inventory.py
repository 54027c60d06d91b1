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

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fleet.adapters.kube import ApiRefused, Kube
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
    resource_version: str = ""  # of the head ConfigMap, for the next write's precondition

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
    prefix = data.get("chunkPrefix") or f"{INVENTORY_NAME}-g{generation}"
    for i in range(1, chunks):
        name = f"{prefix}-{i}"
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
        resource_version=str(head["metadata"].get("resourceVersion", "")),
    )


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


def write_inventory(
    kube: Kube, inv: Inventory, *, old_generation: int | None = None, expect_version: str | None = None
) -> Inventory:
    """Write ``inv`` (chunks first, then the head) and drop chunks no head names any more.

    ``expect_version``: the head's resourceVersion this write follows (from :func:`read_inventory`
    or the previous write). When another writer (a concurrent sync) changed the head since, nothing
    is overwritten and a :class:`KubeError` says so.
    """
    generation = (old_generation if old_generation is not None else inv.generation) + 1
    prefix = f"{INVENTORY_NAME}-g{generation}-{secrets.token_hex(3)}"  # unique: writers never share chunks
    chunks = _split(sorted(e.to_line() for e in inv.entries))
    for i, text in enumerate(chunks[1:], 1):
        kube.apply(_configmap(f"{prefix}-{i}", {"entries": text}))
    head = _configmap(INVENTORY_NAME, {
        "cluster": inv.cluster,
        "revision": inv.revision,
        "previousRevision": inv.previous_revision,
        "state": inv.state,
        "time": inv.time or now(),
        "count": str(len(inv.entries)),
        "generation": str(generation),
        "chunks": str(len(chunks)),
        "chunkPrefix": prefix,
        "entries": chunks[0],
    })
    if expect_version:
        head["metadata"]["resourceVersion"] = expect_version
    try:
        written = kube.apply(head, retry_conflicts=False).object
    except ApiRefused as e:
        if e.status != 409:
            raise
        now_head = kube.get("v1", "ConfigMap", INVENTORY_NAME, INVENTORY_NAMESPACE) or {}
        # Our own write when the head carries this write's own chunk prefix (never another writer's): the
        # server acted, its answer was lost (a reset), and the retry met the head just written.
        written = now_head if (now_head.get("data") or {}).get("chunkPrefix") == prefix else {}
    if not written:
        for i in range(1, len(chunks)):
            kube.delete("v1", "ConfigMap", f"{prefix}-{i}", INVENTORY_NAMESPACE)
        raise KubeError(
            f'cluster "{kube.target.cluster}": its inventory changed while this sync ran (another fleet sync?)',
            hint="nothing was lost: run the sync again once the other one finished",
        )
    current = {f"{prefix}-{i}" for i in range(1, len(chunks))}
    for cm in kube.list_objects("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE,
                                label_selector="fleet.dev/inventory=true").items:
        name = cm["metadata"]["name"]
        if name != INVENTORY_NAME and name not in current:
            kube.delete("v1", "ConfigMap", name, INVENTORY_NAMESPACE)
    rv = str((written.get("metadata") or {}).get("resourceVersion", ""))
    return replace(inv, generation=generation, resource_version=rv)


def remove_inventory(kube: Kube) -> None:
    """Delete the inventory (its head and every chunk): fleet no longer applies this cluster."""
    for cm in kube.list_objects("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE,
                                label_selector="fleet.dev/inventory=true").items:
        if cm["metadata"]["name"] != INVENTORY_NAME:
            kube.delete("v1", "ConfigMap", cm["metadata"]["name"], INVENTORY_NAMESPACE)
    kube.delete("v1", "ConfigMap", INVENTORY_NAME, INVENTORY_NAMESPACE)
