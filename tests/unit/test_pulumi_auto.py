"""The Automation API adapter's own logic, without the engine: settings from the environment, stale
lock detection on a file backend's lock files, what a failure message keeps."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from pulumi.automation import errors as auto_errors
from pulumi.automation._cmd import CommandResult

from fleet.adapters.pulumi_auto import LOCAL_PASSPHRASE, Engine, EngineSettings, default_settings
from fleet.adapters.pulumi_auto import engine as pa
from fleet.adapters.pulumi_auto import progress as pp
from fleet.errors import ConcurrentUpdate
from fleet.output import SilentReporter

PULUMI_ENV = (
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "PULUMI_SECRETS_PROVIDER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in PULUMI_ENV:
        monkeypatch.delenv(k, raising=False)


def test_default_is_a_file_backend_under_fleet_home_with_a_private_passphrase_made_on_first_need(
    fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = default_settings()
    assert s.backend_url == f"file://{fleet_home / 'pulumi'}"
    assert s.file_backend_dir == fleet_home / "pulumi"
    assert s.pulumi_home == fleet_home / "pulumi-home"
    assert s.secrets_provider is None
    secret = fleet_home / "secrets" / "pulumi-passphrase"
    assert s.passphrase is None and s.passphrase_home == fleet_home
    assert not fleet_home.exists() or not any(fleet_home.rglob("*"))  # resolving wrote nothing
    made = Engine(s).passphrase()  # the engine's first need makes it
    assert made == secret.read_text().strip() and made is not None and len(made) == 64  # random, per home
    assert made != LOCAL_PASSPHRASE
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.parent.stat().st_mode & 0o777 == 0o700
    assert Engine(default_settings()).passphrase() == made  # stable
    monkeypatch.setenv("FLEET_HOME", str(fleet_home.parent / "other-home"))
    other = default_settings()
    assert Engine(other).passphrase() != made  # another home, another passphrase
    assert Engine(s).passphrase() == made  # settings resolved before keep their home


@pytest.mark.parametrize("made_before", ["state", "stack-config"])
def test_a_home_with_stacks_made_with_the_old_passphrase_keeps_it(fleet_home: Path, made_before: str) -> None:
    if made_before == "state":
        stacks = fleet_home / "pulumi" / ".pulumi" / "stacks" / "fleet"
        stacks.mkdir(parents=True)
        (stacks / "eu-1.json").write_text("{}")
    else:
        work = fleet_home / "pulumi-work" / "abc" / "fleet" / "eu-1"
        work.mkdir(parents=True)
        (work / "Pulumi.eu-1.yaml").write_text("encryptionsalt: v1:abc:v1:def:ghi\n")
    assert Engine(default_settings()).passphrase() == LOCAL_PASSPHRASE
    assert (fleet_home / "secrets" / "pulumi-passphrase").read_text().strip() == LOCAL_PASSPHRASE  # recorded


def test_a_team_backend_and_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state/fleet")
    s = default_settings()
    assert s.backend_url == "s3://team-state/fleet" and not s.is_file_backend
    assert s.passphrase is None and s.passphrase_home is None  # not the local one on a shared backend
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "team-secret")
    assert default_settings().passphrase == "team-secret"
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_SECRETS_PROVIDER", "awskms://alias/fleet")
    s = default_settings()
    assert s.secrets_provider == "awskms://alias/fleet" and s.passphrase is None and s.passphrase_home is None
    monkeypatch.delenv("PULUMI_SECRETS_PROVIDER")
    monkeypatch.delenv("PULUMI_BACKEND_URL")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", "/run/secrets/pulumi")
    s = default_settings()  # a file backend whose passphrase is in a file of the user's: handed to the engine
    assert s.passphrase is None and s.passphrase_home is None
    assert s.env["PULUMI_CONFIG_PASSPHRASE_FILE"] == "/run/secrets/pulumi"


def test_engine_environment_puts_this_python_first_and_turns_off_downloads(tmp_path: Path) -> None:
    import sys

    s = EngineSettings(backend_url=f"file://{tmp_path}", pulumi_home=tmp_path / "h", work_root=tmp_path / "w")
    env = Engine(s)._env()
    path = env["PATH"].split(os.pathsep)
    assert path[0] == str(Path(sys.executable).parent)  # the python3 that runs dynamic providers
    assert path[1].endswith("/bin")  # then the toolchain
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == LOCAL_PASSPHRASE


def _lock(root: Path, stack: str, pid: int, host: str) -> Path:
    d = root / ".pulumi" / "locks" / "organization" / "fleet" / stack
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{pid}.json"
    f.write_text(
        json.dumps({"pid": pid, "username": "u", "hostname": host, "timestamp": "2026-01-01T00:00:00Z"})
    )
    (d / f"{pid}.json.attrs").write_text("{}")
    return f


def test_only_locks_of_dead_processes_of_this_host_are_stale(tmp_path: Path) -> None:
    s = EngineSettings(backend_url=f"file://{tmp_path}", pulumi_home=tmp_path / "h", work_root=tmp_path / "w")
    engine = Engine(s)
    dead = _lock(tmp_path, "a", 2**22 + 4242, socket.gethostname())
    alive = _lock(tmp_path, "a", os.getpid(), socket.gethostname())
    elsewhere = _lock(tmp_path, "a", 2**22 + 4243, "another-host")
    assert engine.locks("a") == sorted([dead, alive, elsewhere])
    assert engine.unlock("a") == [dead]
    assert not dead.exists() and not dead.with_name(dead.name + ".attrs").exists()
    assert alive.exists() and elsewhere.exists()
    assert "pulumi pid" in engine._holders("a") and "another-host" in engine._holders("a")
    assert sorted(engine.unlock("a", force=True)) == sorted([alive, elsewhere])
    assert engine.locks("a") == []


def test_no_locks_are_read_on_other_backends(tmp_path: Path) -> None:
    s = EngineSettings(backend_url="https://api.pulumi.com", pulumi_home=tmp_path, work_root=tmp_path)
    assert Engine(s).locks("a") == [] and Engine(s).unlock("a", force=True) == []


def test_a_failure_keeps_the_error_diagnostics_not_the_log() -> None:
    progress = pp.Progress(SilentReporter(), preview=False)
    progress.errors.append(
        'Exception calling application: applying 3 objects failed: error: no matches for kind "Bogus"\n'
        'Traceback (most recent call last):\n  File "x.py", line 1\n'
    )
    progress.errors.append("update failed")
    err = auto_errors.CommandError(CommandResult("lots of\nprogress output\n", "stderr noise\n", 255))
    msg = pp.useful(progress, err)
    assert (
        msg == 'Exception calling application: applying 3 objects failed: error: no matches for kind "Bogus"'
    )


def test_without_diagnostics_the_error_lines_of_the_output_are_kept() -> None:
    progress = pp.Progress(SilentReporter(), preview=False)
    out = "Updating (s1):\n  pulumi:pulumi:Stack s1 running\nerror: failed to load plugin foo\n"
    err = auto_errors.CommandError(CommandResult(out, "", 255))
    assert pp.useful(progress, err) == "error: failed to load plugin foo"


def test_transient_failures_are_told_from_the_others() -> None:
    assert pa._transient_text("pulumi up failed: read tcp: connection reset by peer")
    assert pa._transient_text("the server is currently unable to handle the request")
    assert not pa._transient_text('no matches for kind "Bogus"')
    assert not ConcurrentUpdate("locked").transient


def test_a_metadata_file_read_while_another_update_wrote_it_is_read_again_other_failures_are_not() -> None:
    torn = auto_errors.CommandError(CommandResult("", "error: EOF\n", 255))
    assert pa._torn_read(torn)  # `pulumi stack ls` read an .attrs file another update was writing: asked again
    assert not pa._torn_read(auto_errors.CommandError(CommandResult("", "error: failed to load plugin foo\n", 255)))
    assert not pa._torn_read(RuntimeError("error: EOF"))  # not the CLI's failure


def test_resources_are_named_by_type_and_name() -> None:
    urn = "urn:pulumi:c1::fleet::fleet:operator:Flux$pulumi-python:dynamic/fleet:Manifests::flux-sync"
    assert pp.describe(urn) == 'Manifests "flux-sync"'


def test_repair_removes_only_the_unreadable_metadata_files_of_the_project(tmp_path: Path) -> None:
    from fleet.adapters.pulumi_auto import locks

    stacks = tmp_path / ".pulumi" / "stacks" / "fleet"
    stacks.mkdir(parents=True)
    good = stacks / "a.json.attrs"
    good.write_text('{"user.content-type": "application/json"}')
    empty = stacks / "b.json.attrs"
    empty.write_bytes(b"")
    torn = stacks / "c.json.bak.attrs"
    torn.write_text('{"user.md5": "ab')
    other = tmp_path / ".pulumi" / "stacks" / "other"
    other.mkdir()
    (other / "d.json.attrs").write_bytes(b"")  # another project: not ours to touch
    lock_dir = tmp_path / ".pulumi" / "locks" / "organization" / "fleet" / "b"
    lock_dir.mkdir(parents=True)
    (lock_dir / "x.json.attrs").write_bytes(b"")
    state = stacks / "b.json"
    state.write_text("{}")
    removed = locks.repair(tmp_path, "fleet")
    assert sorted(p.name for p in removed) == ["b.json.attrs", "c.json.bak.attrs", "x.json.attrs"]
    assert good.exists() and state.exists() and (other / "d.json.attrs").exists()
    assert locks.repair(tmp_path, "fleet") == [] and locks.repair(None, "fleet") == []


def test_each_finished_resource_is_told_by_type_and_a_listener_that_raises_does_not_fail_the_update() -> None:
    from pulumi.automation.events import EngineEvent, OpType, ResOutputsEvent, StepEventMetadata

    def finished(type_: str, op: OpType = OpType.CREATE) -> EngineEvent:
        md = StepEventMetadata(op=op, urn=f"urn:pulumi:s::fleet::{type_}::x", type=type_, provider="")
        return EngineEvent(sequence=1, timestamp=0, res_outputs_event=ResOutputsEvent(metadata=md))

    seen: list[str] = []
    progress = pp.Progress(SilentReporter(), preview=False, on_resource=seen.append)
    progress(finished("kubernetes:yaml/v2:ConfigGroup"))
    progress(finished("fleet:local:Cluster", OpType.SAME))
    assert seen == ["kubernetes:yaml/v2:ConfigGroup", "fleet:local:Cluster"]

    def boom(_: str) -> None:
        raise RuntimeError("listener failed")

    pp.Progress(SilentReporter(), preview=False, on_resource=boom)(finished("x:y:Z"))  # no exception
    pp.Progress(SilentReporter(), preview=True, on_resource=boom)(finished("x:y:Z"))  # previews make nothing
