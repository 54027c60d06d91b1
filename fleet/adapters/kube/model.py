"""The values the Kubernetes adapter takes and gives: where a cluster is, how to retry, what the API
server serves, and what a call returns. Plain data: no client library here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FAST", "Applied", "KubeTarget", "Obj", "ObjectList", "Resource", "RetryPolicy", "WatchEvent"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class KubeTarget:
    """Where a cluster's API server is: a kubeconfig file and a context in it (None: its current one)."""

    cluster: str
    kubeconfig: Path | None
    context: str | None = None
    source: str = ""  # how fleet found it, for messages ("provisioned", "registry access", ...)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    budget_s: float = 90.0  # total time one call may spend retrying
    connect_attempts: int = 3  # a server that refuses connections is down, not flaky: give up sooner
    connect_timeout: float = 5.0
    read_timeout: float = 60.0


# For read-only looks at many clusters (fleet status): fail fast, never block the rest.
FAST = RetryPolicy(attempts=1, budget_s=3.0, connect_timeout=2.0, read_timeout=5.0)


@dataclass(frozen=True)
class Resource:
    """A kind as the API server serves it (from discovery)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


@dataclass(frozen=True)
class Applied:
    object: Obj
    created: bool


@dataclass(frozen=True)
class ObjectList:
    items: tuple[Obj, ...]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    """``SYNC`` carries a full list (at start and after a re-list); others one object."""

    type: str
    object: Obj | None = None
    items: tuple[Obj, ...] = ()
