"""``fleet push`` / ``fleet pull``: carry last-good refs (``refs/fleet/*``), the audit notes
(``refs/notes/fleet``) and the drill evidence (``refs/notes/fleet-drills``, :mod:`fleet.drills`) to and from
the remote, plus the branch on push.

Push is atomic: the branch, the good refs and the notes land together or not at all. The notes are
pushed without force, so a push is refused while the remote holds records this clone has not pulled;
pull merges the notes line by line (no record is lost) and then, per cluster, takes the good revision
of the newest record. Good refs are then pushed as they are here, which is what pull settled, each as a
compare-and-swap (:func:`_leases`): a good ref that moved on the remote meanwhile is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet.adapters.git import NOTES_REF, GitRepo
from fleet.drills import DRILLS_REF
from fleet.errors import GitError, InputError
from fleet.good import GOOD_PREFIX, audit_trail
from fleet.registry.load import FLEET_FILE, open_repo, parse_settings, read_worktree

__all__ = ["PullResult", "PushResult", "pull", "push", "refused_good"]


@dataclass(frozen=True)
class RefChange:
    ref: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class PushResult:
    remote: str
    branch: str
    refs: tuple[str, ...]  # what was offered
    updated: tuple[str, ...]  # what the remote did not have yet
    up_to_date: bool


@dataclass(frozen=True)
class PullResult:
    remote: str
    notes_merged: bool
    changes: tuple[RefChange, ...]
    kept_local: tuple[str, ...]  # good refs where this clone's record is newer than the remote's


def _remote(g: GitRepo, remote: str | None) -> str:
    if remote:
        return remote
    return parse_settings(read_worktree(g.root, FLEET_FILE)).git.remote


def push(repo: GitRepo | str | Path, remote: str | None = None) -> PushResult:
    g = open_repo(repo)
    name = _remote(g, remote)
    branch = g.branch()
    if branch is None:
        raise InputError("HEAD is detached; check out the branch to push", hint="git switch main")
    specs = [f"refs/heads/{branch}:refs/heads/{branch}"]
    ours = g.list_refs("refs/fleet/")
    leases = _leases(g, name, ours)
    if ours:
        specs.append("+refs/fleet/*:refs/fleet/*")
    for notes in (NOTES_REF, DRILLS_REF):
        if g.read_ref(notes) is not None or g.list_refs(notes):
            specs.append(f"{notes}:{notes}")
    out = g.push(name, specs, atomic=True, leases=leases)
    updated = []
    for line in out.splitlines():
        flag, _, rest = line.partition("\t")
        if flag in ("*", "+", " ") and ":" in rest:
            updated.append(rest.split("\t", 1)[0].split(":", 1)[1])
    return PushResult(name, branch, tuple(specs), tuple(updated), not updated)


def _leases(g: GitRepo, remote: str, ours: dict[str, str]) -> dict[str, str | None]:
    """The compare-and-swap of the good refs: each is pushed only if the remote still holds what it held
    when it was read here (``--force-with-lease``), and a good ref that moved on the remote to a revision
    this clone has no record of (someone else's move, not pulled yet) is refused before anything is
    pushed: a push never overwrites another operator's last good."""
    if not ours:
        return {}
    theirs = g.ls_remote(remote, ["refs/fleet/*"])
    known: dict[str, set[str]] = {}
    for rec in audit_trail(g):
        known.setdefault(rec.cluster, set()).add(rec.revision)
    leases: dict[str, str | None] = {}
    for ref, oid in sorted(ours.items()):
        there = theirs.get(ref)
        if there is not None and there != oid and ref.startswith(GOOD_PREFIX):
            cluster = ref.removeprefix(GOOD_PREFIX)
            if there not in known.get(cluster, set()):
                raise GitError(
                    f'the last good of cluster "{cluster}" moved on {remote} to {there[:12]} meanwhile '
                    f"(this clone has {oid[:12]}); not overwritten",
                    hint="run `fleet pull`, then push again",
                )
        leases[ref] = there
    return leases


def pull(repo: GitRepo | str | Path, remote: str | None = None) -> PullResult:
    g = open_repo(repo)
    name = _remote(g, remote)
    stage = f"refs/fleet-remote/{name}/"
    theirs = g.ls_remote(name, ["refs/fleet/*", NOTES_REF, DRILLS_REF])
    specs = [f"+{ref}:{stage}{ref.removeprefix('refs/')}" for ref in theirs]
    if specs:
        g.fetch(name, specs)
    changes: list[RefChange] = []
    kept: list[str] = []
    merged = False
    try:
        with g.lock():
            for notes in (NOTES_REF, DRILLS_REF):  # every line of both sides kept
                remote_notes = g.read_ref(f"{stage}{notes.removeprefix('refs/')}")
                if remote_notes is None:
                    continue
                local_notes = g.read_ref(notes)
                if local_notes is None:
                    g.update_ref(notes, remote_notes, None, message=f"fleet pull {name}")
                elif local_notes != remote_notes:
                    g.notes_merge(f"{stage}{notes.removeprefix('refs/')}", ref=notes)
                merged = merged or local_notes != remote_notes
            newest = {}
            for rec in audit_trail(g):
                newest[rec.cluster] = rec.revision  # oldest first, so the newest wins
            for staged, oid in g.list_refs(f"{stage}fleet/").items():
                ref = "refs/" + staged.removeprefix(stage)
                local = g.read_ref(ref)
                if local == oid:
                    continue
                cluster = ref.removeprefix(GOOD_PREFIX)
                if local is not None and ref.startswith(GOOD_PREFIX) and newest.get(cluster) != oid:
                    kept.append(cluster)
                    continue
                g.update_ref(ref, oid, local, message=f"fleet pull {name}")
                changes.append(RefChange(ref, local, oid))
    finally:
        g.delete_refs(stage)
    return PullResult(name, merged, tuple(changes), tuple(kept))


def refused_good(repo: GitRepo | str | Path) -> list[tuple[str, str, str]]:
    """The last-good refs the signature policy in force would refuse, as (cluster, revision, why): a remote
    can hold any ref, and ``fleet pull`` says which ones a rebuild would refuse (:mod:`fleet.verify`)."""
    from fleet.errors import UnverifiedCommit
    from fleet.verify import policy, verify

    g = open_repo(repo)
    pol = policy(g)
    if pol is None:
        return []
    out = []
    for ref, sha in sorted(g.list_refs(GOOD_PREFIX).items()):
        try:
            verify(g, sha, pol)
        except UnverifiedCommit as e:
            out.append((ref.removeprefix(GOOD_PREFIX), sha, e.message))
    return out
