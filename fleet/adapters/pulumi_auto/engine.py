"""The Pulumi engine: stack operations through the Automation API, their retries and typed errors.

One stack per cluster (stack name = cluster name) of the project ``fleet``, run with an INLINE
program that is passed in (fleet's core never imports ``clusters/``): the Python SDK serves the
language runtime in-process and hands the engine its address (``--client``), so no
``pulumi-language-python`` binary is needed. Dynamic providers run in ``pulumi-resource-pulumi-python``
(found on PATH), which starts ``python3 -m pulumi.dynamic``: the PATH given to the engine starts with
this interpreter's bin directory, then the toolchain's. Where state lives and which secrets
provider is used: :mod:`fleet.adapters.pulumi_auto.settings`.

Errors become fleet's: :class:`StackNotFound`, :class:`ConcurrentUpdate` (another update holds the
lock), :class:`ProgramError` (with the error diagnostics, not the whole log); a :class:`FleetError`
raised by the program itself comes out as it was raised. Concurrent updates and a provider's transient
API failures are retried here (tenacity), each within its own bound (``lock_attempts``,
``transient_attempts``). This is the one place a stack lock is waited for: a :class:`ConcurrentUpdate`
that outlasts its bound comes out not transient, so no step runner waits for it again; a transient
engine failure (:data:`_TRANSIENT`) that outlasts its bound comes out with ``transient`` set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any, Literal

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors
from pulumi.automation.events import EngineEvent, OpType
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from fleet import toolchain
from fleet.adapters import s3
from fleet.adapters.pulumi_auto import locks as backend_locks
from fleet.adapters.pulumi_auto.progress import Progress, describe, failure, useful
from fleet.adapters.pulumi_auto.settings import EngineSettings, engine_passphrase, private_state_dir
from fleet.errors import (
    BackendRefused,
    BackendUnreachable,
    ConcurrentUpdate,
    FleetError,
    ProgramError,
    PulumiError,
    StackNotFound,
    ToolMissing,
)
from fleet.output import Reporter, SilentReporter
from fleet.paths import scratch_dir, toolchain_dir, write_private, writes_allowed

__all__ = ["PROJECT", "Engine", "OpResult", "StackOutput", "StackRequest"]

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
# What a failed resource's own diagnostic may also say that a retry may cure: its API server refused the
# connection or could not be reached (a cluster still coming up). Only there: in the program's output the
# same words are the program's own failure.
_TRANSIENT_RESOURCE = (
    "connection refused",
    "cluster is unreachable",
    "no route to host",
)



@dataclass(frozen=True)
class StackRequest:
    """One stack to operate on, with its program and the config to set before running."""

    stack: str
    program: ProgramFn
    config: Mapping[str, str] = field(default_factory=dict)  # keys without the "fleet:" namespace
    secrets: Mapping[str, str] = field(default_factory=dict)
    project: str = PROJECT
    # Called, from the engine's event thread, with the Pulumi type of each resource whose operation (create,
    # update, same...) finished during an update: what lets a caller start work that needs only part of the
    # stack (a local cluster's controllers once the operator's CRDs exist) before the whole update ends.
    # It must return at once; an exception in it is ignored.
    on_resource: Callable[[str], None] | None = None


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

    def __init__(self, settings: EngineSettings, reporter: Reporter | None = None) -> None:
        """``settings`` as the composition root resolved them (:func:`~fleet.adapters.pulumi_auto.settings.
        resolve_settings`): the engine never falls back to the environment for them."""
        self.settings = settings
        self.reporter: Reporter = reporter or SilentReporter()
        self._passphrase: tuple[str | None] | None = None  # made on first need (a file backend's own)
        loc = s3.parse_url(settings.backend_url)
        self._bucket = s3.Bucket(loc, attempts=settings.backend_attempts) if loc is not None else None
        self._backend_checked = False

    def passphrase(self) -> str | None:
        """The passphrase the engine runs with; a file backend's private one is made now, on first need
        (never in a dry run)."""
        if self._passphrase is None:
            self._passphrase = (engine_passphrase(self.settings),)
        return self._passphrase[0]

    # -- workspace --

    def _env(self) -> dict[str, str]:
        s = self.settings
        path = [
            *(str(p) for p in s.extra_path or (Path(sys.executable).parent,)),
            str(toolchain_dir() / "bin"),
        ]
        env = {
            "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
            "PULUMI_BACKEND_URL": self._backend_url(),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }
        if (passphrase := self.passphrase()) is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        env.update(s.env)
        return env

    def _backend_url(self) -> str:
        """The backend the engine runs against: the settings', except in a dry run with a file or S3
        backend, where it is a copy of that backend's stacks in the dry run's scratch directory
        (:func:`_scratch_backend`, :func:`_scratch_backend_of_bucket`): a preview or a dry-run refresh
        still takes the stack's lock and writes backups, and a preview of a new stack creates the stack
        and removes it again; done on the copy, none of it reaches the real backend, which stays
        byte-identical (on S3 the copy only reads: a listing and a GET of each checkpoint)."""
        d = self.settings.file_backend_dir
        if writes_allowed() or (d is None and self._bucket is None):
            return self.settings.backend_url
        if d is not None:
            return f"file://{_scratch_backend(d)}"
        assert self._bucket is not None
        self._check_backend()
        return f"file://{_scratch_backend_of_bucket(self._bucket)}"

    def _backend_dir(self) -> Path | None:
        """The directory of the file backend the engine runs against (None: another backend)."""
        url = self._backend_url()
        return Path(url.removeprefix("file://")) if url.startswith("file://") else None

    def _lock_store(self) -> backend_locks.Store | None:
        """Where the stack locks of the backend the engine runs against are read (None: a backend whose
        locks fleet cannot list: a cloud one other than S3)."""
        if (d := self._backend_dir()) is not None:
            return backend_locks.DirStore(d)
        return backend_locks.BucketStore(self._bucket) if self._bucket is not None else None

    def _check_backend(self) -> None:
        """An S3 backend: its bucket exists and takes the credentials (once per engine), before the engine
        is run against it, so that a missing bucket, refused credentials or a server that is down come out
        as one line naming the backend (:mod:`fleet.adapters.s3`) instead of the engine's own failure."""
        if self._bucket is None or self._backend_checked:
            return
        self._bucket.check()
        self._backend_checked = True

    def _check_secrets(self, stack: str) -> None:
        """A shared backend has no private passphrase of this home: the team's must be given."""
        s = self.settings
        if s.is_file_backend or s.secrets_provider or s.passphrase is not None or s.passphrase_home is not None:
            return
        if "PULUMI_CONFIG_PASSPHRASE_FILE" in s.env:
            return
        what = "the stacks" if stack == "_" else f'stack "{stack}"'
        verb = "keep" if stack == "_" else "keeps"
        raise BackendRefused(
            f"{what} in {s3.display_url(s.backend_url)} {verb} secrets under the team's passphrase, and none is set",
            hint="set PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it (or PULUMI_CONFIG_PASSPHRASE), "
                 "or PULUMI_SECRETS_PROVIDER",
        )

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
            private_state_dir(d)
            real = self.settings.work_root / key / project / stack
            for f in real.glob(f"Pulumi.{stack}.*") if real.is_dir() else ():
                write_private(d / f.name, f.read_bytes())
            return d
        return private_state_dir(d)

    def _options(self, project: str, stack: str, program: ProgramFn | None, *,
                 create: bool = False) -> auto.LocalWorkspaceOptions:
        s = self.settings
        self._check_secrets(stack)
        self._check_backend()
        pulumi_home = private_state_dir(self._roots()[1])
        if (d := s.file_backend_dir) is not None and writes_allowed():
            private_state_dir(d)
        elif d is not None and not d.is_dir() and not create:
            # a dry run before anything was provisioned: no stack at all (a preview goes on, on an empty copy)
            raise StackNotFound(f"no stack in {self._where()}: nothing was provisioned yet",
                                hint=f"run `fleet provision {stack}` first" if stack != "_" else None)
        backend = self._backend_url()
        pulumi_bin = s.pulumi_bin or toolchain.find("pulumi")
        return auto.LocalWorkspaceOptions(
            work_dir=str(self._work_dir(project, stack)),
            pulumi_home=str(pulumi_home),
            program=program,
            env_vars=self._env(),
            secrets_provider=s.secrets_provider,
            project_settings=auto.ProjectSettings(
                name=project, runtime="python", backend=auto.ProjectBackend(url=backend)
            ),
            pulumi_command=_pulumi_command(str(pulumi_bin.parent.parent)),
        )

    def _stack(self, req: StackRequest, *, create: bool) -> auto.Stack:
        opts = self._options(req.project, req.stack, req.program, create=create)
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
        return s3.display_url(self.settings.backend_url)

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

        def run(stack: auto.Stack, progress: Progress) -> _Ran:
            if preview:
                pres = stack.preview(on_event=progress, refresh=refresh or None, color="never", target=target)
                return _changes(pres.change_summary), {}
            ures = stack.up(on_event=progress, refresh=refresh or None, color="never", target=target)
            return _changes(ures.summary.resource_changes), ures.outputs

        return self._run(req, op, run, create=True)

    def refresh(self, req: StackRequest) -> OpResult:
        def run(stack: auto.Stack, progress: Progress) -> _Ran:
            res = stack.refresh(on_event=progress, color="never")
            return _changes(res.summary.resource_changes), stack.outputs()

        return self._run(req, "refresh", run, create=False)

    def drift(self, req: StackRequest) -> tuple[OpResult, list[tuple[str, str, tuple[str, ...]]]]:
        """What a refresh would change in the state (``pulumi refresh --preview-only``): the live
        resources that differ from what Pulumi last applied. Returns the summary and, per drifted
        resource, (operation, ``Type "name"``, the properties that differ)."""
        drifted: list[tuple[str, str, tuple[str, ...]]] = []

        def run(stack: auto.Stack, progress: Progress) -> _Ran:
            def on_event(ev: EngineEvent) -> None:
                progress(ev)
                pre = ev.resource_pre_event
                if pre is None or pre.metadata.type == "pulumi:pulumi:Stack":
                    return
                md = pre.metadata
                op = md.op.value if isinstance(md.op, OpType) else str(md.op)
                if op in ("same", "read", "refresh") and not md.diffs:
                    return
                drifted.append((op, describe(md.urn), tuple(md.diffs or ())))

            res = stack.preview_refresh(on_event=on_event, color="never")
            return _changes(res.change_summary), {}

        return self._run(req, "refresh", run, create=False), drifted

    def destroy(self, req: StackRequest, *, remove: bool = True) -> OpResult:
        """Destroy every resource of the stack, then (``remove``) the stack and its work dir."""

        def run(stack: auto.Stack, progress: Progress) -> _Ran:
            res = stack.destroy(on_event=progress, color="never")
            return _changes(res.summary.resource_changes), {}

        result = self._run(req, "destroy", run, create=False)
        if remove:
            self.remove(req.stack, project=req.project)
        return result

    def remove(self, stack: str, *, project: str = PROJECT) -> None:
        """Remove an (empty) stack and its local settings (also a preview's new stack in a dry run's copy)."""
        ws = auto.LocalWorkspace(**vars(self._options(project, stack, None, create=True)))
        try:
            ws.remove_stack(stack)
        except auto_errors.StackNotFoundError:
            pass
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack rm") from e
        for f in Path(ws.work_dir).glob(f"Pulumi.{stack}.*"):
            f.unlink(missing_ok=True)

    def exists(self, stack: str, *, project: str = PROJECT) -> bool:
        self.repair(project)
        try:
            ws = auto.LocalWorkspace(**vars(self._options(project, stack, None)))
        except StackNotFound:
            return False
        try:
            return any(s.name.rsplit("/", 1)[-1] == stack for s in self._list_stacks(ws))
        except auto_errors.CommandError as e:
            raise self._error(e, None, stack, "stack ls") from e

    def resource_counts(self, *, project: str = PROJECT) -> dict[str, int]:
        """Every stack of the project and how many resources it has (one ``pulumi stack ls``): what
        ``fleet rollout`` asks to tell a cluster that exists from one to bring up."""
        self.repair(project)
        try:
            ws = auto.LocalWorkspace(**vars(self._options(project, "_", None)))
        except StackNotFound:
            return {}
        try:
            return {s.name.rsplit("/", 1)[-1]: int(s.resource_count or 0) for s in self._list_stacks(ws)}
        except auto_errors.CommandError as e:
            raise self._error(e, None, "*", "stack ls") from e

    def _list_stacks(self, ws: auto.LocalWorkspace) -> list[auto.StackSummary]:
        """``pulumi stack ls``. On a file backend it reads every stack's metadata file, and one that another
        update of this machine is writing at that moment reads empty (``error: EOF``): asked again a moment
        later, it reads whole. Parallel drills and rollouts create and update stacks side by side."""
        for attempt in Retrying(retry=retry_if_exception(_torn_read), stop=stop_after_attempt(4),
                                wait=wait_exponential(multiplier=0.25, max=2), reraise=True):
            with attempt:
                return list(ws.list_stacks())
        raise AssertionError("unreachable")  # Retrying re-raises the last error

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
        A type ending in ``*`` names every type that begins with what precedes it (``kubernetes:*``).
        Returns the URNs dropped. A stack that does not exist has nothing to forget."""
        if not self.exists(stack, project=project):
            return []
        s = self._stack(StackRequest(stack, _no_program, project=project), create=False)
        try:
            dep = s.export_stack()
            resources = list((dep.deployment or {}).get("resources") or [])
            exact = {t for t in types if not t.endswith("*")}
            prefixes = tuple(t[:-1] for t in types if t.endswith("*"))
            gone = {r["urn"] for r in resources
                    if r.get("type") in exact or (prefixes and str(r.get("type", "")).startswith(prefixes))}
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
        run: Callable[[auto.Stack, Progress], _Ran],
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
        try:
            changes, outs = self._attempts(req, op, run, wrapped, raised, retryable, before_sleep, new_stack,
                                           create=create)
        except ProgramError as e:
            # Retried to this adapter's bound already: the step runner above must not try it all again
            # (docs/reliability.md: each failure is retried in one place).
            e.transient = False
            raise
        return OpResult(
            stack=req.stack,
            operation=op,
            changes=changes,
            outputs={k: StackOutput(v.value, v.secret) for k, v in outs.items()},
            duration_s=round(time.monotonic() - started, 3),
        )

    def _attempts(self, req: StackRequest, op: Operation, run: Callable[[auto.Stack, Progress], _Ran],
                  wrapped: StackRequest, raised: list[FleetError], retryable: Callable[[BaseException], bool],
                  before_sleep: Callable[[RetryCallState], None], new_stack: bool, *, create: bool) -> _Ran:
        s = self.settings
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
                self.repair(req.project)
                stack = self._stack(wrapped, create=create)
                if op in ("up", "preview"):
                    self._set_config(stack, req)
                progress = Progress(self.reporter, preview=op == "preview", on_resource=req.on_resource)
                try:
                    changes, outs = run(stack, progress)
                except auto_errors.CommandError as e:
                    if raised:
                        raise raised[0] from e
                    raise self._error(e, progress, req.stack, op) from e
                finally:
                    if new_stack:  # a preview leaves no stack behind
                        self.remove(req.stack, project=req.project)
        return changes, outs

    def _error(self, e: auto_errors.CommandError, progress: Progress | None, stack: str,
               op: str) -> PulumiError | BackendRefused:
        text = str(e)
        if "incorrect passphrase" in text:
            return BackendRefused(
                f'the passphrase given does not decrypt the secrets of stack "{stack}" in {self._where()}',
                hint="set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE) to the passphrase "
                     "the stack was made with (the team's)",
            )
        if "passphrase must be set" in text or "PULUMI_CONFIG_PASSPHRASE environment variable" in text:
            return BackendRefused(
                f'stack "{stack}" in {self._where()} needs its passphrase, and none is set',
                hint="set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE) to the team's passphrase",
            )
        if self._bucket is not None and (backend_error := self._backend_error(text)) is not None:
            return backend_error
        if isinstance(e, auto_errors.StackNotFoundError):
            return StackNotFound(
                f'stack "{stack}" not found in {self._where()}', hint=f"run `fleet provision {stack}` first"
            )
        if isinstance(e, auto_errors.ConcurrentUpdateError):
            how = (
                f"remove it with `fleet provision {stack} --force-unlock`"
                if self.settings.is_file_backend or self._bucket is not None
                else f"cancel it with `pulumi cancel --stack {stack}`"
            )
            return ConcurrentUpdate(
                f'stack "{stack}" is locked by another update ({self._holders(stack)})',
                hint=f"wait for it to finish; if no update is running, the lock is stale: {how}",
            )
        progress = progress if progress is not None else Progress(SilentReporter(), False)
        detail = useful(progress, e)
        failed = failure(progress)
        if failed.urn is not None:
            # A resource failed: its provider's own error diagnostics say why. They are text (the engine's
            # events carry no error code), so what a retry may cure is still told from their words, but only
            # from that resource's diagnostics, never from the program's output or the whole log.
            transient = any(_transient_text(m, resource=True) for m in failed.messages)
        elif failed.events:
            transient = False  # the engine ran, no resource failed: the program (or its inputs) failed
        else:
            transient = _transient_text(detail)  # no event at all: the command's text is all there is
        err = ProgramError(f'pulumi {op} of stack "{stack}" failed: {detail}', transient=transient)
        err.urn = failed.urn
        return err


    def _backend_error(self, text: str) -> BackendRefused | BackendUnreachable | None:
        """An engine failure that is the S3 backend's, not the program's: its bucket, its credentials, or
        the server gone (the engine's own retries spent); the bucket asked again says which."""
        low = text.lower()
        if not any(t in low for t in ("blob (key", "blob (code", "nosuchbucket", "invalidaccesskeyid",
                                      "signaturedoesnotmatch", "connection refused", "serviceunavailable",
                                      "503", "no such host", "failed to refresh cached credentials")):
            return None
        self._backend_checked = False
        try:
            self._check_backend()
        except (BackendRefused, BackendUnreachable) as e:
            return e
        return None

    # -- stale locks of the backend (fleet.adapters.pulumi_auto.locks) --

    def _holders(self, stack: str) -> str:
        return backend_locks.holders(self._lock_store(), self.locks(stack))

    def locks(self, stack: str, *, project: str = PROJECT) -> list[PurePath]:
        """The lock files (file backend) or objects (S3: their keys) the backend holds for a stack
        (empty for a backend whose locks fleet cannot list)."""
        return backend_locks.stack_locks(self._lock_store(), project, stack)

    def repair(self, project: str = PROJECT) -> list[Path]:
        """Remove the unreadable metadata files a killed run left in the file backend (they fail every
        ``pulumi stack ls`` of the project), saying so."""
        if not writes_allowed():  # a dry run changes nothing, not even to repair
            return []
        removed = backend_locks.repair(self.settings.file_backend_dir, project)
        for f in removed:
            self.reporter.warn(f"removed an unreadable metadata file of the Pulumi file backend ({f.name}): "
                               "a run was killed while writing it")
        return removed

    def unlock(self, stack: str, *, project: str = PROJECT, force: bool = False,
               of_host: str | None = None) -> list[PurePath]:
        """Remove the stack's stale locks: held by a process of this host that is no longer running
        (or every lock with ``force``; with ``of_host``, those written from that host: a dead run's).
        Returns the removed lock files (S3: their keys)."""
        return backend_locks.remove(self._lock_store(), self.locks(stack, project=project), force=force,
                                    of_host=of_host)


def _no_program() -> None:
    return None


_copying = threading.Lock()


def _scratch_copy(fill: Callable[[Path], None]) -> Path:
    """A dry run's copy of the Pulumi backend in its scratch directory (:func:`fleet.paths.scratch_dir`), made
    once per dry run: ``fill(made)`` writes it under ``made/.pulumi``, and it appears whole (a rename) or not."""
    copy = scratch_dir() / "pulumi-backend"
    with _copying:
        if copy.is_dir():
            return copy
        made = copy.with_name(copy.name + ".new")
        shutil.rmtree(made, ignore_errors=True)
        (made / ".pulumi").mkdir(parents=True, mode=0o700)
        fill(made / ".pulumi")
        made.rename(copy)
    return copy


def _scratch_backend(real: Path) -> Path:
    """A dry run's copy of the file backend ``real``: ``meta.yaml`` and every stack's checkpoint, not the
    history, backups or locks. Missing (nothing provisioned yet), the copy is an empty backend, where a
    preview of a new stack runs."""

    def fill(dest: Path) -> None:
        src = real / ".pulumi"
        for name in ("meta.yaml", "meta.yaml.attrs"):
            if (src / name).is_file():
                shutil.copy2(src / name, dest / name)
        if (src / "stacks").is_dir():
            shutil.copytree(src / "stacks", dest / "stacks",
                            ignore=shutil.ignore_patterns("*.bak", "*.bak.attrs", "*.tmp"))

    return _scratch_copy(fill)


def _scratch_backend_of_bucket(bucket: s3.Bucket) -> Path:
    """A dry run's copy of an S3 backend as a file backend, of what :func:`_scratch_backend` copies of a
    directory (``meta.yaml`` and every stack's checkpoint; not the history, backups or locks): the bucket is
    only listed and read."""

    def fill(dest: Path) -> None:
        for key in bucket.keys(".pulumi/"):
            rel = key.removeprefix(".pulumi/")
            if not (rel in ("meta.yaml", "meta.yaml.attrs") or rel.startswith("stacks/")):
                continue
            if rel.endswith((".bak", ".tmp")) or "/../" in f"/{rel}/" or rel.startswith("/"):
                continue
            data = bucket.get(key)
            if data is None:  # removed since it was listed
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(target, data)

    return _scratch_copy(fill)


def _changes(summary: Mapping[Any, Any] | None) -> dict[str, int]:
    return {str(getattr(k, "value", k)): int(v) for k, v in (summary or {}).items()}


def _torn_read(e: BaseException) -> bool:
    """A file backend's metadata file read while another process wrote it (``error: EOF``)."""
    return isinstance(e, auto_errors.CommandError) and "error: EOF" in str(e)


def _transient_text(text: str, *, resource: bool = False) -> bool:
    """Whether an engine failure's text is one a retry may cure (:data:`_TRANSIENT`); ``resource``: the text
    is a failed resource's own diagnostic, where a refused connection is its API server not (yet) up
    (:data:`_TRANSIENT_RESOURCE`)."""
    low = text.lower()
    return any(t in low for t in (_TRANSIENT + _TRANSIENT_RESOURCE if resource else _TRANSIENT))
