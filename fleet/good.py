"""Last known good: per cluster, the revision it last passed its gates on, kept in Git off every cluster.

- ``refs/fleet/good/<cluster>`` points at that commit (moved by compare-and-swap under the repo lock);
- an audit note on that commit (``refs/notes/fleet``), one JSON line per record: who, when, why,
  gate results, duration and the previous good revision. Several clusters can share a commit's note.

Both travel with ``fleet push`` / ``fleet pull`` (:mod:`fleet.sync`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet.adapters.git import GitRepo
from fleet.errors import InputError, NotFound
from fleet.registry.load import cluster_file, layout_at, load_registry, open_repo
from fleet.registry.model import text_problem
from fleet.rendering.build import inputs

__all__ = [
    "GOOD_PREFIX",
    "GoodRecord",
    "HistoryEntry",
    "audit_trail",
    "get_good",
    "good_ref",
    "history",
    "record_good",
]

GOOD_PREFIX = "refs/fleet/good/"
MAX_GATES_DEPTH = 8  # a gate result is a flat object of a few fields; deeper is not one
MAX_GATES_SIZE = 256 * 1024  # the JSON of all gate results of one record


def _duration(value: Any) -> float | None:
    """A duration read from an audit note: a finite number of seconds, not negative, else None (a note
    pulled from a remote is anyone's text: NaN would make ``good -o json`` invalid JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def check_duration(duration_s: float | None, flag: str = "--duration") -> None:
    """Refuse (exit 2) a duration that is not a finite number of seconds >= 0."""
    if duration_s is None:
        return
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) \
            or duration_s < 0:
        raise InputError(f"{flag}: {duration_s!r} is not a duration in seconds (a finite number, 0 or more)")


def check_gate_results(gates: Sequence[Any], flag: str = "--gates") -> tuple[dict[str, Any], ...]:
    """Gate results as they go into an audit note, checked at the door: JSON objects, at most
    :data:`MAX_GATES_DEPTH` deep and :data:`MAX_GATES_SIZE` bytes, every key and string free of control,
    escape and bidi characters and of bounded length, every number finite."""

    def walk(node: Any, depth: int, where: str) -> None:
        if depth > MAX_GATES_DEPTH:
            raise InputError(f"{flag}: nested deeper than {MAX_GATES_DEPTH} levels at {where}")
        if isinstance(node, str):
            problem = text_problem(node, echo=False)
            if problem:
                raise InputError(f"{flag}: the value at {where} {problem}")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InputError(f"{flag}: the value at {where} is not a finite number")
        elif isinstance(node, Mapping):
            for k, v in node.items():
                if not isinstance(k, str) or text_problem(k, 128, echo=False):
                    raise InputError(f"{flag}: a key at {where} is not a short printable string")
                walk(v, depth + 1, f"{where}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, depth + 1, f"{where}[{i}]")
        elif node is not None and not isinstance(node, (bool, int)):
            raise InputError(f"{flag}: the value at {where} is not JSON ({type(node).__name__})")

    out = []
    for i, x in enumerate(gates):
        if not isinstance(x, Mapping):
            raise InputError(f"{flag}: gate result {i} is not a JSON object")
        walk(x, 1, f"[{i}]")
        out.append(dict(x))
    try:
        text = json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"{flag}: gate results must be JSON objects: {e}") from e
    if len(text) > MAX_GATES_SIZE:
        raise InputError(f"{flag}: gate results are {len(text)} bytes of JSON; at most {MAX_GATES_SIZE}")
    return tuple(json.loads(text))


@dataclass(frozen=True)
class GoodRecord:
    cluster: str
    revision: str
    recorded_at: datetime
    recorded_by: str  # "Name <email>"
    reason: str
    gates: tuple[dict[str, Any], ...] = ()
    duration_s: float | None = None
    previous: str | None = None  # the good revision before this record

    def to_json(self) -> str:
        return json.dumps(
            {
                "cluster": self.cluster,
                "revision": self.revision,
                "recorded_at": self.recorded_at.isoformat(timespec="microseconds"),
                "recorded_by": self.recorded_by,
                "reason": self.reason,
                "gates": list(self.gates),
                "duration_s": self.duration_s,
                "previous": self.previous,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> GoodRecord | None:
        try:
            d = json.loads(line)
            return cls(
                cluster=str(d["cluster"]),
                revision=str(d["revision"]),
                recorded_at=datetime.fromisoformat(d["recorded_at"]),
                recorded_by=str(d.get("recorded_by", "")),
                reason=str(d.get("reason", "")),
                gates=tuple(g for g in (d.get("gates") or ()) if isinstance(g, dict)),
                duration_s=_duration(d.get("duration_s")),
                previous=d.get("previous") if isinstance(d.get("previous"), str) else None,
            )
        except (ValueError, KeyError, TypeError):
            return None  # a line fleet did not write


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    date: datetime
    author: str
    subject: str
    good: bool  # what the cluster's last good revision renders (that revision, or the change it runs)
    recorded: bool  # recorded good for this cluster at some point (audit notes)


def good_ref(cluster: str) -> str:
    cluster_file(cluster)  # validates the name: it becomes part of a ref
    return GOOD_PREFIX + cluster


def _records(text: str | None, cluster: str | None = None) -> list[GoodRecord]:
    out = [r for r in (GoodRecord.from_json(ln) for ln in (text or "").splitlines() if ln.strip()) if r]
    return sorted((r for r in out if cluster is None or r.cluster == cluster), key=lambda r: r.recorded_at)


def get_good(repo: GitRepo | str | Path, cluster: str) -> GoodRecord | None:
    """The cluster's last good revision and its audit record; None when none was recorded."""
    g = open_repo(repo)
    sha = g.read_ref(good_ref(cluster))
    if sha is None:
        return None
    mine = [r for r in _records(g.note_show(sha), cluster) if r.revision == sha]
    if mine:
        return mine[-1]
    when = g.log((), rev=sha, max_count=1)[0].date
    return GoodRecord(cluster, sha, when, "unknown", "(no audit note: the ref was moved outside fleet)")


def record_good(
    repo: GitRepo | str | Path,
    cluster: str,
    revision: str,
    *,
    reason: str,
    gates: Sequence[dict[str, Any]] = (),
    duration_s: float | None = None,
) -> GoodRecord:
    """Move the cluster's last good to ``revision`` and append the audit note; safe under concurrency."""
    problem = text_problem(reason)
    if problem:
        raise InputError(f"--reason: {problem}")
    check_duration(duration_s)
    gate_list = check_gate_results(gates)
    g = open_repo(repo)
    ref = good_ref(cluster)
    sha = g.resolve(revision)
    layout = layout_at(g, sha)
    if g.read_file(sha, cluster_file(cluster, layout)) is None:
        raise NotFound(
            f'cluster "{cluster}" is not in {layout.registry}/ at {sha[:12]}',
            hint="a cluster can only be good at a revision that registers it",
        )
    from fleet.verify import require

    require(g, sha)  # fleet.yaml's verify: a commit that does not verify is never recorded good
    name, email = g.identity()
    for key, value in (("user.name", name), ("user.email", email)):
        problem = text_problem(value, 256, echo=False)
        if problem:  # it goes into the audit note, pushed for everyone to read
            raise InputError(f"git config {key} {problem}", hint=f"git config {key} 'a plain value'")
    with g.lock():
        old = g.read_ref(ref)
        record = GoodRecord(
            cluster,
            sha,
            datetime.now(UTC),
            f"{name} <{email}>",
            reason,
            gate_list,
            duration_s,
            old,
        )
        before = g.note_show(sha)
        g.note_write(sha, (before or "").rstrip("\n") + ("\n" if before else "") + record.to_json() + "\n")
        try:
            g.update_ref(ref, sha, old, message=f"fleet good {cluster}: {reason}"[:200])
        except Exception:
            if before is None:
                g.note_remove(sha)
            else:
                g.note_write(sha, before)
            raise
    return record


def audit_trail(repo: GitRepo | str | Path, cluster: str | None = None) -> list[GoodRecord]:
    """Every good record (of ``cluster``, or all), oldest first."""
    g = open_repo(repo)
    out: list[GoodRecord] = []
    for text in g.notes().values():
        out.extend(_records(text, cluster))
    return sorted(out, key=lambda r: r.recorded_at)


def history(repo: GitRepo | str | Path, cluster: str, limit: int = 50) -> list[HistoryEntry]:
    """Commits that changed what ``cluster`` renders, newest first, marking good ones.

    "What it renders" is its registry file plus every path its overlay reads (the overlay, base,
    and what their kustomizations reference), as of HEAD; for a cluster of a Flux directory, every path
    the expanded tree reads.
    """
    g = open_repo(repo)
    head = g.resolve("HEAD")
    registry = load_registry(g, head)
    spec = registry.get(cluster)
    if spec.source is not None:
        from fleet.rendering.fluxrender import flux_inputs

        paths = flux_inputs(g, head, spec)
    else:
        paths = inputs(g, spec.environment, head, registry.layout)
    watched = [*paths, cluster_file(cluster, registry.layout)]
    entries = g.log(watched, rev=head, max_count=limit)
    good_sha = g.read_ref(good_ref(cluster))
    effective = None
    if good_sha is not None:
        runs = g.log(watched, rev=good_sha, max_count=1)
        effective = runs[0].revision if runs else good_sha
    recorded = {r.revision for r in audit_trail(g, cluster)}
    return [
        HistoryEntry(e.revision, e.date, e.author, e.subject, e.revision == effective, e.revision in recorded)
        for e in entries
    ]
