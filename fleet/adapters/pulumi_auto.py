"""The Pulumi Automation API adapter: the only module that imports ``pulumi.automation``.

One stack per cluster (stack name = cluster name) of the project ``fleet``, run with an INLINE
program that is passed in (fleet's core never imports ``clusters/``): the Python SDK serves the
language runtime in-process and hands the engine its address (``--client``), so no
``pulumi-language-python`` binary is needed. Dynamic providers run in ``pulumi-resource-pulumi-python``
(found on PATH), which starts ``python3 -m pulumi.dynamic``: the PATH given to the engine starts with
this interpreter's bin directory, then the toolchain's.

Defaults, all overridable from the environment (read here, nowhere else):

- backend ``file://$FLEET_HOME/pulumi`` (no account), or ``PULUMI_BACKEND_URL``;
- secrets: ``PULUMI_CONFIG_PASSPHRASE`` / ``PULUMI_CONFIG_PASSPHRASE_FILE``, or a secrets provider
  in ``PULUMI_SECRETS_PROVIDER`` (read by fleet; e.g. ``awskms://...``); with neither, for the file
  backend, a random passphrase per FLEET_HOME kept 0600 in ``secrets/pulumi-passphrase``
  (:func:`local_passphrase`; a home with stacks made before it keeps :data:`LOCAL_PASSPHRASE`);
- ``PULUMI_HOME`` private under ``$FLEET_HOME/pulumi-home``; update checks and plugin downloads off.

Errors become fleet's: :class:`StackNotFound`, :class:`ConcurrentUpdate` (another update holds the
lock), :class:`ProgramError` (with the error diagnostics, not the whole log); a :class:`FleetError`
raised by the program itself comes out as it was raised. Concurrent updates and a provider's transient
API failures are retried here (tenacity), each within its own bound (``lock_attempts``,
``transient_attempts``). This is the one place a stack lock is waited for: a :class:`ConcurrentUpdate`
that outlasts its bound comes out not transient, so no step runner waits for it again; a transient
engine failure (:data:`_TRANSIENT`) that outlasts its bound comes out with ``transient`` set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from pulumi.automation.events import EngineEvent, OpType
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from fleet import toolchain
from fleet.errors import (
    ConcurrentUpdate,
    FleetError,
    ProgramError,
    PulumiError,
    StackNotFound,
    ToolMissing,
    Unwritable,
)
from fleet.output import Reporter, SilentReporter
from fleet.paths import (
    fleet_home,
    private_dir,
    private_secret,
    scratch_dir,
    toolchain_dir,
    write_private,
    writes_allowed,
)

__all__ = [
    "LOCAL_PASSPHRASE",
    "PASSPHRASE_SECRET",
    "Engine",
    "EngineSettings",
    "OpResult",
    "StackOutput",
    "StackRequest",
    "default_settings",
    "local_passphrase",
]

LOCAL_PASSPHRASE = "fleet-local-state"  # the old fixed one: homes with stacks made before keep it
PROJECT = "fleet"
Operation = Literal["up", "preview", "refresh", "destroy"]
ProgramFn = Callable[[], None]

# Text of a failure a retry may cure (a provider's API hiccup), lowercased.
_TRANSIENT = (
    "connection reset by peer",
    "i/o timeout",
    "tls handshake timeout",
    "too many requests",
    "429 too many",
    "503 service unavailable",
    "502 bad gateway",
    "the server is currently unable to handle the request",
    "etcdserver: request timed out",
    "etcdserver: leader changed",
    "requestlimitexceeded",
    "throttling",
)
_COLOR = re.compile(r"<\{%[^%]*%\}>")


@dataclass(frozen=True)
class EngineSettings:
    """Where state lives and how the engine runs; :func:`default_settings` builds it from the env."""

    backend_url: str
    pulumi_home: Path
    work_root: Path  # per-stack work dirs (Pulumi.yaml, Pulumi.<stack>.yaml) under here
    passphrase: str | None = LOCAL_PASSPHRASE
    secrets_provider: str | None = None
    pulumi_bin: Path | None = None  # default: toolchain.find("pulumi")
    extra_path: tuple[Path, ...] = ()  # put first on the engine's PATH (default: this python's bin)
    env: Mapping[str, str] = field(default_factory=dict)
    lock_attempts: int = 4
    transient_attempts: int = 3
    retry_wait_s: float = 3.0

    @property
    def is_file_backend(self) -> bool:
        return self.backend_url.startswith("file://")

    @property
    def file_backend_dir(self) -> Path | None:
        return Path(urlparse(self.backend_url).path) if self.is_file_backend else None

    def with_retries(self, *, lock_attempts: int, transient_attempts: int = 1, wait_s: float = 0.1) -> EngineSettings:
        return replace(self, lock_attempts=lock_attempts, transient_attempts=transient_attempts, retry_wait_s=wait_s)


def default_settings() -> EngineSettings:
    """The engine settings from the environment (see the module docstring)."""
    home = fleet_home()
    backend = os.environ.get("PULUMI_BACKEND_URL") or f"file://{home / 'pulumi'}"
    secrets_provider = os.environ.get("PULUMI_SECRETS_PROVIDER") or None
    passphrase: str | None = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    file_backend = backend.startswith("file://") and not secrets_provider
    if passphrase is None and not os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE") and file_backend:
        passphrase = local_passphrase(home, Path(urlparse(backend).path))
    return EngineSettings(
        backend_url=backend,
        pulumi_home=home / "pulumi-home",
        work_root=home / "pulumi-work",
        passphrase=passphrase,
        secrets_provider=secrets_provider,
    )


PASSPHRASE_SECRET = "pulumi-passphrase"


def _private_dir(d: Path) -> Path:
    """A directory 0700 (state, work dirs and PULUMI_HOME hold secrets); Unwritable when it cannot be."""
    try:
        return private_dir(d)
    except OSError as e:
        raise Unwritable.of(d, e) from e


def local_passphrase(home: Path, backend_dir: Path) -> str:
    """The default file backend's passphrase: random per FLEET_HOME, kept private (0600) in
    ``$FLEET_HOME/secrets/pulumi-passphrase``. A home whose stacks were made with the old fixed passphrase
    (:data:`LOCAL_PASSPHRASE`) before that file existed keeps that one, recorded in the same file, so its
    stacks' encryption salts still match (change it with ``pulumi stack change-secrets-provider``)."""
    secret = home / "secrets" / PASSPHRASE_SECRET
    if not writes_allowed() and not secret.exists():  # a dry run makes no secret: what a run would use
        return LOCAL_PASSPHRASE if _has_stacks(backend_dir, home / "pulumi-work") else secrets.token_hex(32)
    try:
        if not secret.exists() and _has_stacks(backend_dir, home / "pulumi-work"):
            write_private(secret, LOCAL_PASSPHRASE + "\n")
        return private_secret(PASSPHRASE_SECRET)
    except OSError as e:
        raise Unwritable.of(secret, e, "the local Pulumi backend's passphrase") from e


def _has_stacks(backend_dir: Path, work_root: Path) -> bool:
    """Whether stacks exist already (state in the backend, or a stack config with an encryption salt)."""
    stacks = backend_dir / ".pulumi" / "stacks"
    if stacks.is_dir() and any(p.is_file() for p in stacks.rglob("*")):
        return True
    if work_root.is_dir():
        for cfg in work_root.rglob("Pulumi.*.yaml"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if "encryptionsalt:" in cfg.read_text(encoding="utf-8"):
                    return True
    return False


@dataclass(frozen=True)
class StackRequest:
    """One stack to operate on, with its program and the config to set before running."""

    stack: str
    program: ProgramFn
    config: Mapping[str, str] = field(default_factory=dict)  # keys without the "fleet:" namespace
    secrets: Mapping[str, str] = field(default_factory=dict)
    project: str = PROJECT


@dataclass(frozen=True)
class StackOutput:
    value: Any
    secret: bool


@dataclass(frozen=True)
class OpResult:
    stack: str
    operation: Operation
    changes: dict[str, int]  # op -> count ("same", "create", "update", "delete", "replace", ...)
    outputs: dict[str, StackOutput]
    duration_s: float


_Ran = tuple[dict[str, int], Mapping[str, Any]]  # what one operation gives back: changes, outputs

# ---- progress ------------------------------------------------------------------------------------

_VERB = {  # op -> (doing, done, would)
    OpType.CREATE: ("creating", "created", "would create"),
    OpType.UPDATE: ("updating", "updated", "would update"),
    OpType.DELETE: ("deleting", "deleted", "would delete"),
    OpType.REPLACE: ("replacing", "replaced", "would replace"),
    OpType.CREATE_REPLACEMENT: ("creating replacement", "created replacement", "would create replacement"),
    OpType.DELETE_REPLACED: ("deleting replaced", "deleted replaced", "would delete replaced"),
    OpType.REFRESH: ("refreshing", "refreshed", "would refresh"),
    OpType.READ: ("reading", "read", "would read"),
    OpType.IMPORT: ("importing", "imported", "would import"),
}


def _describe(urn: str) -> str:
    """``Manifests "flux-install"`` from a URN (type's last segment, then the name)."""
    parts = urn.split("::")
    name = parts[-1] if parts else urn
    rtype = parts[2].split("$")[-1] if len(parts) > 3 else ""
    short = rtype.rsplit(":", 1)[-1] or rtype
    return f'{short} "{name}"'


def _quiet(op: OpType, rtype: str, provider: str) -> bool:
    """Operations not worth a line: unchanged resources, the stack, provider instances, and
    components (no provider: their children have the lines)."""
    skip_type = rtype == "pulumi:pulumi:Stack" or rtype.startswith("pulumi:providers:") or not provider
    return op == OpType.SAME or op not in _VERB or skip_type


# The engine warns each time it uses a plugin found on PATH; the toolchain's are there by design.
_AMBIENT = re.compile(r"^using pulumi-resource-[\w-]+ from \$PATH at ")


def _clean(msg: str) -> str:
    return _COLOR.sub("", msg).strip()


class _Progress:
    """on_event callback: one reporter line per resource operation; keeps the error diagnostics."""

    def __init__(self, reporter: Reporter, preview: bool) -> None:
        self.reporter = reporter
        self.preview = preview
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, ev: EngineEvent) -> None:
        with contextlib.suppress(Exception):  # a display problem must never fail the update
            self._handle(ev)

    def _handle(self, ev: EngineEvent) -> None:
        r = self.reporter
        if ev.resource_pre_event is not None:
            md = ev.resource_pre_event.metadata
            if not _quiet(md.op, md.type, md.provider):
                r.step(f"{_VERB[md.op][2 if self.preview else 0]} {_describe(md.urn)}")
        elif ev.res_outputs_event is not None and not self.preview:
            md = ev.res_outputs_event.metadata
            if not _quiet(md.op, md.type, md.provider):
                r.ok(f"{_VERB[md.op][1]} {_describe(md.urn)}")
        elif ev.res_op_failed_event is not None:
            md = ev.res_op_failed_event.metadata
            r.fail(f"{md.op.value if isinstance(md.op, OpType) else md.op} failed: {_describe(md.urn)}")
        elif ev.diagnostic_event is not None:
            d = ev.diagnostic_event
            msg = _clean(d.message)
            if not msg:
                return
            if d.severity == "error":
                with self._lock:
                    self.errors.append(msg)
            elif d.severity == "warning" and not d.ephemeral and not _AMBIENT.match(msg):
                r.warn(msg.splitlines()[0][:300])


def _useful(progress: _Progress, err: auto_errors.CommandError) -> str:
    """The part of a failure worth a user's eyes: error diagnostics, else the 'error:' lines."""
    lines: list[str] = []
    for msg in progress.errors:
        for ln in msg.splitlines():
            ln = ln.strip()
            if not ln or ln.startswith(("Traceback", 'File "')) or ln == "update failed":
                continue
            if ln not in lines:
                lines.append(ln)
    if not lines:
        text = _command_text(err)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("error:")] or [
            ln.strip() for ln in text.strip().splitlines()[-6:]
        ]
    msg = " | ".join(lines[:12])
    return msg[:2000]


def _command_text(err: BaseException) -> str:
    return _clean(str(err))  # the SDK's CommandError carries "code: .. stdout: .. stderr: .."


# ---- the engine ----------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _pulumi_command(root: str) -> auto.PulumiCommand:
    try:
        return auto.PulumiCommand(root=root)
    except FileNotFoundError as e:
        raise ToolMissing(f"pulumi not found in {root}/bin", hint="run `make toolchain`, then `fleet doctor`") from e
    except auto_errors.InvalidVersionError as e:
        raise ToolMissing(f"the pulumi CLI in {root}/bin is not usable: {e}") from e
    except Exception as e:  # `pulumi version` failing: a broken binary
        raise ToolMissing(f"the pulumi CLI in {root}/bin does not run: {e}") from e


class Engine:
    """Runs stack operations through the Automation API; progress goes to ``reporter``."""

    def __init__(self, settings: EngineSettings | None = None, reporter: Reporter | None = None) -> None:
        self.settings = settings or default_settings()
        self.reporter: Reporter = reporter or SilentReporter()

    # -- workspace --

    def _env(self) -> dict[str, str]:
        s = self.settings
        path = [
            *(str(p) for p in s.extra_path or (Path(sys.executable).parent,)),
            str(toolchain_dir() / "bin"),
        ]
        env = {
            "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
            "PULUMI_BACKEND_URL": s.backend_url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }
        if s.passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = s.passphrase
        env.update(s.env)
        return env

    def _roots(self) -> tuple[Path, Path]:
        """The work root and PULUMI_HOME. Pulumi writes there even to read (the project's settings, the
        selected stack, logs), so a dry run (:func:`fleet.paths.no_writes`) gets them in its scratch
        directory, outside FLEET_HOME and gone when it ends."""
        if writes_allowed():
            return self.settings.work_root, self.settings.pulumi_home
        scratch = scratch_dir()
        return scratch / "pulumi-work", scratch / "pulumi-home"

    def _work_dir(self, project: str, stack: str) -> Path:
        key = hashlib.sha256(self.settings.backend_url.encode()).hexdigest()[:10]
        d = self._roots()[0] / key / project / stack
        if not writes_allowed():  # a dry run reads the stack's settings (its secrets' salt) from a copy
            _private_dir(d)
            real = self.settings.work_root / key / project / stack
            for f in real.glob(f"Pulumi.{stack}.*") if real.is_dir() else ():
                write_private(d / f.name, f.read_bytes())
            return d
        return _private_dir(d)

    def _options(self, project: str, stack: str, program: ProgramFn | None) -> auto.LocalWorkspaceOptions:
        s = self.settings
        pulumi_home = _private_dir(self._roots()[1])
        if (d := s.file_backend_dir) is not None and writes_allowed():
            _private_dir(d)
        elif d is not None and not d.is_dir():  # a dry run before anything was provisioned: no stack at all
            raise StackNotFound(f"no stack in {self._where()}: nothing was provisioned yet",
                                hint=f"run `fleet provision {stack}` first" if stack != "_" else None)
        pulumi_bin = s.pulumi_bin or toolchain.find("pulumi")
        return auto.LocalWorkspaceOptions(
            work_dir=str(self._work_dir(project, stack)),
            pulumi_home=str(pulumi_home),
            program=program,
            env_vars=self._env(),
            secrets_provider=s.secrets_provider,
            project_settings=auto.ProjectSettings(
                name=project, runtime="python", backend=auto.ProjectBackend(url=s.backend_url)
            ),
            pulumi_command=_pulumi_command(str(pulumi_bin.parent.parent)),
        )

    def _stack(self, req: StackRequest, *, create: bool) -> auto.Stack:
        opts = self._options(req.project, req.stack, req.program)
        try:
            if create:
                return auto.create_or_select_stack(
                    stack_name=req.stack, project_name=req.project, program=req.program, opts=opts
                )
            return auto.select_stack(stack_name=req.stack, project_name=req.project, program=req.program, opts=opts)
        except auto_errors.StackNotFoundError as e:
            raise StackNotFound(
                f'stack "{req.stack}" not found in {self._where()}',
                hint=f"run `fleet provision {req.stack}` first",
            ) from e
        except auto_errors.CommandError as e:
            raise self._error(e, None, req.stack, "select") from e

    def _where(self) -> str:
        return self.settings.backend_url

    def _set_config(self, stack: auto.Stack, req: StackRequest) -> None:
        values = {f"{req.project}:{k}": auto.ConfigValue(v) for k, v in req.config.items()}
        values.update({f"{req.project}:{k}": auto.ConfigValue(v, secret=True) for k, v in req.secrets.items()})
        if values:
            try:
                stack.set_all_config(values)
            except auto_errors.CommandError as e:
                raise self._error(e, None, req.stack, "config") from e

    # -- operations --

    def up(
        self,
        req: StackRequest,
        *,
        preview: bool = False,
        refresh: bool = False,
        targets: Sequence[str] | None = None,
    ) -> OpResult:
        """``pulumi up`` (or ``preview``) after setting the stack's config; creates the stack if needed."""
        op: Operation = "preview" if preview else "up"
        target = [t.replace("{stack}", req.stack).replace("{project}", req.project) for t in targets or ()] or None

        def run(stack: auto.Stack, progress: _Progress) -> _Ran:
            if preview:
                pres = stack.preview(on_event=progress, refresh=refresh or None, color="never", target=target)
                return _changes(pres.change_summary), {}
            ures = stack.up(on_event=progress, refresh=refresh or None, color="never", target=target)
            return _changes(ures.summary.resource_changes), ures.outputs

        return self._run(req, op, run, create=True)

    def refresh(self, req: StackRequest) -> OpResult:
        def run(stack: auto.Stack, progress: _Progress) -> _Ran:
            res = stack.refresh(on_event=progress, color="never")
            return _changes(res.summary.resource_changes), stack.outputs()

        return self._run(req, "refresh", run, create=False)

    def drift(self, req: StackRequest) -> tuple[OpResult, list[tuple[str, str, tuple[str, ...]]]]:
        """What a refresh would change in the state (``pulumi refresh --preview-only``): the live
        resources that differ from what Pulumi last applied. Returns the summary and, per drifted
        resource, (operation, ``Type "name"``, the properties that differ)."""
        drifted: list[tuple[str, str, tuple[str, ...]]] = []

        def run(stack: auto.Stack, progress: _Progress) -> _Ran:
            def on_event(ev: EngineEvent) -> None:
                progress(ev)
                pre = ev.resource_pre_event
                if pre is None or pre.metadata.type == "pulumi:pulumi:Stack":
                    return
                md = pre.metadata
                op = md.op.value if isinstance(md.op, OpType) else str(md.op)
                if op in ("same", "read", "refresh") and not md.diffs:
                    return
                drifted.append((op, _describe(md.urn), tuple(md.diffs or ())))

            res = stack.preview_refresh(on_event=on_event, color="never")
            return _changes(res.change_summary), {}

        return self._run(req, "refresh", run, create=False), drifted

    def destroy(self, req: StackRequest, *, remove: bool = True) -> OpResult:
        """Destroy every resource of the stack, then (``remove``) the stack and its work dir."""

        def run(stack: auto.Stack, progress: _Progress) -> _Ran:
            res = stack.destroy(on_event=progress, color="never")
            return _changes(res.summary.resource_changes), {}

        result = self._run(req, "destroy", run, create=False)
        if remove:
            self.remove(req.stack, project=req.project)
        return result

    def remove(self, stack: str, *, project: str = PROJECT) -> None:
        """Remove an (empty) stack and its local settings."""
        ws = auto.LocalWorkspace(**vars(self._options(project, stack, None)))
        try:
            ws.remove_stack(stack)
        except auto_errors.StackNotFoundError:
            pass
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack rm") from e
        for f in Path(ws.work_dir).glob(f"Pulumi.{stack}.*"):
            f.unlink(missing_ok=True)

    def exists(self, stack: str, *, project: str = PROJECT) -> bool:
        try:
            ws = auto.LocalWorkspace(**vars(self._options(project, stack, None)))
        except StackNotFound:
            return False
        try:
            return any(s.name.rsplit("/", 1)[-1] == stack for s in ws.list_stacks())
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack ls") from e

    def resource_counts(self, *, project: str = PROJECT) -> dict[str, int]:
        """Every stack of the project and how many resources it has (one ``pulumi stack ls``): what
        ``fleet rollout`` asks to tell a cluster that exists from one to bring up."""
        try:
            ws = auto.LocalWorkspace(**vars(self._options(project, "_", None)))
        except StackNotFound:
            return {}
        try:
            return {s.name.rsplit("/", 1)[-1]: int(s.resource_count or 0) for s in ws.list_stacks()}
        except auto_errors.CommandError as e:
            raise self._error(e, None, "*", "stack ls") from e

    def outputs(self, stack: str, *, project: str = PROJECT) -> dict[str, StackOutput]:
        s = self._stack(StackRequest(stack, _no_program, project=project), create=False)
        try:
            return {k: StackOutput(v.value, v.secret) for k, v in s.outputs().items()}
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack output") from e

    def resource_types(self, stack: str, *, project: str = PROJECT) -> set[str]:
        """The types of the resources in the stack's state (empty when the stack does not exist)."""
        if not self.exists(stack, project=project):
            return set()
        s = self._stack(StackRequest(stack, _no_program, project=project), create=False)
        try:
            dep = s.export_stack()
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack export") from e
        return {str(r.get("type")) for r in (dep.deployment or {}).get("resources") or []}

    def forget(self, stack: str, types: Sequence[str], *, project: str = PROJECT) -> list[str]:
        """Drop every resource of the given types from the stack's state (what ``pulumi state delete``
        does), never touching what they made; references to them from the remaining resources go too.
        Returns the URNs dropped. A stack that does not exist has nothing to forget."""
        if not self.exists(stack, project=project):
            return []
        s = self._stack(StackRequest(stack, _no_program, project=project), create=False)
        try:
            dep = s.export_stack()
            resources = list((dep.deployment or {}).get("resources") or [])
            gone = {r["urn"] for r in resources if r.get("type") in types}
            if not gone:
                return []
            keep = []
            for r in resources:
                if r["urn"] in gone:
                    continue
                r = dict(r)
                if r.get("dependencies"):
                    r["dependencies"] = [u for u in r["dependencies"] if u not in gone]
                if r.get("propertyDependencies"):
                    r["propertyDependencies"] = {k: [u for u in v if u not in gone]
                                                 for k, v in r["propertyDependencies"].items()}
                keep.append(r)
            dep.deployment = {**(dep.deployment or {}), "resources": keep}
            s.import_stack(dep)
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack import") from e
        return sorted(gone)

    # -- the choke point: retries and error mapping --

    def _run(
        self,
        req: StackRequest,
        op: Operation,
        run: Callable[[auto.Stack, _Progress], _Ran],
        *,
        create: bool,
    ) -> OpResult:
        raised: list[FleetError] = []

        def program() -> None:
            try:
                req.program()
            except FleetError as e:  # keep our own error (and its exit code) for the caller
                raised.append(e)
                raise

        wrapped = replace(req, program=program)
        s = self.settings
        tries = {"lock": 0, "transient": 0}

        def retryable(e: BaseException) -> bool:
            kind = ("lock" if isinstance(e, ConcurrentUpdate)
                    else "transient" if isinstance(e, ProgramError) and e.transient else None)
            if kind is None:
                return False
            tries[kind] += 1
            return tries[kind] < (s.lock_attempts if kind == "lock" else s.transient_attempts)

        def before_sleep(rs: RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            why = "is locked by another update" if isinstance(exc, ConcurrentUpdate) else "hit a transient failure"
            wait = rs.next_action.sleep if rs.next_action else 0
            self.reporter.warn(f'stack "{req.stack}" {why}; trying again in {wait:.0f}s')

        started = time.monotonic()
        new_stack = create and op == "preview" and not self.exists(req.stack, project=req.project)
        for attempt in Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(s.lock_attempts + s.transient_attempts),
            wait=wait_exponential(multiplier=s.retry_wait_s, max=max(s.retry_wait_s * 8, 1)),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                raised.clear()
                # Every attempt: a holder still dying at the first one (SIGKILL is not instant) has
                # exited by the next, and its lock is stale then.
                for lock in self.unlock(req.stack, project=req.project):
                    self.reporter.warn(
                        f'removed a stale lock of stack "{req.stack}" ({lock.name}): its process has exited'
                    )
                stack = self._stack(wrapped, create=create)
                if op in ("up", "preview"):
                    self._set_config(stack, req)
                progress = _Progress(self.reporter, preview=op == "preview")
                try:
                    changes, outs = run(stack, progress)
                except auto_errors.CommandError as e:
                    if raised:
                        raise raised[0] from e
                    raise self._error(e, progress, req.stack, op) from e
                finally:
                    if new_stack:  # a preview leaves no stack behind
                        self.remove(req.stack, project=req.project)
        return OpResult(
            stack=req.stack,
            operation=op,
            changes=changes,
            outputs={k: StackOutput(v.value, v.secret) for k, v in outs.items()},
            duration_s=round(time.monotonic() - started, 3),
        )

    def _error(self, e: auto_errors.CommandError, progress: _Progress | None, stack: str, op: str) -> PulumiError:
        if isinstance(e, auto_errors.StackNotFoundError):
            return StackNotFound(
                f'stack "{stack}" not found in {self._where()}', hint=f"run `fleet provision {stack}` first"
            )
        if isinstance(e, auto_errors.ConcurrentUpdateError):
            how = (
                f"remove it with `fleet provision {stack} --force-unlock`"
                if self.settings.is_file_backend
                else f"cancel it with `pulumi cancel --stack {stack}`"
            )
            return ConcurrentUpdate(
                f'stack "{stack}" is locked by another update ({self._holders(stack)})',
                hint=f"wait for it to finish; if no update is running, the lock is stale: {how}",
            )
        detail = _useful(progress, e) if progress is not None else _useful(_Progress(SilentReporter(), False), e)
        return ProgramError(f'pulumi {op} of stack "{stack}" failed: {detail}',
                            transient=_transient_text(detail))

    # -- stale locks of the file backend --

    def _holders(self, stack: str) -> str:
        held = []
        for lock in self.locks(stack):
            try:
                d = json.loads(lock.read_text())
            except (OSError, ValueError):
                continue
            held.append(
                f"pulumi pid {d.get('pid')} of {d.get('username')}@{d.get('hostname')} "
                f"since {str(d.get('timestamp', ''))[:19]}"
            )
        return "; ".join(held) or "another process"

    def locks(self, stack: str, *, project: str = PROJECT) -> list[Path]:
        """The lock files the file backend holds for a stack (empty for other backends)."""
        root = self.settings.file_backend_dir
        if root is None:
            return []
        return sorted((root / ".pulumi" / "locks").glob(f"*/{project}/{stack}/*.json"))

    def unlock(self, stack: str, *, project: str = PROJECT, force: bool = False) -> list[Path]:
        """Remove the stack's stale locks: held by a process of this host that is no longer running
        (or every lock with ``force``). Returns the removed lock files."""
        removed = []
        for lock in self.locks(stack, project=project):
            if force or _stale(lock):
                lock.unlink(missing_ok=True)
                lock.with_name(lock.name + ".attrs").unlink(missing_ok=True)
                removed.append(lock)
        return removed


def _no_program() -> None:
    return None


def _changes(summary: Mapping[Any, Any] | None) -> dict[str, int]:
    return {str(getattr(k, "value", k)): int(v) for k, v in (summary or {}).items()}


def _transient_text(text: str) -> bool:
    """Whether an engine failure's text is one a retry may cure (:data:`_TRANSIENT`)."""
    low = text.lower()
    return any(t in low for t in _TRANSIENT)


def _stale(lock: Path) -> bool:
    """A lock written by a process of this host that has exited."""
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return False
    pid, host = data.get("pid"), data.get("hostname")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """An exited process nobody has reaped yet (its parent died with it: a crash)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]
