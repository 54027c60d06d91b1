"""Running one step of a pipeline: journaled, timed, retried within its budget.

A step is retried, within its budget, only for an error whose adapter marked it ``transient`` (the
API server or the engine not answering yet): the runner reads that mark and classifies nothing itself
(see :mod:`fleet.errors`). Any other FleetError fails the step at once with its cause (bad input as
it was raised). An exception that is not a FleetError is a bug: the step is journaled as failed and
the exception propagates as it was raised, neither retried nor wrapped (the CLI exits 70).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fleet.adapters.retry import call_with_retries
from fleet.errors import FleetError, InputError, StepFailed
from fleet.output import Reporter
from fleet.stepkit.journal import Journal, now_iso

__all__ = ["Budget", "is_transient", "run_step"]

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    attempts: int = 3
    seconds: float = 600.0  # wall-clock budget for all attempts of the step together


def is_transient(e: BaseException) -> bool:
    """Worth another attempt of the whole step: what the adapter that raised ``e`` said of it."""
    return isinstance(e, FleetError) and e.transient


def run_step(
    journal: Journal,
    name: str,
    fn: Callable[[], T],
    *,
    budget: Budget,
    reporter: Reporter,
    next_action: str,
    describe: Callable[[T], str] = lambda _r: "",
) -> T:
    """Run ``fn`` as step ``name``: mark it running, retry within ``budget``, record the outcome."""
    rec = journal.step(name)
    rec.state = "running"
    rec.started = now_iso()  # a resumed step starts again now; its earlier time stays in duration_s
    rec.ended = None
    journal.save()
    t0 = time.monotonic()
    prior = rec.duration_s or 0.0  # time spent in this step by a run that was killed

    def attempt() -> T:
        rec.attempts += 1
        journal.save()
        return fn()

    try:
        result = call_with_retries(
            attempt, attempts=budget.attempts, seconds=budget.seconds, retry_on=is_transient,
            on_retry=lambda n, e: reporter.warn(f"{name}: attempt {n} failed ({e or ''}); retrying"),
        )
    except Exception as e:  # reraise=True: the last attempt's own error, never a RetryError
        rec.state = "failed"
        rec.ended = now_iso()
        rec.duration_s = prior + time.monotonic() - t0
        rec.detail = str(getattr(e, "message", None) or e)[:500]
        journal.save()
        if isinstance(e, InputError) or not isinstance(e, FleetError):  # bad input; a bug: as raised
            raise
        raise StepFailed(name, e, next_action) from e
    rec.state = "done"
    rec.ended = now_iso()
    rec.duration_s = prior + time.monotonic() - t0
    rec.detail = describe(result)
    journal.save()
    return result
