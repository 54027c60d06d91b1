"""A rollout's bake (fleet.live.bake.hold_gates) against a real local cluster: gates that hold through the
bake, a Deployment deleted while its gates are watched (the watch ends at once, naming it), a bake
cancelled (Ctrl-C) ends at once, and a bake whose end has passed takes one look."""

from __future__ import annotations

import threading
import time

import pytest
from live_support import deployment, namespace

from fleet.adapters.kube import Kube, KubeTarget
from fleet.errors import Cancelled
from fleet.live.apply import sync
from fleet.live.bake import hold_gates
from fleet.live.gates import GateConfig, run_gates
from fleet.output import SilentReporter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]

REV = "5" * 40


def _healthy(target: KubeTarget, ns: str) -> list[dict]:  # type: ignore[type-arg]
    objects = [namespace(ns), deployment(ns, "web", replicas=2)]
    sync(target, objects, REV, reporter=SilentReporter())
    assert run_gates(target, objects, REV, GateConfig(), timeout=120, reporter=SilentReporter()).passed
    return objects


def test_gates_that_hold_through_the_bake_pass_it(live_target: KubeTarget, ns: str) -> None:
    objects = _healthy(live_target, ns)
    t0 = time.monotonic()
    assert hold_gates(live_target, objects, REV, GateConfig(), seconds=3, reporter=SilentReporter()) is None
    assert time.monotonic() - t0 >= 3  # watched for the whole bake
    assert hold_gates(live_target, objects, REV, GateConfig(), seconds=0, reporter=SilentReporter()) is None


def test_a_deployment_deleted_during_the_bake_ends_it_at_once(live_target: KubeTarget, kube: Kube, ns: str) -> None:
    objects = _healthy(live_target, ns)
    out: list[object] = []
    t0 = time.monotonic()
    watch = threading.Thread(target=lambda: out.append(hold_gates(
        live_target, objects, REV, GateConfig(), seconds=120, reporter=SilentReporter())))
    watch.start()
    assert kube.delete("apps/v1", "Deployment", "web", ns)
    watch.join(timeout=60)
    assert not watch.is_alive() and time.monotonic() - t0 < 60  # not at the bake's end: on the event
    [broken] = out
    assert broken is not None and broken.object == f"Deployment/{ns}/web"  # type: ignore[attr-defined]


def test_a_cancelled_bake_ends_at_once(live_target: KubeTarget, ns: str) -> None:
    objects = _healthy(live_target, ns)
    cancel = threading.Event()
    cancel.set()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        hold_gates(live_target, objects, REV, GateConfig(), seconds=120, reporter=SilentReporter(), cancel=cancel)
    assert time.monotonic() - t0 < 60
