"""The one place fleet runs external programs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import FleetError, ToolMissing

__all__ = [
    "Child",
    "Completed",
    "Piped",
    "Timeout",
    "interrupt_on_sigterm",
    "monotonic",
    "pause",
    "pipe",
    "run",
    "run_bytes",
    "running_from",
    "spawn",
    "stat",
    "stop_all",
    "stop_group",
]


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    if extra:
        env.update(extra)
    return env


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = False,
    error: type[FleetError] = FleetError,
) -> Completed:
    """Run a program to completion and capture its output.

    A missing binary raises :class:`ToolMissing`; a timeout or (with ``check``) a non-zero exit
    raises ``error`` with the program's last lines of stderr.
    """
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(
            argv,
            env=_env(env),
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:
        raise ToolMissing(f"program {argv[0]!r} not found", hint="run `make toolchain`, then `fleet doctor`") from e
    except subprocess.TimeoutExpired as e:
        raise error(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from e
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and not done.ok:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        raise error(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed (exit {proc.returncode}): " + " | ".join(tail))
    return done


Child = subprocess.Popen  # a started program: ``.pid``, ``.poll()``


def spawn(
    args: Sequence[str | Path], *, env: Mapping[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running program in its own process group, output to ``log`` (or discarded)."""
    argv = [str(a) for a in args]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(argv, env=_env(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError as e:
        raise ToolMissing(f"program {argv[0]!r} not found", hint="run `make toolchain`") from e


Timeout = subprocess.TimeoutExpired  # what ``Piped.wait(timeout=...)`` raises
Piped = subprocess.Popen  # a started program whose stdin and stdout are pipes: ``.stdin``, ``.stdout``


def pipe(args: Sequence[str | Path], *, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a program that serves requests on its stdin and answers on its stdout (binary pipes), in its
    own process group, with exactly ``env`` as its environment (nothing inherited) and stderr discarded."""
    argv = [str(a) for a in args]
    try:
        return subprocess.Popen(argv, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
    except FileNotFoundError as e:
        raise ToolMissing(f"program {argv[0]!r} not found", hint="run `make toolchain`") from e


def run_bytes(
    args: Sequence[str | Path], *, env: Mapping[str, str] | None = None, input: bytes = b"",
    timeout: float | None = None,
) -> tuple[int, bytes]:
    """Run a program on binary input and return its exit code and binary output (CGI programs)."""
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(argv, env=dict(env) if env is not None else None, input=input,
                              capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise ToolMissing(f"program {argv[0]!r} not found") from e
    except subprocess.TimeoutExpired as e:
        raise FleetError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from e
    return proc.returncode, proc.stdout


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on: the state first, ``Z`` for a
    zombie; the start time at index 19), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split() if ")" in text else None


def running_from(directory: Path) -> list[int]:
    """The running processes of this user started from a program under ``directory`` (their ``argv[0]``):
    for instance a local cluster's components that a killed ``kwokctl create`` started but never recorded."""
    prefix = str(directory.absolute()).rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat(int(entry.name)) if argv0.startswith(prefix) else None
        if fields and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def stop_all(directory: Path, grace: float = 10) -> list[int]:
    """Stop every process :func:`running_from` ``directory`` finds: SIGTERM, then SIGKILL after ``grace``
    seconds, waiting until none is left (the explicit state). Returns the pids it signalled."""
    pids = running_from(directory)
    if not pids:
        return []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline, sent_kill = time.monotonic() + grace, False
    while left := running_from(directory):
        if time.monotonic() > deadline:
            if sent_kill:
                raise FleetError(f"processes {left} started from {directory} did not exit after SIGKILL")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline, sent_kill = time.monotonic() + grace, True
        time.sleep(0.05)  # waiting for the processes to be gone
    return pids


def stop_group(pid: int, alive: Callable[[], bool], grace: float = 10) -> None:
    """Stop process group ``pid`` (a process :func:`spawn` started in its own session): SIGTERM, then SIGKILL
    after ``grace`` seconds, until ``alive()`` says it is gone (the explicit state). The caller knows the
    process for sure (its pid and start time), so nothing else is ever signalled."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while alive():
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
        time.sleep(0.05)  # waiting for the process to be gone: the explicit state


def monotonic() -> float:
    """The clock the waits of processes fleet starts are measured on."""
    return time.monotonic()


def pause(seconds: float) -> None:
    """Wait between two looks at a process fleet started (a readiness endpoint polled): the only sleep of
    the local-cluster code, here beside the processes it waits for."""
    time.sleep(seconds)


def interrupt_on_sigterm() -> None:
    """SIGTERM (a CronJob's or CI's stop) is taken as Ctrl-C: KeyboardInterrupt in the main thread, so the
    same clean-up runs (a drill removes its scratch cluster before it exits). Only from the main thread."""
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot: /proc/PID/stat field 22), "" when gone."""
    fields = stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def alive(pid: int, start: str) -> bool:
    """The process recorded as (pid, start time) runs: not gone, not a zombie, and not another process
    that got the same pid later (its start time differs). Our own exited child is reaped on the way."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    fields = stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return not start or (len(fields) > 19 and fields[19] == start)
