"""Flux ``postBuild.substitute`` semantics, in Python, so fleet renders what Flux would apply.

Follows ``github.com/fluxcd/pkg/envsubst`` (a fork of drone/envsubst) in strict mode:

- only ``${var}`` is a variable; ``$var`` is text. ``$$`` is an escaped ``$``: ``$${var}`` gives ``${var}``,
  ``$$${var}`` gives ``$`` and the value (also in ``${var/old/new}``'s arguments);
- values lose their newlines and names must match ``[_a-zA-Z][_a-zA-Z0-9]*``, as the controller does;
- ``${var:=default}``, ``${var:-default}``, ``${var=default}`` (also ``:?`` and ``:+``, which Flux treats
  the same): the value when set and not empty, else the default (which may hold ``${other}``);
- ``${#var}``, ``${var^}``, ``${var^^}``, ``${var,}``, ``${var,,}``, ``${var:off}``, ``${var:off:len}``,
  ``${var#glob}``, ``${var##glob}``, ``${var%glob}``, ``${var%%glob}``, ``${var/old/new}``,
  ``${var//old/new}``, ``${var/#old/new}``, ``${var/%old/new}``;
- a variable that is not set and has no default is an error naming it; so is a malformed ``${...}``.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.errors import MissingVariables, SubstitutionError

__all__ = ["substitute", "variables_in"]

_DEFAULT_OPS = ("=", ":=", ":-", ":?", ":+")


@dataclass(frozen=True)
class _Func:
    # "" (plain), "#len", "^", "^^", ",", ",,", ":", "#", "##", "%", "%%", "/", "//", "/#", "/%",
    # or a default operator
    op: str
    param: str
    args: tuple[tuple[str | _Func, ...], ...] = ()


_Node = str | _Func


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def error(self, what: str) -> SubstitutionError:
        line = self.s.count("\n", 0, self.i) + 1
        start = self.s.rfind("${", 0, self.i + 1)
        snippet = self.s[start : start + 40].split("\n", 1)[0] if start >= 0 else ""
        return SubstitutionError(f'{what} in "{snippet}" (line {line} of the rendered object)')

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.s[j] if j < len(self.s) else ""

    def top(self) -> tuple[_Node, ...]:
        """Text with ``${...}``; ``$$`` is an escaped ``$`` (the character after it is plain text)."""
        out: list[_Node] = []
        buf: list[str] = []
        s, n = self.s, len(self.s)
        while self.i < n:
            j = s.find("$", self.i)
            if j < 0:
                buf.append(s[self.i :])
                self.i = n
                break
            buf.append(s[self.i : j])
            self.i = j
            if s.startswith("${", j):
                if buf:
                    out.append("".join(buf))
                    buf = []
                self.i += 2
                out.append(self.func())
            elif s.startswith("$$", j):  # an escaped "$"; what follows is scanned as usual (so "$$${v}")
                buf.append("$")
                self.i = j + 2
            else:
                buf.append("$")
                self.i = j + 1
        if buf:
            out.append("".join(buf))
        return tuple(x for x in out if x != "")

    def ident(self) -> str:
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] == "_"):
            j += 1
        name = self.s[self.i : j]
        self.i = j
        return name

    def close(self) -> None:
        if self.peek() != "}":
            raise self.error("bad substitution")
        self.i += 1

    def param(self, stop: str, escapes: bool = False) -> tuple[_Node, ...]:
        """An argument: text up to a character of ``stop`` (or ``}``), with nested ``${...}``."""
        out: list[_Node] = []
        buf: list[str] = []
        while True:
            c = self.peek()
            if c == "":
                raise self.error("missing closing brace")
            if c == "$" and self.peek(1) == "{":
                if buf:
                    out.append("".join(buf))
                    buf = []
                self.i += 2
                out.append(self.func())
                continue
            if c in stop or c == "}":
                break
            if escapes and c == "$" and self.peek(1) == "$":  # Flux escapes "$$" in replace arguments
                buf.append("$")
                self.i += 2
                continue
            if escapes and c == "\\" and self.peek(1) in ("/", "\\"):
                self.i += 1
                c = self.peek()
            buf.append(c)
            self.i += 1
        if buf:
            out.append("".join(buf))
        return tuple(out)

    def func(self) -> _Func:
        if self.peek() == "#":
            self.i += 1
            name = self.ident()
            if not name:
                raise self.error("bad substitution")
            self.close()
            return _Func("#len", name)
        name = self.ident()
        if not name:
            raise self.error("unable to parse variable name")
        c = self.peek()
        if not c:
            raise self.error("missing closing brace")
        if c == "}":
            self.i += 1
            return _Func("", name)
        if c == ":":
            if self.peek(1) in "=-?+" and self.peek(1):
                op = ":" + self.peek(1)
                self.i += 2
                return self.default(op, name)
            self.i += 1
            offset = self.param(":")
            if self.peek() == ":":
                self.i += 1
                length = self.param("")
                self.close()
                return _Func(":", name, (offset, length))
            self.close()
            return _Func(":", name, (offset,))
        if c == "=":
            self.i += 1
            return self.default("=", name)
        if c in ",^":
            op = c + (c if self.peek(1) == c else "")
            self.i += len(op)
            self.close()
            return _Func(op, name)
        if c in "#%":
            op = c + (c if self.peek(1) == c else "")
            self.i += len(op)
            pattern = self.param("")
            self.close()
            return _Func(op, name, (pattern,))
        if c == "/":
            op = "/" + (self.peek(1) if self.peek(1) in ("/", "#", "%") and self.peek(1) else "")
            self.i += len(op)
            pattern = () if self.peek() == "/" else self.param("/", escapes=True)
            if self.peek() != "/":
                raise self.error("bad substitution")
            self.i += 1
            if self.peek() == "}":
                self.i += 1
                return _Func(op, name, (pattern,))
            repl = self.param("", escapes=True)
            self.close()
            return _Func(op, name, (pattern, repl))
        raise self.error("missing closing brace")

    def default(self, op: str, name: str) -> _Func:
        value = self.param("")
        self.close()
        return _Func(op, name, (value,))


@functools.lru_cache(maxsize=2048)
def _parse(text: str) -> tuple[_Node, ...]:
    return _Parser(text).top()


def _trim_prefix(s: str, pattern: str, longest: bool) -> str:
    lengths = range(len(s), 0, -1) if longest else range(1, len(s) + 1)
    for n in lengths:
        if fnmatch.fnmatchcase(s[:n], pattern):
            return s[n:]
    return s


def _substr(s: str, args: list[str]) -> str:
    try:
        pos = int(args[0])
    except ValueError:
        return s
    if pos < 0:
        pos = max(0, len(s) + pos)
    if len(args) == 1:
        return s[pos:]
    try:
        length = int(args[1])
    except ValueError:
        return s
    if length < 0:
        end = len(s) + length
        return "" if end < pos else s[pos:end]
    return s[pos : pos + length]


def _apply(f: _Func, value: str, args: list[str]) -> str:
    op = f.op
    if op in ("", *_DEFAULT_OPS):
        return value if value or not args else "".join(args)
    if op == "#len":
        return str(len(value.encode()))
    if op in ("^", "^^", ",", ",,"):
        conv = str.upper if op[0] == "^" else str.lower
        return conv(value) if len(op) == 2 else (conv(value[:1]) + value[1:])
    if op == ":":
        return _substr(value, args)
    if op in ("#", "##"):
        return _trim_prefix(value, args[0] if args else "", op == "##")
    if op in ("%", "%%"):
        return _trim_prefix(value[::-1], (args[0] if args else "")[::-1], op == "%%")[::-1]
    old, new = [*args, "", ""][:2]
    if op == "/":
        return value.replace(old, new, 1)
    if op == "//":
        return value.replace(old, new)
    if op == "/#":
        return new + value[len(old) :] if len(args) == 2 and value.startswith(old) else value
    if len(args) == 2 and value.endswith(old):  # "/%"
        return value[: len(value) - len(old)] + new
    return value


def _eval(nodes: tuple[_Node, ...], vars: Mapping[str, str], missing: list[str]) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        args = [_eval(a, vars, missing) for a in node.args]
        value = vars.get(node.param)
        if value is None:
            if node.op not in _DEFAULT_OPS:
                if node.param not in missing:
                    missing.append(node.param)
                continue
            value = ""
        out.append(_apply(node, value, args))
    return "".join(out)


_VAR_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*\Z")


def _flux_values(vars: Mapping[str, str]) -> Mapping[str, str]:
    """The variables as Flux's kustomize-controller passes them: names must match ``[_a-zA-Z][_a-zA-Z0-9]*``
    and newlines are removed from values (fleet refuses them at the door; this is for parity)."""
    for k in vars:
        if not _VAR_NAME.match(k):
            shown = repr(k)[1:-1]
            raise SubstitutionError(f'variable name "{shown}" is invalid: it must match [_a-zA-Z][_a-zA-Z0-9]*')
    if any("\n" in v for v in vars.values()):
        return {k: v.replace("\n", "") for k, v in vars.items()}
    return vars


def substitute(text: str, vars: Mapping[str, str], *, where: str = "") -> str:
    """``text`` with its ``${...}`` replaced; raises :class:`MissingVariables` naming every unset one."""
    if "$" not in text:
        return text
    try:
        nodes = _parse(text)
    except SubstitutionError as e:
        raise SubstitutionError(e.message + where) from None
    missing: list[str] = []
    out = _eval(nodes, _flux_values(vars), missing)
    if missing:
        raise MissingVariables(tuple(missing), where)
    return out


def variables_in(text: str) -> tuple[str, ...]:
    """The names of the variables ``text`` refers to (for docs and ``fleet cluster show``)."""
    names: list[str] = []

    def walk(nodes: tuple[_Node, ...]) -> None:
        for n in nodes:
            if isinstance(n, _Func):
                if n.param not in names:
                    names.append(n.param)
                for a in n.args:
                    walk(a)

    if "$" in text:
        walk(_parse(text))
    return tuple(names)
