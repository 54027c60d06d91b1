"""A local cluster's controllers start once the update made their CRDs' install set, in a thread of their own,
once; a failed early start is left to the start after the update (which reports its error)."""

from __future__ import annotations

import threading

import pytest

from fleet import provision as prov
from fleet.output import SilentReporter


def test_the_controllers_start_once_in_a_thread_when_the_install_set_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, str]] = []
    gate = threading.Event()

    def start(name: str, _r: object) -> None:
        started.append((name, threading.current_thread().name))
        gate.wait(10)

    monkeypatch.setattr(prov, "_start_local_controllers", start)
    early = prov._EarlyControllers("eu-1", "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository", SilentReporter())
    early.seen("fleet:local:Cluster")
    early.join()  # nothing started yet: returns at once
    assert started == []
    early.seen("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    early.seen("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")  # a retried update tells it again
    gate.set()
    early.join()
    assert started == [("eu-1", "controllers-eu-1")]


def test_a_failed_early_start_is_swallowed_for_the_start_after_the_update(monkeypatch: pytest.MonkeyPatch) -> None:
    def start(_n: str, _r: object) -> None:
        raise RuntimeError("controllers did not come up")

    monkeypatch.setattr(prov, "_start_local_controllers", start)
    early = prov._EarlyControllers("eu-1", "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository", SilentReporter())
    early.seen("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    early.join()  # no exception here: provision calls _start_local_controllers again and that one raises
