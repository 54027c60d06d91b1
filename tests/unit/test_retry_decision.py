"""One retry decision (issue 14): the adapters classify, the step runner only reads ``transient``.

Bad input, NotFound, Forbidden and TLS verification are never retried; a transient error is, within
the step's budget; a bug (not a FleetError) propagates as it was raised; a stack lock is waited for by
the Pulumi adapter alone, within its one bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import errors as auto_errors
from pulumi.automation._cmd import CommandResult

import fleet.adapters.retry as retry
from fleet.adapters import pulumi_auto as pa
from fleet.errors import (
    ConcurrentUpdate,
    ConfigError,
    FleetError,
    Forbidden,
    InputError,
    KubeError,
    NotFound,
    ProgramError,
    StepFailed,
    Unreachable,
)
from fleet.output import SilentReporter
from fleet.stepkit.journal import Journal
from fleet.stepkit.steps import Budget, run_step


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "wait_exponential", lambda **_: (lambda _rs: 0))


def journal(tmp_path: Path) -> Journal:
    j = Journal.new("eu-1", "a" * 40, "direct", ["sync"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    j.path = tmp_path / "journal.json"
    return j


def run(tmp_path: Path, fn: Callable[[], Any], attempts: int = 3) -> tuple[Journal, Any]:
    j = journal(tmp_path)
    return j, run_step(j, "sync", fn, budget=Budget(attempts, 60), reporter=SilentReporter(),
                       next_action="run it again")


def always(e: BaseException) -> Callable[[], Any]:
    def fn() -> Any:
        raise e

    return fn


@pytest.mark.parametrize("error", [
    Forbidden('cluster "eu-1": apply ConfigMap ns/a: forbidden'),
    KubeError('cluster "eu-1": get ConfigMap ns/a: not found'),
    Unreachable('cluster "eu-1": TLS with https://127.0.0.1:6443 failed: CERTIFICATE_VERIFY_FAILED'),
    ProgramError('pulumi up of stack "eu-1" failed: no matches for kind "Bogus"'),
    ConcurrentUpdate('stack "eu-1" is locked by another update'),  # the adapter already waited for it
], ids=["forbidden", "refused", "tls", "program", "lock"])
def test_an_error_its_adapter_did_not_mark_transient_fails_the_step_at_once(tmp_path: Path,
                                                                           error: FleetError) -> None:
    j = journal(tmp_path)
    with pytest.raises(StepFailed) as e:
        run_step(j, "sync", always(error), budget=Budget(3, 60), reporter=SilentReporter(), next_action="x")
    assert e.value.cause is error
    assert j.step("sync").attempts == 1 and j.step("sync").state == "failed"


@pytest.mark.parametrize("error", [
    InputError("--rev: bad"), NotFound('cluster "eu-9" not found in clusters/'),
    ConfigError("bad", file="clusters/eu-1.yaml", line=3, key="wave"),
], ids=["input", "notfound", "config"])
def test_bad_input_is_never_retried_and_comes_out_as_raised(tmp_path: Path, error: InputError) -> None:
    j = journal(tmp_path)
    with pytest.raises(InputError) as e:
        run_step(j, "sync", always(error), budget=Budget(3, 60), reporter=SilentReporter(), next_action="x")
    assert e.value is error
    assert j.step("sync").attempts == 1


def test_a_transient_error_is_retried_within_the_budget(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise Unreachable("connection reset by peer", transient=True)
        return "ok"

    j, out = run(tmp_path, flaky, attempts=3)
    assert out == "ok" and j.step("sync").attempts == 3 and j.step("sync").state == "done"

    j = journal(tmp_path / "again")
    err = KubeError("503 Service Unavailable", transient=True)
    with pytest.raises(StepFailed) as e:
        run_step(j, "sync", always(err), budget=Budget(2, 60), reporter=SilentReporter(), next_action="x")
    assert e.value.cause is err and j.step("sync").attempts == 2  # the budget, no more


def test_a_bug_in_a_step_propagates_as_raised_not_retried_nor_wrapped(tmp_path: Path) -> None:
    bug = KeyError("spec")
    j = journal(tmp_path)
    with pytest.raises(KeyError) as e:
        run_step(j, "sync", always(bug), budget=Budget(3, 60), reporter=SilentReporter(), next_action="x")
    assert e.value is bug
    assert j.step("sync").attempts == 1 and j.step("sync").state == "failed"
    # a library error that would once have been "transient" by its type is a bug above the adapters too
    j = journal(tmp_path / "conn")
    with pytest.raises(ConnectionResetError):
        run_step(j, "sync", always(ConnectionResetError()), budget=Budget(3, 60), reporter=SilentReporter(),
                 next_action="x")
    assert j.step("sync").attempts == 1


class _LockedStack:
    """A stack whose every update finds the lock held (what the engine says of a held lock)."""

    def __init__(self) -> None:
        self.ups = 0

    def up(self, **_: Any) -> Any:
        self.ups += 1
        raise auto_errors.ConcurrentUpdateError(
            CommandResult("", "error: the stack is currently locked by 1 lock(s)", 255))


class _FlakyStack:
    def __init__(self, text: str) -> None:
        self.ups, self.text = 0, text

    def up(self, **_: Any) -> Any:
        self.ups += 1
        raise auto_errors.CommandError(CommandResult("", f"error: {self.text}", 255))


def engine(tmp_path: Path, stack: Any, monkeypatch: pytest.MonkeyPatch, *, lock_attempts: int,
           transient_attempts: int = 1) -> pa.Engine:
    settings = pa.EngineSettings(backend_url=f"file://{tmp_path / 'state'}", pulumi_home=tmp_path / "home",
                                 work_root=tmp_path / "work")
    eng = pa.Engine(settings.with_retries(lock_attempts=lock_attempts, transient_attempts=transient_attempts,
                                          wait_s=0))
    monkeypatch.setattr(eng, "_stack", lambda req, create: stack)
    return eng


def test_a_stack_lock_is_waited_for_by_the_adapter_alone_within_one_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _LockedStack()
    eng = engine(tmp_path, stack, monkeypatch, lock_attempts=4)
    j = journal(tmp_path)
    with pytest.raises(StepFailed) as e:
        run_step(j, "sync", lambda: eng.up(pa.StackRequest("eu-1", lambda: None)), budget=Budget(3, 60),
                 reporter=SilentReporter(), next_action="x")
    assert isinstance(e.value.cause, ConcurrentUpdate) and not e.value.cause.transient
    assert stack.ups == 4  # the adapter's bound, once: not 4 x the step's 3
    assert j.step("sync").attempts == 1


def test_a_transient_engine_failure_is_retried_by_the_engine_alone_never_again_by_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _FlakyStack("read tcp 10.0.0.1:443: connection reset by peer")
    eng = engine(tmp_path, stack, monkeypatch, lock_attempts=1, transient_attempts=2)
    with pytest.raises(ProgramError) as e:
        eng.up(pa.StackRequest("eu-1", lambda: None))
    assert not e.value.transient and stack.ups == 2  # retried to the engine's bound: not the step's to retry
    j = journal(tmp_path)
    with pytest.raises(StepFailed):
        run_step(j, "sync", lambda: eng.up(pa.StackRequest("eu-1", lambda: None)), budget=Budget(2, 60),
                 reporter=SilentReporter(), next_action="x")
    assert j.step("sync").attempts == 1 and stack.ups == 2 + 2  # the bounds do not multiply

    other = _FlakyStack('no matches for kind "Bogus"')
    eng = engine(tmp_path, other, monkeypatch, lock_attempts=1, transient_attempts=3)
    with pytest.raises(ProgramError) as e:
        eng.up(pa.StackRequest("eu-1", lambda: None))
    assert not e.value.transient and other.ups == 1
