"""The Automation API adapter against the real engine, without clusters: locks held by another update,
stale locks, errors raised by programs, missing stacks. Inline programs only (no language host)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest
from helpers import run_cli

from fleet.adapters.pulumi_auto import Engine, EngineSettings, StackRequest
from fleet.errors import ConcurrentUpdate, InputError, ProgramError, StackNotFound
from fleet.output import SilentReporter
from fleet.provision import stack_outputs

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("provision-engine")]


def noop() -> None:
    pulumi.export("answer", 42)


@pytest.fixture
def engine(pulumi_env: EngineSettings) -> Engine:
    return Engine(pulumi_env, SilentReporter())


@pytest.fixture
def held(engine: Engine) -> Iterator[str]:
    """A stack whose lock an update in another thread holds until the test ends."""
    stack = "e2e-locked"
    release = threading.Event()
    started = threading.Event()

    def blocking() -> None:
        started.set()
        release.wait()  # until the test ends: the lock is held for as long as the test needs it

    t = threading.Thread(target=lambda: engine.up(StackRequest(stack, blocking)), daemon=True)
    t.start()
    try:
        assert started.wait(120), "the first update never ran its program"
        assert engine.locks(stack), "the update runs its program, yet the stack has no lock file"
        yield stack
    finally:
        release.set()
        t.join(300)
        assert not t.is_alive(), "the first update did not finish once released"
        engine.destroy(StackRequest(stack, noop))


def test_an_update_while_another_holds_the_lock_is_a_concurrent_update(engine: Engine, held: str) -> None:
    with pytest.raises(ConcurrentUpdate) as e:
        engine.up(StackRequest(held, noop))
    assert f'stack "{held}" is locked by another update (pulumi pid' in e.value.message
    assert f"fleet provision {held} --force-unlock" in (e.value.hint or "")
    assert e.value.exit_code == 1


def test_the_cli_says_it_in_one_line(
    engine: Engine, held: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from e2e_support import make_fleet_repo

    from fleet.registry import ClusterSpec, add_cluster

    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, ClusterSpec(name=held, environment="dev"))
    code, out, err = run_cli(capsys, "provision", held, "--repo", str(repo))
    assert code == 1 and out == ""
    assert f'✗ stack "{held}" is locked by another update' in err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("  hint: wait for it to finish")
    assert all(ln[0] in "►⚠✗" for ln in lines[:-1])  # progress, retries, the one error line
    assert sum(ln.startswith("✗") for ln in lines) == 1


def test_a_stale_lock_of_a_dead_process_is_removed_and_the_update_runs(engine: Engine) -> None:
    stack = "e2e-stale"
    engine.up(StackRequest(stack, noop))
    backend = engine.settings.file_backend_dir
    assert backend is not None
    lock_dir = backend / ".pulumi" / "locks" / "organization" / "fleet" / stack
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_dir / "00000000-dead-beef-0000-000000000000.json"
    lock.write_text(
        json.dumps(
            {
                "pid": 2**22 + 12345,
                "username": "root",
                "hostname": socket.gethostname(),
                "timestamp": "2026-01-01T00:00:00Z",
            }
        )
    )
    r = SilentReporter()
    try:
        res = Engine(engine.settings, r).up(StackRequest(stack, noop))
        assert set(res.changes) == {"same"}
        assert not lock.exists()
        assert any("removed a stale lock" in ln for ln in r.lines)
    finally:
        engine.destroy(StackRequest(stack, noop))


def test_a_metadata_file_a_killed_run_left_empty_is_removed_and_the_stacks_list_again(engine: Engine) -> None:
    """A run SIGKILLed while the file backend wrote a stack's ``.attrs`` leaves it empty, and the engine's
    `pulumi stack ls` then fails for every stack of the project with `error: EOF` (found by
    bench/reliability.py: a killed rollout could not resume)."""
    stack = "e2e-attrs"
    engine.up(StackRequest(stack, noop))
    backend = engine.settings.file_backend_dir
    assert backend is not None
    attrs = backend / ".pulumi" / "stacks" / "fleet" / f"{stack}.json.attrs"
    assert attrs.is_file()
    attrs.write_bytes(b"")
    r = SilentReporter()
    try:
        e2 = Engine(engine.settings, r)
        assert e2.exists(stack)
        assert not attrs.exists()
        assert any("removed an unreadable metadata file of the Pulumi file backend" in ln for ln in r.lines)
        assert e2.resource_counts()[stack] >= 1
        assert set(e2.up(StackRequest(stack, noop)).changes) == {"same"}
    finally:
        engine.destroy(StackRequest(stack, noop))


def test_a_program_error_carries_the_useful_part_only(engine: Engine) -> None:
    def broken() -> None:
        raise RuntimeError("the region eu-9 does not exist")

    with pytest.raises(ProgramError) as e:
        engine.up(StackRequest("e2e-broken", broken))
    msg = e.value.message
    assert msg.startswith('pulumi up of stack "e2e-broken" failed: ')
    assert "the region eu-9 does not exist" in msg
    assert "Traceback" not in msg and len(msg) < 2100
    engine.destroy(StackRequest("e2e-broken", noop))


def test_a_fleet_error_raised_by_the_program_keeps_its_type(engine: Engine) -> None:
    def bad_input() -> None:
        raise InputError('settings.region: "eu-9" is not a region')

    with pytest.raises(InputError, match="eu-9"):
        engine.up(StackRequest("e2e-input", bad_input))
    engine.destroy(StackRequest("e2e-input", noop))


def test_a_preview_of_a_new_stack_leaves_no_stack_behind(engine: Engine) -> None:
    res = engine.up(StackRequest("e2e-preview", noop), preview=True)
    assert res.changes.get("create") == 1
    assert not engine.exists("e2e-preview")


def test_outputs_of_a_missing_stack(engine: Engine, pulumi_env: EngineSettings) -> None:
    with pytest.raises(StackNotFound, match='stack "e2e-nope" not found'):
        engine.outputs("e2e-nope")
    with pytest.raises(StackNotFound):
        stack_outputs("e2e-nope", engine=pulumi_env)


def test_outputs_and_secrets_round_trip(engine: Engine) -> None:
    def prog() -> None:
        pulumi.export("plain", "p")
        pulumi.export("token", pulumi.Output.secret("t0k"))

    engine.up(StackRequest("e2e-outputs", prog))
    try:
        outs = engine.outputs("e2e-outputs")
        assert (outs["plain"].value, outs["plain"].secret) == ("p", False)
        assert (outs["token"].value, outs["token"].secret) == ("t0k", True)
        state = (engine.settings.file_backend_dir or Path()) / ".pulumi" / "stacks" / "fleet" / "e2e-outputs.json"
        assert "t0k" not in state.read_text()  # encrypted in the state
    finally:
        engine.destroy(StackRequest("e2e-outputs", noop))
