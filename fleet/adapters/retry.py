"""Retries with a budget, for the step runner (:mod:`fleet.stepkit.steps`): tenacity behind one function.
With the kube client and the Pulumi engine, the only modules of fleet that import tenacity (import-linter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

__all__ = ["call_with_retries"]

T = TypeVar("T")


def call_with_retries(fn: Callable[[], T], *, attempts: int, seconds: float,
                      retry_on: Callable[[BaseException], bool],
                      on_retry: Callable[[int, BaseException | None], None],
                      wait_min: float = 1, wait_max: float = 15) -> T:
    """``fn()``, tried again (exponential back-off between ``wait_min`` and ``wait_max`` seconds) while it
    raises what ``retry_on`` accepts, at most ``attempts`` times and ``seconds`` in all; the last attempt's
    own exception is raised as it was (never a RetryError). ``on_retry(attempt, error)`` before each wait."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts) | stop_after_delay(seconds),
        wait=wait_exponential(multiplier=1, min=wait_min, max=wait_max),
        retry=retry_if_exception(retry_on),
        reraise=True,
        before_sleep=lambda rs: on_retry(rs.attempt_number, rs.outcome.exception() if rs.outcome else None),
    )
    return retrying(fn)
