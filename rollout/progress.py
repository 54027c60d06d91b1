"""How a rollout says what it does: a :class:`RolloutView` gets the rollout's own lines and a reporter per
cluster; :class:`PlainView` writes flux-style lines, the CLI's live table (``fleet.cli.rollout_view``)
redraws a line per cluster. :class:`Tracking` keeps a cluster's current step and last line in the journal
for that table, and stops a cluster at its next step when the rollout is interrupted (Ctrl-C)."""

from __future__ import annotations

import threading
from typing import Protocol

from bootstrap.pipeline import STEPS
from fleet.errors import Cancelled
from fleet.output import Reporter
from rollout.journal import ClusterRun, RolloutJournal

__all__ = ["PlainView", "Prefixed", "RolloutView", "Tracking"]

STEP_NAMES = frozenset(STEPS) | {"probe", "rollback"}


class RolloutView(Protocol):
    """Where a rollout's progress goes: ``reporter`` for the rollout's own lines, ``cluster(name)`` for a
    cluster's; ``attach`` hands over the journal (a live view renders it)."""

    @property
    def reporter(self) -> Reporter: ...
    def cluster(self, name: str) -> Reporter: ...
    def attach(self, journal: RolloutJournal) -> None: ...


class Prefixed:
    def __init__(self, inner: Reporter, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def step(self, msg: str) -> None:
        self.inner.step(self.prefix + msg)

    def ok(self, msg: str) -> None:
        self.inner.ok(self.prefix + msg)

    def wait(self, msg: str) -> None:
        self.inner.wait(self.prefix + msg)

    def warn(self, msg: str) -> None:
        self.inner.warn(self.prefix + msg)

    def fail(self, msg: str) -> None:
        self.inner.fail(self.prefix + msg)


class PlainView:
    """flux-style lines (► ✔ ◎ ⚠ ✗), a cluster's prefixed with its name: for logs and pipelines."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    def cluster(self, name: str) -> Reporter:
        return Prefixed(self._reporter, f"{name}: ")

    def attach(self, journal: RolloutJournal) -> None:
        pass


class Tracking:
    """A cluster's reporter that also keeps its current step and last line in the journal (live view).
    When ``cancel`` is set, the next step boundary (``step("sync")``, ...) raises :class:`Cancelled`."""

    def __init__(self, run: ClusterRun, inner: Reporter, cancel: threading.Event | None = None) -> None:
        self.run, self.inner, self.cancel = run, inner, cancel

    def _note(self, msg: str) -> None:
        self.run.message = msg

    def step(self, msg: str) -> None:
        if msg in STEP_NAMES:
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled(f"{self.run.name}: interrupted before {msg}")
            self.run.step = msg
        self._note(msg)
        self.inner.step(msg)

    def ok(self, msg: str) -> None:
        self._note(msg)
        self.inner.ok(msg)

    def wait(self, msg: str) -> None:
        self._note(msg)
        self.inner.wait(msg)

    def warn(self, msg: str) -> None:
        self._note(msg)
        self.inner.warn(msg)

    def fail(self, msg: str) -> None:
        self._note(msg)
        self.inner.fail(msg)
