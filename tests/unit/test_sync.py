"""fleet push / pull: the branch, last-good refs and audit notes travel with the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import GitError, InputError
from fleet.good import audit_trail, get_good, record_good
from fleet.registry import ClusterSpec, add_cluster
from fleet.sync import pull, push
from tests.helpers import git, new_fleet_repo


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "remote.git")
    return tmp_path / "remote.git"


@pytest.fixture
def alice(tmp_path: Path, remote: Path) -> Path:
    root = new_fleet_repo(tmp_path / "alice", clusters={"eu-1": "prod", "us-1": "staging"})
    git(root, "remote", "add", "origin", str(remote))
    return root


def clone(remote: Path, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", str(remote), dest.name)
    return dest


def test_push_carries_branch_refs_and_notes(alice: Path, remote: Path, tmp_path: Path) -> None:
    rec = record_good(alice, "eu-1", "HEAD", reason="gates passed")
    result = push(alice)
    assert not result.up_to_date
    assert set(result.updated) == {"refs/heads/main", "refs/fleet/good/eu-1", "refs/notes/fleet"}
    assert git(remote, "rev-parse", "refs/fleet/good/eu-1").strip() == rec.revision
    assert push(alice).up_to_date

    bob = clone(remote, tmp_path / "bob")
    assert get_good(bob, "eu-1") is None  # a plain clone does not fetch refs/fleet/*
    pulled = pull(bob)
    assert [c.ref for c in pulled.changes] == ["refs/fleet/good/eu-1"]
    assert get_good(bob, "eu-1") == rec
    assert git(bob, "for-each-ref", "refs/fleet-remote/") == ""  # staging refs cleaned up


def test_push_is_refused_until_remote_records_are_pulled(alice: Path, remote: Path, tmp_path: Path) -> None:
    record_good(alice, "eu-1", "HEAD", reason="alice 1")
    push(alice)
    bob = clone(remote, tmp_path / "bob")
    pull(bob)
    record_good(bob, "us-1", "HEAD", reason="bob")
    push(bob)

    record_good(alice, "eu-1", "HEAD~1", reason="alice 2")
    before = git(remote, "for-each-ref")
    with pytest.raises(GitError, match="rejected") as e:
        push(alice)
    assert e.value.hint == "run `fleet pull`, then push again"
    assert git(remote, "for-each-ref") == before  # atomic: nothing moved

    pulled = pull(alice)
    assert pulled.notes_merged
    assert [c.ref for c in pulled.changes] == ["refs/fleet/good/us-1"]
    assert {r.reason for r in audit_trail(alice)} == {"alice 1", "bob", "alice 2"}
    assert get_good(alice, "eu-1").reason == "alice 2"  # type: ignore[union-attr]
    push(alice)
    pull(bob)
    assert {r.reason for r in audit_trail(bob)} == {"alice 1", "bob", "alice 2"}
    assert get_good(bob, "eu-1").reason == "alice 2"  # type: ignore[union-attr]


def test_pull_keeps_a_newer_local_record(alice: Path, remote: Path, tmp_path: Path) -> None:
    record_good(alice, "eu-1", "HEAD", reason="old")
    push(alice)
    bob = clone(remote, tmp_path / "bob")
    record_good(bob, "eu-1", "HEAD~1", reason="newer, not pushed")
    result = pull(bob)
    assert result.kept_local == ("eu-1",)
    assert get_good(bob, "eu-1").reason == "newer, not pushed"  # type: ignore[union-attr]


def test_pull_from_an_empty_remote_is_a_no_op(alice: Path) -> None:
    result = pull(alice)
    assert result.changes == () and not result.notes_merged


def test_push_needs_a_remote_and_a_branch(tmp_path: Path) -> None:
    root = new_fleet_repo(tmp_path)
    with pytest.raises(InputError, match='git remote "origin" is not configured'):
        push(root)
    add_cluster(root, ClusterSpec(name="a", environment="dev"))
    git(root, "checkout", "-q", "--detach")
    with pytest.raises(InputError, match="HEAD is detached"):
        push(root, "origin")


def test_a_stale_push_never_overwrites_a_good_ref_that_moved_on_the_remote(alice: Path, remote: Path) -> None:
    """Compare-and-swap of last good: someone moved eu-1's good ref on the remote (without an audit note this
    clone could be refused on); alice, who never saw that move, pushes hers: refused, the remote's kept."""
    record_good(alice, "eu-1", "HEAD~1", reason="alice 1")
    push(alice)
    head, previous = (git(alice, "rev-parse", r).strip() for r in ("HEAD", "HEAD~1"))
    git(alice, "push", "-q", "origin", f"+{head}:refs/fleet/good/eu-1")  # a move alice's clone never saw
    git(alice, "update-ref", "refs/fleet/good/eu-1", previous)
    record_good(alice, "eu-1", "HEAD~1", reason="alice 2")
    before = git(remote, "for-each-ref")
    with pytest.raises(GitError, match='last good of cluster "eu-1" moved on origin') as e:
        push(alice)
    assert e.value.hint == "run `fleet pull`, then push again"
    assert git(remote, "for-each-ref") == before
    assert git(remote, "rev-parse", "refs/fleet/good/eu-1").strip() == head

    # a remote value this clone has a record of (made here, or pulled) is replaced as before
    record_good(alice, "eu-1", "HEAD", reason="alice 3")
    record_good(alice, "eu-1", "HEAD~1", reason="alice 4")
    push(alice)
    assert git(remote, "rev-parse", "refs/fleet/good/eu-1").strip() == previous
