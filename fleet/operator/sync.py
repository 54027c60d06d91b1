"""A revision promoted through the operator: the pin moved through its one owner (the cluster's Pulumi
stack), a reconcile asked for, the operator waited for until it applied the revision, its gates passed,
and a direct sync's leftovers handed over to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.adapters.kube import Kube, KubeTarget
from fleet.live.apply import hand_over
from fleet.live.gates import GateConfig, run_gates
from fleet.operator.base import Operator
from fleet.output import Reporter

__all__ = ["Promotion", "promote"]


@dataclass(frozen=True)
class Promotion:
    """``fleet sync`` through the operator: the pin moved from ``previous`` to ``revision``, applied."""

    cluster: str
    revision: str
    previous: str  # the commit pinned before ("" when it followed the branch)
    mode: str  # "operator"
    fetched_at: str
    ready_at: str
    duration_s: float


def promote(op: Operator, target: KubeTarget, commit: str, branch: str, cfg: GateConfig, *, timeout: float,
            reporter: Reporter, pin: Callable[[], object]) -> Promotion:
    """Move the cluster's pin to ``commit`` through its one owner (``pin``: the cluster's Pulumi stack),
    ask the operator to reconcile now, wait until it applied the revision, then its gates."""
    t0 = time.monotonic()
    kube = Kube.connect(target)
    try:
        before = op.pinned(kube)
        if before == commit:
            reporter.step(f'"{target.cluster}" is pinned to {commit[:12]} already; requesting a reconcile')
        else:
            reporter.step(f'moving the pin of "{target.cluster}" from {before[:12] or branch} to {commit[:12]} '
                          "(the cluster's stack owns it)")
            pin()
        op.reconcile_now(kube)
        op.wait_applied(target, commit, timeout=timeout, reporter=reporter, kube=kube)
        left = max(1.0, timeout - (time.monotonic() - t0))
        run_gates(target, (), commit, cfg, timeout=left, reporter=reporter, kube=kube).raise_for_failure()
        hand_over(target, reporter, kube)
        st = op.read(kube)
        return Promotion(target.cluster, commit, before, "operator", st.fetched_at, st.ready_since,
                         round(time.monotonic() - t0, 3))
    finally:
        kube.close()
