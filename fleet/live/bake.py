"""A bake: after a wave of a rollout passed its gates, its clusters are watched for a while, and the first
gate that stops passing ends the watch.

The same gates as :func:`fleet.live.gates.run_gates` (workloads of the rendered revision, the operator's
Kustomizations at that revision, the custom gates), watched (:class:`fleet.live.watch.Watcher`) until the
bake's end: a gate is looked at on every event of the objects it reads, never on a polling tick. A Flux
Kustomization re-checking the revision it applied (Ready Unknown for a moment, every interval) is not a
failure; anything else that is not passing is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import Cancelled
from fleet.live.gates import GateConfig, GateResult, _gates
from fleet.live.watch import Snapshot, Watcher, snapshot_once
from fleet.output import Reporter

__all__ = ["hold_gates"]


def hold_gates(target: KubeTarget, objects: Iterable[Mapping[str, Any]], revision: str, cfg: GateConfig, *,
               seconds: float, reporter: Reporter, cancel: threading.Event | None = None,
               kube: Kube | None = None) -> GateResult | None:
    """Watch the gates of ``objects`` at ``revision`` for ``seconds`` (0 or less: one look). None when every
    gate held throughout; else the first gate that did not pass. ``cancel`` set: raises :class:`Cancelled`."""
    kube = kube or Kube.connect(target)
    gates, queries, _skipped = _gates(objects, revision, replace(cfg, recheck_is_ready=True), kube, reporter)
    broken: list[GateResult] = []

    def failing(s: Snapshot) -> bool:
        for g in gates:
            hh = g.evaluate(s)
            if not hh.ok:
                broken.append(GateResult(g.gate, g.label, "failed", hh.message))
                return True
        return False

    if seconds <= 0:
        failing(snapshot_once(kube, queries))
        return broken[0] if broken else None
    deadline = time.monotonic() + seconds
    with Watcher(kube, queries, deadline=deadline) as w:
        if cancel is not None:
            def stop() -> None:
                if cancel.wait(max(deadline - time.monotonic(), 0)):
                    w.interrupt(Cancelled(f"{target.cluster}: bake interrupted"))

            threading.Thread(target=stop, daemon=True, name=f"bake-{target.cluster}").start()
        w.wait(failing)
    if broken:
        reporter.fail(f"{broken[0].object}: {broken[0].message}")
    return broken[0] if broken else None
