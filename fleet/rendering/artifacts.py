"""Flux source-watcher's ``ArtifactGenerator``, offline: the content of the ``ExternalArtifact`` it makes
from the fleet repo, as a tree of this repository's blobs (:meth:`fleet.adapters.git.GitRepo.compose`),
so the Kustomizations whose ``sourceRef`` is that ExternalArtifact build from it like any other path.

An ArtifactGenerator (``source.extensions.fluxcd.io/v1beta1``) names ``sources`` by alias and, for each
output artifact, a list of ``copy`` operations ``{from: "@alias/glob", to: "@artifact/path", exclude,
strategy}`` applied in order to an empty staging directory. This follows source-watcher's builder
(``internal/builder/builder.go``) rule by rule:

- ``from`` without glob characters (``*?[]``) is one path: a directory is copied as a subdirectory of
  ``to`` (``cp -r dir dest`` makes ``dest/dir``; ``@alias/`` copies the whole source into ``to``); a file
  goes to ``to/<name>`` when ``to`` ends in ``/`` or is an existing directory, else to ``to`` itself;
- a glob is matched as Go's ``fs.Glob`` does (``*``, ``?`` and classes within one path element; ``**`` is
  no more than ``*``); each match keeps its whole path under ``to``, except that a pattern ending in
  ``/**`` strips its directory prefix (``apps/base/**`` to ``@artifact/base/`` gives ``base/...``);
  matched directories are copied whole; no match, or every match excluded, is an error;
- ``exclude`` patterns are doublestar globs matched against the source-relative path and against the
  path relative to the literal prefix of ``from``; a pattern without ``/`` also matches the file name;
- ``strategy: Merge`` deep-merges a YAML file into one already staged (maps merged, lists replaced, as
  Helm merges values files); ``Extract`` (tarballs) is not rendered: the artifact is listed unresolved.

The fleet repo's GitRepository artifact is the tree at the revision without what source-controller
leaves out by default (VCS files, CI files, images and archives, ``.sops.yaml``, ...), what the
``.sourceignore`` files exclude (gitignore syntax, each for its directory and below) and what the
GitRepository's ``spec.ignore`` excludes (last: it may re-include).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from fleet.errors import FluxTreeError, InputError
from fleet.rendering.fluxtree import Unsupported, merge_maps

if TYPE_CHECKING:
    from fleet.adapters.git import GitRepo

__all__ = [
    "GENERATOR_GROUP",
    "Composed",
    "Unsupported",
    "compose",
    "doublestar_match",
    "glob_match",
    "ignored",
    "source_ignore",
]

GENERATOR_GROUP = "source.extensions.fluxcd.io"
_GLOB_CHARS = re.compile(r"[*?\[\]]")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# source-controller's default exclusions (fluxcd/pkg/sourceignore: VCS, file extensions, CI, extra)
DEFAULT_IGNORE = (
    ".git/", ".gitignore", ".gitmodules", ".gitattributes",
    "*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip",
    ".github/", ".circleci/", ".travis.yml", ".gitlab-ci.yml", "appveyor.yml", ".drone.yml", "cloudbuild.yaml",
    "codeship-services.yml", "codeship-steps.yml",
    "**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml",
)


@dataclass
class Composed:
    """An artifact's files (path -> blob id of the repository, or merged bytes) and the repo paths they
    came from."""

    files: dict[str, str | bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    origins: set[str] = field(default_factory=set)


# ---- patterns ---------------------------------------------------------------------------------------


def _element(seg: str, braces: bool) -> str:
    """One path element of a glob as a regex: ``*``, ``?``, ``[...]`` (``^``/``!`` negate), ``\\`` escapes,
    and with ``braces`` doublestar's ``{a,b}``."""
    out, i = "", 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\" and i + 1 < len(seg):
            i += 1
            out += re.escape(seg[i])
        elif c == "[":
            j = i + 1
            if j < len(seg) and seg[j] in "^!":
                j += 1
            if j < len(seg) and seg[j] == "]":
                j += 1
            while j < len(seg) and seg[j] != "]":
                j += 2 if seg[j] == "\\" else 1
            if j >= len(seg):
                raise ValueError(f"syntax error in pattern {seg!r}")
            body = seg[i + 1:j]
            neg = body[:1] in ("^", "!")
            body = body[1:] if neg else body
            out += "[" + ("^" if neg else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]"
            i = j
        elif c == "{" and braces:
            j = seg.find("}", i)
            if j < 0:
                raise ValueError(f"syntax error in pattern {seg!r}")
            out += "(?:" + "|".join(_element(alt, False) for alt in seg[i + 1:j].split(",")) + ")"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return out


def glob_match(pattern: str, path: str) -> bool:
    """Go's ``path.Match``: ``pattern`` and ``path`` have as many elements, each matched alone."""
    pat, parts = pattern.split("/"), path.split("/")
    return len(pat) == len(parts) and all(re.fullmatch(_element(p, False), s) for p, s in zip(pat, parts,
                                                                                              strict=True))


_compiled: dict[str, re.Pattern[str]] = {}


def _doublestar(pattern: str) -> re.Pattern[str]:
    found = _compiled.get(pattern)
    if found is None:
        segs = pattern.split("/")
        out = ""
        for i, seg in enumerate(segs):
            last = i == len(segs) - 1
            if seg == "**":
                if last:
                    out = out[:-1] + "(?:/.*)?" if out else ".*"
                else:
                    out += "(?:[^/]*/)*"
            else:
                out += _element(seg, True) + ("" if last else "/")
        found = re.compile(out + r"\Z", re.S)
        if len(_compiled) > 1024:
            _compiled.clear()
        _compiled[pattern] = found
    return found


def doublestar_match(pattern: str, path: str) -> bool:
    """doublestar's ``Match``: ``**`` stands for any number of path elements."""
    return _doublestar(pattern).match(path) is not None


def _excluded(path: str, base: str, patterns: Sequence[str]) -> bool:
    """source-watcher's ``shouldExcludePath``: ``path`` (source-relative) or its part below ``base``."""

    def hit(p: str) -> bool:
        name = posixpath.basename(p)
        return any(doublestar_match(x, p) or ("/" not in x and doublestar_match(x, name)) for x in patterns)

    if hit(path):
        return True
    base = posixpath.normpath(base)
    if base in (".", ""):
        return False
    rel = posixpath.relpath(path, base)
    if rel == ".." or rel.startswith("../") or rel in (".", path):
        return False
    return hit(rel)


# ---- the fleet repo's GitRepository artifact -------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def source_ignore(text: str) -> tuple[_Rule, ...]:
    """gitignore lines (``.sourceignore``) as rules; the last rule that matches a path decides."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:] if negate else line
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            continue
        try:
            body = _doublestar(line).pattern.removesuffix(r"\Z")
        except ValueError:
            continue
        regex = re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z", re.S)
        rules.append(_Rule(regex, negate, dir_only))
    return tuple(rules)


def ignored(rules: Sequence[_Rule], path: str, is_dir: bool) -> bool:
    """Whether ``path`` is left out by ``rules`` (its parent directories are checked by the walk)."""
    out = False
    for r in rules:
        if r.dir_only and not is_dir:
            continue
        if r.regex.match(path):
            out = not r.negate
    return out


class _Source:
    """One alias's content: the fleet repo at a revision, as source-controller archives it: without its
    default exclusions, then what the ``.sourceignore`` files say (each for its own directory and below),
    then the GitRepository's ``spec.ignore``; the last pattern that matches decides."""

    def __init__(self, g: GitRepo, sha: str, ignore: str | None = None) -> None:
        self.g, self.sha = g, sha
        self.defaults = source_ignore("\n".join(DEFAULT_IGNORE))
        self.files: list[tuple[str, _Rule]] = []  # (the directory of the .sourceignore, a rule of it)
        self.spec = source_ignore(ignore or "")
        self._loaded: set[str] = set()
        self._lists: dict[str, list[tuple[str, str]]] = {}

    def _load(self, d: str) -> None:
        if d in self._loaded:
            return
        self._loaded.add(d)
        try:
            text = self.g.read_file(self.sha, f"{d}/.sourceignore" if d else ".sourceignore")
        except InputError:  # not UTF-8: source-controller would read garbage patterns; none here
            text = None
        self.files += [(d, r) for r in source_ignore(text or "")]

    def ignored(self, path: str, is_dir: bool) -> bool:
        out = False
        for domain, r in [*(("", r) for r in self.defaults), *self.files, *(("", r) for r in self.spec)]:
            if domain:
                if not path.startswith(domain + "/"):
                    continue
                rel = path[len(domain) + 1:]
            else:
                rel = path
            if (is_dir or not r.dir_only) and r.regex.match(rel):
                out = not r.negate
        return out

    def listing(self, d: str) -> list[tuple[str, str]]:
        """(name, kind) of what ``d`` holds in the artifact (sorted; ignored entries and submodules left out;
        symlinks followed inside the tree)."""
        found = self._lists.get(d)
        if found is None:
            found = []
            self._load(d)
            for e in self.g.list_dir(self.sha, d):
                path = f"{d}/{e.name}" if d else e.name
                kind = self.kind(path, e.kind)
                if kind is None or self.ignored(path, kind == "dir"):
                    continue
                found.append((e.name, kind))
            self._lists[d] = found
        return found

    def kind(self, path: str, stored: str | None = None) -> str | None:
        if stored is None:
            if path in ("", "."):
                return "dir"
            parent, name = posixpath.split(path)
            if self.kind(parent) != "dir":
                return None
            return next((k for n, k in self.listing(parent) if n == name), None)
        if stored == "link":
            try:
                _target, kind = self.g.resolve_path(self.sha, posixpath.dirname(path), self.g.link_target(self.sha,
                                                                                                       path) or "")
            except InputError:
                return None
            return kind if kind in ("file", "dir") else None
        return stored if stored in ("file", "dir") else None

    def blob(self, path: str) -> str:
        """The blob id of file ``path`` (a symlink: its target's)."""
        target, _ = self.g.resolve_path(self.sha, "", path)
        entry = self.g.entry(self.sha, target)
        assert entry is not None
        return entry.oid

    def walk(self, d: str) -> list[tuple[str, str]]:
        """(path, kind) of everything below ``d``, depth first in name order (Go's ``fs.WalkDir``)."""
        out: list[tuple[str, str]] = []
        for name, kind in self.listing(d):
            path = f"{d}/{name}" if d else name
            out.append((path, kind))
            if kind == "dir":
                out += self.walk(path)
        return out

    def glob(self, pattern: str) -> list[str]:
        """Go's ``fs.Glob`` over the artifact: matches in lexical order."""
        parts = pattern.split("/")
        found = [""]
        for i, part in enumerate(parts):
            nxt: list[str] = []
            for base in found:
                if base and self.kind(base) != "dir":
                    continue
                if not _GLOB_CHARS.search(part):
                    path = f"{base}/{part}" if base else part
                    if (i == len(parts) - 1 and self.kind(path) is not None) or self.kind(path) == "dir":
                        nxt.append(path)
                    continue
                regex = re.compile(_element(part, False) + r"\Z", re.S)
                nxt += [f"{base}/{n}" if base else n for n, _ in self.listing(base) if regex.match(n)]
            found = nxt
        return found


# ---- copy operations --------------------------------------------------------------------------------


def _load_yaml(text: str, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        for doc in yaml.load_all(text, Loader=_LOADER):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise FluxTreeError(f"{what}: cannot unmarshal YAML document: not a mapping")
            out = merge_maps(out, doc)
    except yaml.YAMLError as e:
        raise FluxTreeError(f"{what}: error reading YAML document: {' '.join(str(e).split())[:200]}") from None
    return out


class _Copier:
    def __init__(self, g: GitRepo, sources: Mapping[str, _Source], where: str) -> None:
        self.g, self.sources, self.where = g, sources, where
        self.out = Composed()

    def fail(self, op: Mapping[str, Any], msg: str) -> FluxTreeError:
        return FluxTreeError(
            f"{self.where}: failed to apply copy operation from '{op.get('from')}' to '{op.get('to')}': {msg}",
            hint="source-watcher fails the same way: the ExternalArtifact is not made",
        )

    def put(self, src: _Source, path: str, dest: str, merge: bool) -> None:
        dest = posixpath.normpath(dest)
        if dest in ("", ".") or dest.startswith("../") or dest == "..":
            raise InputError(f'"{dest}" leaves the artifact')
        if dest in self.out.dirs:
            raise InputError(f"{dest} is a directory of the artifact")
        self._mkdir(posixpath.dirname(dest))
        oid = src.blob(path)
        self.out.origins.add(path)
        old = self.out.files.get(dest)
        if merge and old is not None:
            merged = merge_maps(_load_yaml(self._text(old), dest), _load_yaml(self._text(oid), path))
            self.out.files[dest] = yaml.safe_dump(merged, sort_keys=True, default_flow_style=False,
                                                  allow_unicode=True, width=1 << 20).encode()
            return
        self.out.files[dest] = oid

    def _text(self, content: str | bytes) -> str:
        data = content if isinstance(content, bytes) else self.g.read_blob(content)
        return data.decode("utf-8", "replace")

    def _mkdir(self, d: str) -> None:
        while d not in ("", "."):
            if d in self.out.files:
                raise InputError(f"{d} is a file of the artifact and a directory")
            self.out.dirs.add(d)
            d = posixpath.dirname(d)

    def copy_dir(self, src: _Source, path: str, dest: str, excludes: Sequence[str], base: str, merge: bool) -> None:
        self._mkdir(dest)
        skipped: list[str] = []
        for p, kind in src.walk(path):
            if any(p.startswith(s + "/") for s in skipped):
                continue
            if _excluded(p, base, excludes):
                if kind == "dir":
                    skipped.append(p)
                continue
            rel = posixpath.relpath(p, path) if path not in ("", ".") else p
            target = posixpath.join(dest, rel) if dest else rel
            if kind == "dir":
                self._mkdir(target)
            else:
                self.put(src, p, target, False)  # a directory's files are copied, never merged

    def apply(self, op: Mapping[str, Any]) -> None:
        frm, to = str(op.get("from") or ""), str(op.get("to") or "")
        strategy = str(op.get("strategy") or "Overwrite")
        if not frm.startswith("@") or "/" not in frm:
            raise self.fail(op, f"invalid copy source '{frm}': source format must be '@alias/pattern'")
        alias, pattern = frm[1:].split("/", 1)
        if not to.startswith("@artifact/"):
            raise self.fail(op, f"invalid copy destination '{to}': destination must start with '@artifact/'")
        dest = to.removeprefix("@artifact/")
        src = self.sources.get(alias)
        if src is None:
            raise self.fail(op, f"source alias '{alias}' not found")
        excludes = [str(x) for x in op.get("exclude") or []]
        for x in excludes:
            try:
                _doublestar(x)
            except ValueError:
                raise self.fail(op, f"invalid exclude pattern '{x}'") from None
        if strategy == "Extract":
            raise Unsupported(f"copy from '{frm}' extracts tarballs (strategy: Extract), which fleet does not render")
        if strategy not in ("Overwrite", "Merge"):
            raise self.fail(op, f"unknown strategy '{strategy}'")
        merge = strategy == "Merge"
        try:
            if not _GLOB_CHARS.search(pattern):
                self._single(op, src, pattern, dest, to.endswith("/"), excludes, merge)
            else:
                self._glob(op, src, alias, pattern, dest, excludes, merge)
        except InputError as e:
            raise self.fail(op, e.message) from None

    def _single(self, op: Mapping[str, Any], src: _Source, pattern: str, dest: str, slash: bool,
                excludes: Sequence[str], merge: bool) -> None:
        path = posixpath.normpath(pattern) if pattern else "."
        if path == ".." or path.startswith("../"):
            raise self.fail(op, f"source '{path}' leaves the source")
        kind = src.kind("" if path == "." else path)
        if kind is None:
            raise self.fail(op, f"source '{path}' does not exist")
        if kind == "dir":
            name = posixpath.basename(path) if path != "." else ""
            target = posixpath.normpath(posixpath.join(dest, name)) if dest or name else ""
            self.copy_dir(src, "" if path == "." else path, "" if target == "." else target, excludes, path, merge)
            return
        if _excluded(path, ".", excludes):
            return
        if slash or posixpath.normpath(dest) in self.out.dirs:
            target = posixpath.join(dest, posixpath.basename(path))
        else:
            target = dest
        self.put(src, path, target, merge)

    def _glob(self, op: Mapping[str, Any], src: _Source, alias: str, pattern: str, dest: str,
              excludes: Sequence[str], merge: bool) -> None:
        try:
            matches = src.glob(pattern)
        except ValueError:
            raise self.fail(op, f"invalid glob pattern '{pattern}': syntax error in pattern") from None
        if not matches:
            raise self.fail(op, f"no files match pattern '{pattern}' in source '{alias}'")
        base = _selection_root(pattern)
        kept = [m for m in matches if m not in (".", "..") and not _excluded(m, base, excludes)]
        if not kept:
            raise self.fail(op, f"all files matching pattern '{pattern}' in source '{alias}' were excluded")
        for m in kept:
            target = _glob_destination(pattern, m, dest)
            if src.kind(m) == "dir":
                self.copy_dir(src, m, target, excludes, base, merge)
            else:
                self.put(src, m, target, merge)


def _selection_root(pattern: str) -> str:
    parts = []
    for part in posixpath.normpath(pattern).split("/"):
        if _GLOB_CHARS.search(part):
            break
        parts.append(part)
    return "/".join(parts) or "."


def _glob_destination(pattern: str, match: str, dest: str) -> str:
    if pattern.endswith("/**"):
        prefix = pattern[: -len("/**")] + "/"
        if match.startswith(prefix):
            return posixpath.normpath(posixpath.join(dest, match[len(prefix):]))
    return posixpath.normpath(posixpath.join(dest, match))


def compose(g: GitRepo, sha: str, aliases: Sequence[str], copy: Sequence[Any], where: str,
            ignores: Sequence[str | None] = ()) -> Composed:
    """The files of an output artifact whose ``copy`` operations read ``aliases`` (each the fleet repo at
    ``sha``; ``ignores``: each one's GitRepository ``spec.ignore``). Raises :class:`FluxTreeError` where
    source-watcher fails, :class:`Unsupported` for what fleet does not render."""
    found: dict[str | None, _Source] = {}
    sources = {}
    for alias, ignore in zip(aliases, [*ignores, *[None] * (len(aliases) - len(ignores))], strict=True):
        sources[alias] = found.setdefault(ignore, _Source(g, sha, ignore))
    copier = _Copier(g, sources, where)
    for i, op in enumerate(copy):
        if not isinstance(op, dict):
            raise FluxTreeError(f"{where}: copy[{i}] is not a mapping (from, to)")
        copier.apply(op)
    return copier.out
