"""What the engine says while it works, and what of a failure is worth showing: :class:`Progress` turns
engine events into reporter lines (one per resource operation) and keeps the error diagnostics;
:func:`useful` picks the part of a failure a user should read."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pulumi.automation import errors as auto_errors
from pulumi.automation.events import EngineEvent, OpType

from fleet.output import Reporter

__all__ = ["Failure", "Progress", "command_text", "describe", "failure", "useful"]

_COLOR = re.compile(r"<\{%[^%]*%\}>")

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


def describe(urn: str) -> str:
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


class Progress:
    """on_event callback: one reporter line per resource operation; keeps the error diagnostics."""

    def __init__(self, reporter: Reporter, preview: bool, on_resource: Callable[[str], None] | None = None) -> None:
        self.reporter = reporter
        self.preview = preview
        self.on_resource = on_resource
        self.errors: list[str] = []
        self.failed: list[str] = []  # URNs of the resources whose operation failed (ResourceOperationFailedEvent)
        self.diagnostics: list[tuple[str, str]] = []  # (URN, message) of every error diagnostic naming a resource
        self.events = 0
        self._lock = threading.Lock()

    def __call__(self, ev: EngineEvent) -> None:
        with contextlib.suppress(Exception):  # a display problem must never fail the update
            self._handle(ev)

    def _handle(self, ev: EngineEvent) -> None:
        r = self.reporter
        with self._lock:
            self.events += 1
        if ev.resource_pre_event is not None:
            md = ev.resource_pre_event.metadata
            if not _quiet(md.op, md.type, md.provider):
                r.step(f"{_VERB[md.op][2 if self.preview else 0]} {describe(md.urn)}")
        elif ev.res_outputs_event is not None and not self.preview:
            md = ev.res_outputs_event.metadata
            if not _quiet(md.op, md.type, md.provider):
                r.ok(f"{_VERB[md.op][1]} {describe(md.urn)}")
            if self.on_resource is not None:
                self.on_resource(md.type)
        elif ev.res_op_failed_event is not None:
            md = ev.res_op_failed_event.metadata
            with self._lock:
                self.failed.append(md.urn)
            r.fail(f"{md.op.value if isinstance(md.op, OpType) else md.op} failed: {describe(md.urn)}")
        elif ev.diagnostic_event is not None:
            d = ev.diagnostic_event
            msg = _clean(d.message)
            if not msg:
                return
            if d.severity == "error":
                with self._lock:
                    self.errors.append(msg)
                    if d.urn and "::pulumi:pulumi:Stack::" not in d.urn:  # a resource's, not the program's
                        self.diagnostics.append((d.urn, msg))
            elif d.severity == "warning" and not d.ephemeral and not _AMBIENT.match(msg):
                r.warn(msg.splitlines()[0][:300])


@dataclass(frozen=True)
class Failure:
    """What the engine's events say failed: ``urn`` the resource whose operation failed (None: no resource
    did; the program or the engine itself failed), ``messages`` the error diagnostics of that resource (what
    its provider said), ``events`` how many events the engine sent (0: it failed before any)."""

    urn: str | None
    messages: tuple[str, ...]
    events: int


def failure(progress: Progress) -> Failure:
    """The failure as the engine's structured events tell it (:class:`Failure`): the first resource whose
    operation failed and its own error diagnostics; else a resource an error diagnostic names."""
    with progress._lock:
        failed, diags, events = list(progress.failed), list(progress.diagnostics), progress.events
    urn = failed[0] if failed else diags[0][0] if diags else None
    return Failure(urn, tuple(m for u, m in diags if u == urn), events)


def useful(progress: Progress, err: auto_errors.CommandError) -> str:
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
        text = command_text(err)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("error:")] or [
            ln.strip() for ln in text.strip().splitlines()[-6:]
        ]
    msg = " | ".join(lines[:12])
    return msg[:2000]


def command_text(err: BaseException) -> str:
    return _clean(str(err))  # the SDK's CommandError carries "code: .. stdout: .. stderr: .."
