"""fleet.adapters.git.Snapshot: a revision resolved once, read as the repository reads it, each path and blob
asked of Git once; a name (a branch) looked up again each time, since it moves. Real repositories in tmp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.adapters.git import GitRepo
from fleet.errors import InputError, NotFound
from tests.helpers import commit_file, git, new_fleet_repo


@pytest.fixture
def g(tmp_path: Path) -> GitRepo:
    return GitRepo.open(new_fleet_repo(tmp_path, clusters={"eu-1": "prod"}))


def test_a_snapshot_reads_what_the_repository_reads_at_its_commit(g: GitRepo, tmp_path: Path) -> None:
    snap = g.snapshot("main")
    head = git(g.root, "rev-parse", "HEAD").strip()
    assert (snap.commit, snap.tree) == (head, git(g.root, "rev-parse", "HEAD^{tree}").strip())
    for path in ("fleet.yaml", "clusters/eu-1.yaml", "base", "nope", "environments/prod/kustomization.yaml"):
        assert snap.read_file(path) == g.read_file(head, path)
        assert snap.list_dir(path) == g.list_dir(head, path)
        assert snap.tree_id(path) == (None if path == "nope" else git(g.root, "rev-parse", f"HEAD:{path}").strip())
        assert snap.entry(path) == g.entry(head, path)
    assert snap.tree_id() == snap.tree and snap.entry("") is not None
    a, b = tmp_path / "a", tmp_path / "b"
    snap.extract(a, ["base", "environments/prod"])
    g.extract(head, b, ["base", "environments/prod"])
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    with pytest.raises(InputError, match="leaves the repository"):
        snap.resolve_path("base", "../../etc")


def test_a_commit_id_is_looked_up_once_and_a_branch_each_time(g: GitRepo) -> None:
    snap = g.snapshot("HEAD")
    assert g.snapshot(snap) is snap and g.snapshot(snap.commit) is snap and g.resolve(snap.commit) == snap.commit
    assert g.lookups() == {"HEAD": 1}
    new = commit_file(g.root, "base/extra.yaml", "v: 1\n")
    moved = g.snapshot("HEAD")
    assert moved.commit == new and moved.read_file("base/extra.yaml") == "v: 1\n"
    assert snap.read_file("base/extra.yaml") is None  # the old snapshot is its commit's, forever
    assert g.lookups() == {"HEAD": 2}
    with pytest.raises(NotFound, match="not found"):
        g.snapshot("nope")


def test_a_blob_two_revisions_share_is_read_once(g: GitRepo) -> None:
    old = g.snapshot("HEAD")
    commit_file(g.root, "base/extra.yaml", "v: 1\n")
    new = g.snapshot("HEAD")
    for _ in range(3):
        assert old.read_file("clusters/eu-1.yaml") == new.read_file("clusters/eu-1.yaml")
        assert g.read_file(new.commit, "fleet.yaml") == old.read_file("fleet.yaml")
    stats = g.stats()
    assert stats["resolve"] == 2 and stats["object"] > 0 and stats["object_reread"] == 0, stats


def test_a_file_that_is_not_utf8_is_refused_naming_the_commit(g: GitRepo) -> None:
    target = g.root / "base" / "bin.yaml"
    target.write_bytes(b"\xff\xfe\n")
    git(g.root, "add", "base/bin.yaml")
    git(g.root, "commit", "-q", "-m", "binary")
    snap = g.snapshot("HEAD")
    with pytest.raises(InputError, match=f"base/bin.yaml at {snap.commit[:12]} is not UTF-8 text"):
        snap.read_file("base/bin.yaml")
    assert os.path.exists(target)
