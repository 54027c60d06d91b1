"""Registry writes only on fleet.yaml's branch, environment failures as clear input errors, no secret in
Git or commit subjects, credentials never passed on from a remote URL (issue 12)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fleet.adapters.git import GitRepo
from fleet.errors import InputError, Unwritable
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, init_repo, set_cluster
from fleet.registry.model import url_problem
from tests.helpers import git, git_state, new_fleet_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})


def test_writes_refuse_a_detached_head_and_another_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    before = git_state(repo)
    with pytest.raises(InputError, match=r'^HEAD is detached; fleet writes the registry only on branch "main"'):
        add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))
    assert git_state(repo) == before
    git(repo, "switch", "-q", "-c", "feature")
    with pytest.raises(InputError, match=r'the checked-out branch is "feature"'):
        set_cluster(repo, "eu-1", ClusterUpdate(wave=2))
    git(repo, "switch", "-q", "main")
    add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))


@pytest.mark.parametrize("lock", ["index.lock", "HEAD.lock", "refs/heads/main.lock"])
def test_a_stale_git_lock_is_a_clear_refusal_before_anything_is_written(repo: Path, lock: str) -> None:
    (repo / ".git" / lock).write_text("")
    before = git_state(repo)
    with pytest.raises(Unwritable, match=rf"{lock} exists: another git process is running, or one crashed"):
        add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))
    (repo / ".git" / lock).unlink()
    assert git_state(repo) == before


def test_a_read_only_repository_is_unwritable_not_an_internal_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def read_only(path: object, *args: object, **kwargs: object) -> int:
        if str(path).endswith("fleet.lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(Unwritable, match=r"cannot write .*fleet.lock .*Read-only file system"):
        add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))


def test_a_variable_value_never_reaches_a_commit_message(repo: Path) -> None:
    r = set_cluster(repo, "eu-1", ClusterUpdate(vars={"DB_PASSWORD": "hunter2-s3cret"}))
    assert r.message == "Set cluster eu-1: vars.DB_PASSWORD"
    assert "hunter2" not in git(repo, "log", "--format=%B", "-n", "1")


def test_subjects_fleet_wrote_before_show_variable_names_only(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "Set cluster eu-1: vars.TOKEN=abc, def, wave 0 -> 1")
    with GitRepo.open(repo) as g:
        assert g.log(max_count=1)[0].subject == "Set cluster eu-1: vars.TOKEN, wave 0 -> 1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:TOKEN@git.example.com/org/repo.git", "https://git.example.com/org/repo.git"),
        ("https://TOKEN@github.com/org/repo", "https://github.com/org/repo"),
        ("ssh://git:pw@host/org/repo", "ssh://git@host/org/repo"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
)
def test_a_remote_url_is_passed_on_without_credentials(repo: Path, url: str, shown: str) -> None:
    git(repo, "remote", "add", "origin", url)
    with GitRepo.open(repo) as g:
        assert g.remote_url("origin") == shown
    assert url in git(repo, "remote", "get-url", "origin")  # git's own config keeps what git uses


@pytest.mark.parametrize(
    "url",
    [
        "https://user:TOKEN@host/org/repo.git",
        "https://TOKEN@host/org/repo.git",
        "http://u:p@host/r",
        "ssh://git:pw@host/r",
        "git:pw@host:org/repo.git",
        "https://host/r.git?access_token=abc",
        "https://host/r.git?private_token=abc",
    ],
)
def test_init_refuses_credentials_in_the_remote_and_writes_nothing(tmp_path: Path, url: str) -> None:
    assert url_problem(url)
    with pytest.raises(InputError, match=r"^--remote: the URL holds") as e:
        init_repo(tmp_path / "x", remote_url=url)
    assert "TOKEN" not in e.value.message and "abc" not in e.value.message
    assert not (tmp_path / "x").exists()


def test_a_remote_url_is_stored_quoted(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "x", remote_url="https://h/x # not: a comment").root
    assert 'url: "https://h/x # not: a comment"' in (root / "fleet.yaml").read_text()
