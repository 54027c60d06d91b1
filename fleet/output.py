"""Output conventions: progress on stderr (► ✔ ◎ ⚠ ✗), data on stdout as table, json or yaml.

The JSON (and YAML) shape of every read command follows one rule (docs/output.md):

- a command about one thing (``cluster show``, ``render CLUSTER``, ``good``, ``diff``, ``gate``, ...)
  prints that one object;
- a command about many (``cluster list``, ``history``, ``region list``, ``status``, ``render --all``,
  ...) prints one envelope, whatever the number of items (none, one or many)::

      {"apiVersion": "fleet.dev/v1", "kind": "ClusterList", "metadata": {...}, "items": [...]}

  ``metadata`` holds facts about the whole list (``status``: the revision and the time taken), ``{}``
  when there are none. :func:`emit` writes it when given ``list_kind``.

Safe output: every string that came from a repo, a remote, a cluster or an environment variable may carry
terminal escapes (ESC, OSC), carriage returns, bidirectional overrides or bytes that were not UTF-8.
:func:`visible` writes each such character as ``\\u001b``; every sink fleet prints to a terminal goes
through it: table cells (:func:`emit`), progress lines (:class:`StderrReporter`), error lines (the
handler in :mod:`fleet.cli`) and the text of plans, reports, diffs and trees (:func:`visible_text`). JSON
escapes them itself (and a float that is not finite is written as null: ``-o json`` is always JSON).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

__all__ = [
    "API_VERSION",
    "OutputFormat",
    "Reporter",
    "SilentReporter",
    "StderrReporter",
    "emit",
    "envelope",
    "to_plain",
    "visible",
    "visible_text",
]

API_VERSION = "fleet.dev/v1"  # the apiVersion of fleet's own files (fleet.yaml, clusters/*.yaml) and lists


# C0/C1 controls (ESC, CR, BS, NUL...), DEL, line and paragraph separators, bidirectional marks, embeddings,
# overrides and isolates, the Arabic letter mark, and lone surrogates (bytes that were not UTF-8)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def visible(text: object) -> str:
    """``text`` for one line of a terminal: every control, escape and bidi character (newlines too) and
    every byte that was not UTF-8 written as an escape (``\\x1b``, ``\\u202e``), so it shows, and does
    nothing."""
    return _UNSAFE.sub(_escape, text if isinstance(text, str) else str(text))


def visible_text(text: str) -> str:
    """:func:`visible` for text of several lines (a plan, a report, a diff): newlines kept, the rest escaped."""
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


class Reporter(Protocol):
    """Where services say what they are doing. Passed in; services never print."""

    def step(self, msg: str) -> None: ...  # ► starting something
    def ok(self, msg: str) -> None: ...  # ✔ done
    def wait(self, msg: str) -> None: ...  # ◎ waiting for something
    def warn(self, msg: str) -> None: ...  # ⚠
    def fail(self, msg: str) -> None: ...  # ✗


class StderrReporter:
    """flux-style progress lines on stderr; thread-safe; optional prefix (e.g. the cluster name)."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "", quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.quiet = quiet
        self._lock = threading.Lock()

    def _say(self, sym: str, msg: str) -> None:
        if self.quiet and sym in "►◎":
            return
        with self._lock:
            print(f"{sym} {visible_text(self.prefix + msg)}", file=self.stream, flush=True)

    def step(self, msg: str) -> None:
        self._say("►", msg)

    def ok(self, msg: str) -> None:
        self._say("✔", msg)

    def wait(self, msg: str) -> None:
        self._say("◎", msg)

    def warn(self, msg: str) -> None:
        self._say("⚠", msg)

    def fail(self, msg: str) -> None:
        self._say("✗", msg)

    def child(self, prefix: str) -> StderrReporter:
        r = StderrReporter(self.stream, self.prefix + prefix, self.quiet)
        r._lock = self._lock
        return r


class SilentReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, msg: str) -> None:
        self.lines.append("► " + msg)

    def ok(self, msg: str) -> None:
        self.lines.append("✔ " + msg)

    def wait(self, msg: str) -> None:
        self.lines.append("◎ " + msg)

    def warn(self, msg: str) -> None:
        self.lines.append("⚠ " + msg)

    def fail(self, msg: str) -> None:
        self.lines.append("✗ " + msg)


def to_plain(obj: Any) -> Any:
    """Dataclasses, enums, paths and datetimes to JSON-able values (stable key order as declared)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # NaN and infinity are not JSON
    if hasattr(obj, "model_dump"):
        return to_plain(obj.model_dump(mode="json"))
    return obj


def envelope(kind: str, items: Iterable[Any], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The one shape of every command about many things: ``{"apiVersion", "kind", "metadata", "items"}``."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": to_plain(dict(metadata or {})),
        "items": [to_plain(i) for i in items],
    }


def emit(
    data: Any,
    fmt: OutputFormat,
    *,
    columns: Sequence[str] | None = None,
    rows: Callable[[Any], Sequence[Sequence[Any]]] | None = None,
    stream: TextIO | None = None,
    list_kind: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data`` to stdout in the chosen format. Tables need ``columns`` and ``rows`` (given ``data``).

    With ``list_kind`` (``"ClusterList"``), ``data`` is the items of a command about many things: json and
    yaml get them in :func:`envelope`, with ``metadata``.
    """
    out = stream or sys.stdout
    plain = envelope(list_kind, data, metadata) if list_kind is not None else to_plain(data)
    if fmt is OutputFormat.json:
        out.write(json.dumps(plain, indent=2, sort_keys=False) + "\n")
        return
    if fmt is OutputFormat.yaml:
        out.write(_yaml(plain))
        return
    if columns is None or rows is None:
        out.write(_yaml(plain))
        return
    table_rows = [["" if c is None else visible(c) for c in r] for r in rows(data)]
    widths = [len(c) for c in columns]
    for r in table_rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    out.write("  ".join(c.upper().ljust(widths[i]) for i, c in enumerate(columns)).rstrip() + "\n")
    for r in table_rows:
        out.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")


def _yaml(plain: Any) -> str:
    import yaml  # loaded by the commands that print YAML (start-up time of the others)

    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False)
