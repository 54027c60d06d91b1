"""The git adapter: reading at revisions without the working tree, CAS refs, notes, the lock, errors."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest

from fleet.adapters.git import GitRepo
from fleet.errors import GitError, InputError, NotFound
from tests.helpers import commit_file, git, new_fleet_repo


@pytest.fixture
def g(tmp_path: Path) -> GitRepo:
    return GitRepo.open(new_fleet_repo(tmp_path))


def test_open_finds_the_repo_from_a_subdirectory(g: GitRepo) -> None:
    assert GitRepo.open(g.root / "base").root == g.root


def test_open_refuses_non_repos_and_bare_repos(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a git repository"):
        GitRepo.open(tmp_path)
    git(tmp_path, "init", "-q", "--bare", "b.git")
    with pytest.raises(InputError, match="bare repository"):
        GitRepo.open(tmp_path / "b.git")


def test_resolve(g: GitRepo) -> None:
    head = git(g.root, "rev-parse", "HEAD").strip()
    assert g.resolve("HEAD") == head == g.head()
    assert g.resolve(head[:8]) == head
    assert g.resolve("main") == head
    git(g.root, "tag", "-a", "v1", "-m", "v1")
    assert g.resolve("v1") == head  # annotated tags peel to the commit
    for bad in ("nope", "HEAD~9", "--all", "", head[:7] + "zz"):
        with pytest.raises(NotFound, match="not found"):
            g.resolve(bad)
    with pytest.raises(NotFound, match="is a tree, not a commit"):
        g.resolve("HEAD^{tree}")


def test_reads_at_a_revision_not_the_working_tree(g: GitRepo) -> None:
    first = g.head()
    assert first is not None
    commit_file(g.root, "base/extra.yaml", "v: 2\n")
    (g.root / "base" / "extra.yaml").write_text("v: uncommitted\n")
    assert g.read_file("HEAD", "base/extra.yaml") == "v: 2\n"
    assert g.read_file(first, "base/extra.yaml") is None
    assert g.read_file("HEAD", "base") is None  # a directory is not a file
    names = [e.name for e in g.list_dir("HEAD", "base")]
    assert names == sorted(names) and "extra.yaml" in names
    assert g.list_dir("HEAD", "nope") == []
    assert g.tree_id("HEAD", "base") != g.tree_id(first, "base")
    assert g.tree_id(first, "environments") == g.tree_id("HEAD", "environments")
    with pytest.raises(InputError, match="leaves the repository"):
        g.read_file("HEAD", "../etc/passwd")


def test_extract_writes_only_the_asked_paths(g: GitRepo, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (g.root / "base" / "deployment.yaml").write_text("dirty\n")
    g.extract("HEAD", dest, ["base", "fleet.yaml"])
    assert (dest / "base" / "deployment.yaml").read_text().startswith("apiVersion: apps/v1")
    assert (dest / "fleet.yaml").is_file()
    assert not (dest / "environments").exists()
    assert (g.root / "base" / "deployment.yaml").read_text() == "dirty\n"  # working tree untouched


def test_is_dirty_lists_changed_paths_under_the_given_ones(g: GitRepo) -> None:
    assert g.is_dirty(["clusters", "fleet.yaml"]) == []
    (g.root / "clusters" / "x.yaml").write_text("x")
    (g.root / "base" / "service.yaml").write_text("y")
    assert g.is_dirty(["clusters", "fleet.yaml"]) == ["clusters/x.yaml"]
    assert sorted(g.is_dirty(["."])) == ["base/service.yaml", "clusters/x.yaml"]


def test_update_ref_is_compare_and_swap(g: GitRepo) -> None:
    first = g.resolve("HEAD")
    head = commit_file(g.root, "docs/a.md", "a")
    g.update_ref("refs/fleet/good/x", head, None)
    assert g.read_ref("refs/fleet/good/x") == head
    with pytest.raises(GitError, match="moved while fleet was updating it"):
        g.update_ref("refs/fleet/good/x", first, None)  # expected absent, but it exists
    with pytest.raises(GitError):
        g.update_ref("refs/fleet/good/x", first, "1" * 40)  # wrong expectation
    g.update_ref("refs/fleet/good/x", None, head)
    assert g.read_ref("refs/fleet/good/x") is None


def test_notes_round_trip(g: GitRepo) -> None:
    head = g.resolve("HEAD")
    assert g.note_show(head) is None
    g.note_write(head, '{"a": 1}\n')
    assert g.note_show(head) == '{"a": 1}\n'
    assert g.notes() == {head: '{"a": 1}\n'}
    g.note_remove(head)
    assert g.note_show(head) is None


def test_the_lock_is_exclusive(g: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    refused = threading.Event()  # the other writer asked for the held lock and was refused
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        try:
            real_flock(fd, operation)
        except BlockingIOError:
            if threading.current_thread().name == "other-writer":
                refused.set()
            raise

    monkeypatch.setattr(fcntl, "flock", flock)

    def other() -> None:
        with GitRepo.open(g.root).lock():
            order.append("other")

    with g.lock():
        t = threading.Thread(target=other, name="other-writer")
        t.start()
        assert refused.wait(60), "the other writer never asked for the lock"
        order.append("first")
    t.join(60)
    assert not t.is_alive()
    assert order == ["first", "other"]
    with g.lock(), pytest.raises(GitError, match="held"), GitRepo.open(g.root).lock(timeout=0.1):
        pass


def test_log_filters_by_path(g: GitRepo) -> None:
    commit_file(g.root, "base/a.yaml", "a", "touch base")
    commit_file(g.root, "docs/x.md", "x", "touch docs")
    assert [e.subject for e in g.log(["base"], max_count=5)] == ["touch base", "Initialize fleet repo fleet"]
    entry = g.log(max_count=1)[0]
    assert (entry.subject, entry.author, entry.email) == ("touch docs", "Fleet Tester", "tester@fleet.test")


def test_push_to_a_missing_remote_is_input_error(g: GitRepo) -> None:
    with pytest.raises(InputError, match='git remote "origin" is not configured'):
        g.push("origin", ["refs/heads/main"])
