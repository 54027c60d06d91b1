"""Last known good: refs/fleet/good/<cluster>, audit notes, history; safe with parallel writers."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.errors import InputError, NotFound
from fleet.good import audit_trail, get_good, history, record_good
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, set_cluster
from tests.helpers import commit_file, git, git_state, new_fleet_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_fleet_repo(tmp_path, clusters={"eu-1": "prod", "us-1": "staging"})


def test_record_and_get(repo: Path) -> None:
    assert get_good(repo, "eu-1") is None
    head = git(repo, "rev-parse", "HEAD").strip()
    rec = record_good(
        repo, "eu-1", "HEAD", reason="gates passed", gates=[{"gate": "rollout", "ok": True}], duration_s=12.5
    )
    assert (rec.cluster, rec.revision, rec.recorded_by) == ("eu-1", head, "Fleet Tester <tester@fleet.test>")
    assert rec.previous is None
    assert git(repo, "rev-parse", "refs/fleet/good/eu-1").strip() == head
    assert get_good(repo, "eu-1") == rec
    note = git(repo, "notes", "--ref=refs/notes/fleet", "show", head)
    line = json.loads(note)
    assert line["cluster"] == "eu-1" and line["reason"] == "gates passed" and line["duration_s"] == 12.5
    assert line["gates"] == [{"gate": "rollout", "ok": True}]
    assert git(repo, "status", "--porcelain") == ""  # nothing in the working tree


def test_records_move_the_ref_and_keep_the_trail(repo: Path) -> None:
    old = git(repo, "rev-parse", "HEAD~1").strip()
    head = git(repo, "rev-parse", "HEAD").strip()
    record_good(repo, "eu-1", "HEAD~1", reason="first")
    second = record_good(repo, "eu-1", "HEAD", reason="second")
    assert second.previous == old
    back = record_good(repo, "eu-1", old, reason="rollback")  # moving back is allowed
    assert back.previous == head
    assert get_good(repo, "eu-1") == back
    assert [r.reason for r in audit_trail(repo, "eu-1")] == ["first", "second", "rollback"]


def test_two_clusters_share_a_commits_note(repo: Path) -> None:
    record_good(repo, "eu-1", "HEAD", reason="a")
    record_good(repo, "us-1", "HEAD", reason="b")
    note = git(repo, "notes", "--ref=refs/notes/fleet", "show", "HEAD").splitlines()
    assert [json.loads(x)["cluster"] for x in note] == ["eu-1", "us-1"]
    assert get_good(repo, "eu-1").reason == "a"  # type: ignore[union-attr]
    assert get_good(repo, "us-1").reason == "b"  # type: ignore[union-attr]


def test_refusals_change_nothing(repo: Path) -> None:
    state = git_state(repo)
    with pytest.raises(NotFound, match='revision "nope" not found'):
        record_good(repo, "eu-1", "nope", reason="x")
    with pytest.raises(NotFound, match='cluster "eu-1" is not in clusters/ at'):
        record_good(repo, "eu-1", "HEAD~2", reason="x")  # the commit before eu-1 was added
    for bad in ("../x", "a/b", "EU"):
        with pytest.raises(InputError, match="not a valid cluster name"):
            record_good(repo, bad, "HEAD", reason="x")
    assert git_state(repo) == state


def test_a_ref_moved_outside_fleet_still_reads(repo: Path) -> None:
    git(repo, "update-ref", "refs/fleet/good/eu-1", "HEAD")
    rec = get_good(repo, "eu-1")
    assert rec is not None and rec.recorded_by == "unknown" and "no audit note" in rec.reason


RECORDER = """
import sys
from fleet.good import record_good
repo, cluster, rev, reason = sys.argv[1:5]
record_good(repo, cluster, rev, reason=reason)
"""


def test_parallel_recorders_lose_nothing(repo: Path) -> None:
    for i in range(3):
        add_cluster(repo, ClusterSpec(name=f"c{i}", environment="dev"))
    jobs = [
        ("eu-1", "HEAD"),
        ("us-1", "HEAD"),
        ("c0", "HEAD"),
        ("c1", "HEAD"),
        ("c2", "HEAD"),
        ("eu-1", "HEAD~1"),
        ("eu-1", "HEAD~2"),
        ("us-1", "HEAD~3"),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECORDER, str(repo), c, rev, f"job{i}"],
            env=dict(os.environ),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (c, rev) in enumerate(jobs)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trail = audit_trail(repo)
    assert sorted(r.reason for r in trail) == sorted(f"job{i}" for i in range(len(jobs)))
    for cluster in ("eu-1", "us-1", "c0", "c1", "c2"):
        good = get_good(repo, cluster)
        assert good is not None and good.reason in {
            f"job{i}" for i, (c, _) in enumerate(jobs) if c == cluster
        }
    # the lock orders the records: each one's "previous" is the revision of the record before it
    for cluster in ("eu-1", "us-1"):
        chain = [r for r in trail if r.cluster == cluster]
        assert chain[0].previous is None
        assert all(b.previous == a.revision for a, b in itertools.pairwise(chain))
        assert get_good(repo, cluster) == chain[-1]


def test_history_lists_what_changes_the_cluster_and_marks_good(repo: Path) -> None:
    c_base = commit_file(
        repo, "base/configmap.yaml", (repo / "base/configmap.yaml").read_text() + "  EXTRA: x\n", "tweak base"
    )
    commit_file(repo, "environments/dev/hello.yaml", "# dev only\n", "tweak dev")  # not eu-1's overlay
    commit_file(repo, "docs/readme.md", "docs\n", "docs")  # nothing it renders
    set_cluster(repo, "eu-1", ClusterUpdate(wave=2))
    c_prod = commit_file(
        repo,
        "environments/prod/hello.yaml",
        (repo / "environments/prod/hello.yaml").read_text() + "# note\n",
        "tweak prod",
    )
    record_good(repo, "eu-1", c_base, reason="base ok")
    record_good(repo, "eu-1", "HEAD~2", reason="docs commit: renders what 'tweak base' renders")
    entries = history(repo, "eu-1")
    subjects = [e.subject for e in entries]
    assert subjects == [
        "tweak prod",
        "Set cluster eu-1: wave 0 -> 2",
        "tweak base",
        "Add cluster eu-1 (env prod, provider local, region local, wave 0)",
        "Initialize fleet repo fleet",
    ]
    assert entries[0].revision == c_prod
    assert [e.subject for e in entries if e.good] == ["tweak base"]
    assert [e.subject for e in entries if e.recorded] == ["tweak base"]
    assert len(history(repo, "eu-1", limit=2)) == 2
    with pytest.raises(NotFound):
        history(repo, "nope")
