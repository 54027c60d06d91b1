"""The unit tier runs no toolchain binary: it passes on a machine with none built and none on PATH.

Every unit test gets an empty ``FLEET_TOOLCHAIN_DIR`` (so the toolchain's binaries and Flux manifests
are not found there), and an audit hook refuses to start any toolchain binary (kustomize, kubectl,
pulumi, kwokctl, ...) found outside the test's own tmp dirs, wherever it is on PATH. A test that needs
one belongs in tests/integration. Fakes that a test writes into its tmp dir (scripts named kubectl,
say) may run. git is no toolchain binary: unit tests use real repos in tmp dirs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fleet import toolchain

# What fleet runs besides git: the toolchain's binaries, and the kind provider's.
TOOLCHAIN_BINARIES = frozenset(t.name for t in toolchain.TOOLS if t.name != "git") | {"kind", "docker"}


class ToolchainBinaryInUnitTest(RuntimeError):
    pass


class _Guard:
    """Active only while a unit test runs (an audit hook cannot be removed once added)."""

    def __init__(self) -> None:
        self.allowed: Path | None = None  # fakes under this dir may run
        self.refused: list[str] = []
        self._busy = False

    def _program(self, name: str, env: Mapping[Any, Any] | None) -> Path | None:
        if os.path.basename(name) not in TOOLCHAIN_BINARIES:
            return None
        if os.path.dirname(name):
            path = Path(name)
        else:
            found = shutil.which(name, path=_env_path(env))
            if found is None:
                return None  # not installed: it fails as a missing binary, and nothing runs
            path = Path(found)
        resolved = path.resolve()
        if self.allowed is not None and resolved.is_relative_to(self.allowed):
            return None  # a fake the test wrote
        return path if path.exists() else None

    def check(self, executable: Any, argv: Any, env: Mapping[Any, Any] | None) -> None:
        if self.allowed is None or self._busy:
            return
        self._busy = True
        try:
            names = [os.fsdecode(executable)] if executable is not None else []
            args = [os.fsdecode(a) for a in (argv or ())] if not isinstance(argv, (str, bytes)) else [os.fsdecode(argv)]
            if args[:1] and os.path.basename(args[0]) in ("sh", "bash") and "-c" in args:
                script = args[args.index("-c") + 1] if args.index("-c") + 1 < len(args) else ""
                try:
                    names += shlex.split(script)
                except ValueError:
                    names += script.split()
            elif args[:1]:
                names.append(args[0])
            for name in names:
                program = self._program(name, env)
                if program is not None:
                    msg = (f"unit test ran the toolchain binary {program}: the unit tier needs no binaries; "
                           "move the test to tests/integration (or give it a fake in its tmp dir)")
                    self.refused.append(msg)
                    raise ToolchainBinaryInUnitTest(msg)
        finally:
            self._busy = False

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.allowed is None:
            return
        if event == "subprocess.Popen":
            executable, argv, _cwd, env = args
            self.check(executable, argv, env)
        elif event in ("os.exec", "os.posix_spawn"):
            path, argv, env = args[:3]
            self.check(path, argv, env)
        elif event == "os.system":
            self.check(None, ["sh", "-c", os.fsdecode(args[0])], None)


def _env_path(env: Mapping[Any, Any] | None) -> str:
    if env is None:
        return os.environ.get("PATH", os.defpath)
    for key in ("PATH", b"PATH"):
        if key in env:
            return os.fsdecode(env[key])
    return os.defpath


GUARD = _Guard()
sys.addaudithook(GUARD.audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A refused start fails the test even when the code under test caught the error."""
    try:
        result = yield
    except BaseException:
        GUARD.refused.clear()  # failed already: reported once
        raise
    if GUARD.refused:
        msg = GUARD.refused[0]
        GUARD.refused.clear()
        pytest.fail(msg, pytrace=False)
    return result


@pytest.fixture(autouse=True)
def no_toolchain(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty toolchain dir, and no toolchain binary may start while the test runs."""
    empty = tmp_path_factory.mktemp("no-toolchain")
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(empty))
    monkeypatch.setenv("FLEET_TEST_TIER", "unit")  # tests.helpers.need_tool fails here
    GUARD.allowed, GUARD.refused = tmp_path_factory.getbasetemp().resolve(), []
    try:
        yield empty
    finally:
        refused, GUARD.allowed, GUARD.refused = GUARD.refused, None, []
    if refused:  # started by a fixture's set-up or tear-down
        pytest.fail(refused[0], pytrace=False)
