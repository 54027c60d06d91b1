"""How ``fleet diff --base`` prints: a text report (the default), the JSON envelope, and Markdown for a
pull-request comment (a summary table first, each cluster's details folded in ``<details>``).

Everything shown comes from the fleet repo, which is untrusted (anyone's pull request): in Markdown every
name and message is HTML-escaped and every diff sits in a code fence longer than any run of backticks it
holds, so a change cannot close the fence or forge the comment around it.
"""

from __future__ import annotations

import html
import re
from typing import Any

from fleet.output import API_VERSION
from fleet.rendering.revdiff import ClusterChange, ObjectChange, RevisionDiff

__all__ = ["GITHUB_COMMENT_LIMIT", "as_data", "markdown", "text"]

GITHUB_COMMENT_LIMIT = 65536  # characters GitHub accepts in one pull-request comment
_TICKS = re.compile(r"`+")


def as_data(d: RevisionDiff) -> dict[str, Any]:
    """The ``-o json`` envelope: ``ClusterDiffList``, one item per selected cluster (by wave, then name)."""
    counts = {s: sum(1 for c in d.clusters if c.status == s)
              for s in ("changed", "added", "removed", "failed", "unchanged")}
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterDiffList",
        "metadata": {"base": d.base, "head": d.head, "changes": d.changes, **counts, "rendered": d.rendered,
                     "duration_s": d.duration_s},
        "items": [
            {
                "cluster": c.cluster, "wave": c.wave, "environment": c.environment, "status": c.status,
                "rendered": c.rendered, "added": c.added, "removed": c.removed, "changed": c.changed,
                "unchanged": c.unchanged, "error": c.error,
                "objects": [{"object": o.object, "change": o.change, "secret": o.secret, "diff": o.diff}
                            for o in c.objects],
            }
            for c in d.clusters
        ],
    }


def _summary(c: ClusterChange) -> str:
    if c.status == "failed":
        return f"failed: {c.error}"
    parts = [f"{n} {k}" for k, n in (("added", c.added), ("removed", c.removed), ("changed", c.changed)) if n]
    what = ", ".join(parts) or "no object changes"
    if c.status == "added":
        return f"added to the registry ({what})"
    if c.status == "removed":
        return f"removed from the registry ({what})"
    return what


def _object_line(o: ObjectChange) -> str:
    return f"{o.change} {o.object}" + (" (a secret: values not shown)" if o.secret else "")


def _total(d: RevisionDiff) -> str:
    moved = [c for c in d.clusters if c.status != "unchanged"]
    same = len(d.clusters) - len(moved)
    if not moved:
        many = f"{len(d.clusters)} clusters render" if len(d.clusters) != 1 else "1 cluster renders"
        return f"no change: {many} the same at {d.base[:12]} and {d.head[:12]} ({d.rendered} rendered)"
    extra = [f"{n} {s}" for s in ("added", "removed", "failed")
             if (n := sum(1 for c in moved if c.status == s))]
    return (f"{len(moved)} of {len(d.clusters)} clusters change between {d.base[:12]} and {d.head[:12]}"
            + (f" ({', '.join(extra)})" if extra else "") + f", {same} unchanged; {d.rendered} rendered")


def text(d: RevisionDiff) -> str:
    """The default output: the clusters that change, by wave, each object with its diff; then the totals."""
    out: list[str] = []
    wave = None
    for c in d.clusters:
        if c.status == "unchanged":
            continue
        if c.wave != wave:
            wave = c.wave
            out.append(f"wave {wave}\n")
        out.append(f"  cluster {c.cluster} ({c.environment}): {_summary(c)}\n")
        for o in c.objects:
            out.append(f"    {_object_line(o)}\n")
            if o.diff:
                out.extend(f"      {line}" if line.strip() else "\n" for line in o.diff.splitlines(keepends=True))
                if not o.diff.endswith("\n"):
                    out.append("\n")
    out.append(_total(d) + "\n")
    return "".join(out)


def _cell(value: object) -> str:
    """A table cell of untrusted text: escaped, one line, no column break."""
    return html.escape(" ".join(str(value).split())).replace("|", "&#124;")


def _fenced(body: str, lang: str = "diff") -> str:
    longest = max((len(m) for m in _TICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body if body.endswith(chr(10)) else body + chr(10)}{fence}\n"


def _details(c: ClusterChange) -> str:
    lines = [f"<details>\n<summary>wave {c.wave} · <b>{_cell(c.cluster)}</b> ({_cell(c.environment)}): "
             f"{_cell(_summary(c))}</summary>\n\n"]
    if c.status == "failed":
        lines.append(_fenced(c.error or "", "text"))
    for o in c.objects:
        lines.append(f"- {o.change} <code>{_cell(o.object)}</code>"
                     + (" (a secret: values not shown)" if o.secret else "") + "\n")
        if o.diff:
            lines.append("\n" + _fenced(o.diff) + "\n")
    lines.append("\n</details>\n")
    return "".join(lines)


def markdown(d: RevisionDiff, limit: int = GITHUB_COMMENT_LIMIT - 1536) -> str:
    """A pull-request comment: a title, the totals, a summary table of the clusters that change (by wave),
    then each one's objects and diffs folded; details that would pass ``limit`` characters are left out,
    with a line saying so (GitHub refuses a comment longer than 65,536)."""
    moved = [c for c in d.clusters if c.status != "unchanged"]
    head = [f"### fleet diff `{d.base[:12]}`..`{d.head[:12]}`\n\n", f"{_total(d)}\n"]
    if not moved:
        return "".join(head)
    head.append("\n| wave | cluster | environment | change | added | removed | changed |\n")
    head.append("|---:|---|---|---|---:|---:|---:|\n")
    for c in moved:
        change = f"failed: {c.error}" if c.status == "failed" else c.status
        head.append(f"| {c.wave} | {_cell(c.cluster)} | {_cell(c.environment)} | {_cell(change)} | {c.added} "
                    f"| {c.removed} | {c.changed} |\n")
    body = "".join(head) + "\n"
    left_out = 0
    for c in moved:
        part = _details(c)
        if len(body) + len(part) > limit:
            left_out += 1
            continue
        body += part
    if left_out:
        body += (f"\n_{left_out} clusters' details left out: the comment would pass GitHub's limit; "
                 f"`fleet diff --base {d.base[:12]} --head {d.head[:12]}` shows them._\n")
    return body
