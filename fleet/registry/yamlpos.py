"""YAML with line numbers: parse a file once into plain data plus where each key and value sits.

Validation errors from pydantic carry a ``loc`` (``("gates", "custom", 0, "kind")``); :class:`Positions`
maps it back to a line of the file, so every error can name file, line and key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from fleet.errors import ConfigError

__all__ = ["Loc", "Positions", "dotted", "load_yaml"]

Loc = tuple[str | int, ...]

try:  # libyaml's composer is ~10x faster; the line numbers are the same
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


_MAX_DEPTH = 64
_MAX_NODES = 200_000


@dataclass(frozen=True)
class Positions:
    """1-based line of each key (for mappings) or item (for sequences), by its path."""

    lines: dict[Loc, int]

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest ancestor that has one (a missing key: its mapping)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def dotted(loc: Sequence[str | int]) -> str:
    """``("gates", "custom", 0, "kind")`` -> ``gates.custom[0].kind``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], file: str, ctor: SafeConstructor) -> Any:
    if len(path) > _MAX_DEPTH or len(lines) > _MAX_NODES:  # recursive or exploding aliases
        raise ConfigError(
            "document is nested too deeply or too large", file=file, line=node.start_mark.line + 1
        )
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    "YAML merge keys (<<) are not supported", file=file, line=key_node.start_mark.line + 1
                )
            key = _scalar(key_node, file, ctor)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(
                    "mapping keys must be plain scalars", file=file, line=key_node.start_mark.line + 1
                )
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise ConfigError(
                    f"duplicate key (first on line {lines[(*path, key)]})",
                    file=file,
                    line=key_node.start_mark.line + 1,
                    key=dotted((*path, key)),
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*path, key), lines, file, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, file, ctor) for i, item in enumerate(node.value)]
    return _scalar(node, file, ctor)


def _scalar(node: yaml.Node, file: str, ctor: SafeConstructor) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError("expected a plain value here", file=file, line=node.start_mark.line + 1)
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else node.start_mark.line + 1
        raise ConfigError(e.problem or "invalid value", file=file, line=line) from e
    except (ValueError, OverflowError) as e:  # e.g. an integer of 10,000 digits
        msg = " ".join(str(e).split())[:120]
        raise ConfigError(f"invalid value: {msg}", file=file, line=node.start_mark.line + 1) from e


def load_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain data and its :class:`Positions`.

    Malformed YAML, several documents, merge keys and duplicate keys raise :class:`ConfigError`
    naming the file and line.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        what = e.problem or e.context or "malformed"
        if e.context and e.problem and e.problem.startswith("but "):
            what = f"{e.context}, {e.problem}"
        raise ConfigError(f"invalid YAML: {what}", file=file, line=line) from e
    except yaml.YAMLError as e:  # e.g. "expected a single document"
        raise ConfigError(f"invalid YAML: {str(e).splitlines()[0]}", file=file) from e
    lines: dict[Loc, int] = {}
    if node is None:
        return None, Positions(lines)
    return _walk(node, (), lines, file, SafeConstructor()), Positions(lines)
