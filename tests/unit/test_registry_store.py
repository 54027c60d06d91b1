"""Writing the registry: fleet init, cluster add/set/remove as one commit each, refusals that change
nothing, and many writers at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.errors import DirtyTree, InputError, NotFound
from fleet.registry import (
    ClusterSpec,
    ClusterUpdate,
    add_cluster,
    dump_cluster,
    init_repo,
    load_registry,
    parse_cluster,
    remove_cluster,
    set_cluster,
)
from tests.helpers import commit_file, git, git_state, new_fleet_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_fleet_repo(tmp_path)


def test_init_creates_a_working_fleet_repo(tmp_path: Path) -> None:
    result = init_repo(tmp_path / "acme", remote_url="https://git.example.com/acme.git")
    root = result.root
    for f in (
        "fleet.yaml",
        "base/kustomization.yaml",
        "base/deployment.yaml",
        "base/service.yaml",
        "base/configmap.yaml",
        "environments/dev/kustomization.yaml",
        "environments/staging/kustomization.yaml",
        "environments/prod/kustomization.yaml",
        "clusters/README.md",
    ):
        assert (root / f).is_file(), f
    assert git(root, "log", "--format=%s").strip() == "Initialize fleet repo acme"
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "remote", "get-url", "origin").strip() == "https://git.example.com/acme.git"
    reg = load_registry(root, "HEAD")
    assert reg.settings.name == "acme"
    assert reg.settings.git.url == "https://git.example.com/acme.git"
    assert reg.environments == ("dev", "prod", "staging")
    # every overlay uses variables and a namespace
    for env in reg.environments:
        text = "".join(p.read_text() for p in (root / "environments" / env).iterdir())
        assert "${REPLICAS:=" in text and f"namespace: hello-{env}" in text


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty"):
        init_repo(tmp_path / "x")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["notes.txt"]


def test_init_in_an_empty_git_repo(tmp_path: Path) -> None:
    (tmp_path / "y").mkdir()
    git(tmp_path / "y", "init", "-q", "-b", "trunk")
    result = init_repo(tmp_path / "y", branch="trunk")
    assert git(result.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "trunk"


def test_init_refuses_bad_names(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a valid fleet name"):
        init_repo(tmp_path / "Bad_Name")
    assert not (tmp_path / "Bad_Name").exists()


def test_add_is_one_commit_with_the_users_identity(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    spec = ClusterSpec(
        name="eu-1",
        environment="prod",
        region="eu-west-1",
        wave=1,
        labels={"team": "web"},
        vars={"REPLICAS": "4"},
    )
    result = add_cluster(repo, spec)
    assert git(repo, "rev-parse", "HEAD").strip() == result.revision
    assert git(repo, "rev-parse", "HEAD~1").strip() == before
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn|%s").strip() == (
        "Fleet Tester <tester@fleet.test>|Fleet Tester|"
        "Add cluster eu-1 (env prod, provider local, region eu-west-1, wave 1)"
    )
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["clusters/eu-1.yaml"]
    assert git(repo, "status", "--porcelain") == ""
    assert parse_cluster((repo / "clusters/eu-1.yaml").read_text(), "clusters/eu-1.yaml") == spec


def test_add_leaves_other_work_alone(repo: Path) -> None:
    (repo / "base" / "service.yaml").write_text("# staged edit\n")
    git(repo, "add", "base/service.yaml")
    (repo / "notes.txt").write_text("untracked")
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod"))
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["clusters/eu-1.yaml"]
    status = git(repo, "status", "--porcelain")
    assert "M  base/service.yaml" in status and "?? notes.txt" in status


def test_dump_is_stable_and_minimal() -> None:
    text = dump_cluster(ClusterSpec(name="a", environment="dev", provider="gke",
                                    settings={"nodes": 3, "deletionProtection": True}))
    assert text == (
        "apiVersion: fleet.dev/v1\nkind: Cluster\nname: a\nenvironment: dev\nprovider: gke\n"
        "region: local\nwave: 0\nsettings:\n  nodes: 3\n  deletionProtection: true\n"
    )
    assert yaml.safe_load(text)["settings"] == {"nodes": 3, "deletionProtection": True}


def test_set_changes_fields_in_one_commit(repo: Path) -> None:
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod", labels={"team": "web"}, vars={"A": "1"}))
    result = set_cluster(
        repo,
        "eu-1",
        ClusterUpdate(
            wave=3, environment="staging", labels={"tier": "gold"}, remove_labels=("team",), vars={"B": "2"}
        ),
    )
    assert (
        result.message
        == "Set cluster eu-1: environment prod -> staging, wave 0 -> 3, -labels.team, labels.tier=gold, "
        "vars.B"  # a variable's value may be a secret: never in a commit message
    )
    spec = load_registry(repo, "HEAD").get("eu-1")
    assert (spec.environment, spec.wave, spec.labels, spec.vars) == (
        "staging",
        3,
        {"tier": "gold"},
        {"A": "1", "B": "2"},
    )
    assert git(repo, "status", "--porcelain") == ""


def test_set_refusals(repo: Path) -> None:
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod", wave=2))
    state = git_state(repo)
    with pytest.raises(InputError, match="nothing to change"):
        set_cluster(repo, "eu-1", ClusterUpdate())
    with pytest.raises(InputError, match="already has these values"):
        set_cluster(repo, "eu-1", ClusterUpdate(wave=2))
    with pytest.raises(InputError, match='has no key "x" to remove'):
        set_cluster(repo, "eu-1", ClusterUpdate(remove_vars=("x",)))
    with pytest.raises(InputError, match="--wave: Input should be less than or equal to 1000"):
        set_cluster(repo, "eu-1", ClusterUpdate(wave=5000))
    with pytest.raises(InputError, match='unknown environment "qa"'):
        set_cluster(repo, "eu-1", ClusterUpdate(environment="qa"))
    with pytest.raises(NotFound, match='cluster "eu-9" not found'):
        set_cluster(repo, "eu-9", ClusterUpdate(wave=1))
    assert git_state(repo) == state


def test_remove(repo: Path) -> None:
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod"))
    result = remove_cluster(repo, "eu-1")
    assert result.spec is None
    assert not (repo / "clusters" / "eu-1.yaml").exists()
    assert (repo / "clusters").is_dir()  # README.md keeps it
    assert git(repo, "log", "-1", "--format=%s").startswith("Remove cluster eu-1")
    assert git(repo, "status", "--porcelain") == ""
    with pytest.raises(NotFound):
        remove_cluster(repo, "eu-1")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (dict(name="eu-1", environment="prod"), 'cluster "eu-1" already exists'),
        (
            dict(name="eu-2", environment="qa"),
            'unknown environment "qa"; environments/ has: dev, prod, staging',
        ),
    ],
)
def test_add_refusals_change_nothing(repo: Path, spec: dict[str, str], error: str) -> None:
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod"))
    state = git_state(repo)
    with pytest.raises(InputError, match=error):
        add_cluster(repo, ClusterSpec(**spec))  # type: ignore[arg-type]
    assert git_state(repo) == state


def test_uncommitted_environment_is_explained(repo: Path) -> None:
    (repo / "environments" / "qa").mkdir()
    (repo / "environments" / "qa" / "kustomization.yaml").write_text("resources: [../../base]\n")
    with pytest.raises(InputError, match='environment "qa" exists in the working tree but is not committed'):
        add_cluster(repo, ClusterSpec(name="qa-1", environment="qa"))


@pytest.mark.parametrize("dirty", ["clusters/eu-1.yaml", "clusters/new.yaml", "fleet.yaml"])
def test_writes_refuse_a_dirty_registry(repo: Path, dirty: str) -> None:
    add_cluster(repo, ClusterSpec(name="eu-1", environment="prod"))
    with open(repo / dirty, "a") as f:
        f.write("# local edit\n")
    state = git_state(repo)
    for write in (
        lambda: add_cluster(repo, ClusterSpec(name="eu-2", environment="prod")),
        lambda: set_cluster(repo, "eu-1", ClusterUpdate(wave=4)),
        lambda: remove_cluster(repo, "eu-1"),
    ):
        with pytest.raises(DirtyTree, match=f"uncommitted changes in {dirty}"):
            write()
        assert git_state(repo) == state


def test_writes_refuse_a_committed_broken_registry(repo: Path) -> None:
    commit_file(repo, "clusters/bad.yaml", "name: bad\nenvironment: dev\nwave: [\n", "break it")
    state = git_state(repo)
    with pytest.raises(InputError, match=r"clusters/bad\.yaml:4: "):
        add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))
    assert git_state(repo) == state


def test_write_without_a_git_identity_is_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    state = git_state(repo)
    with pytest.raises(InputError, match="git identity is not set"):
        add_cluster(repo, ClusterSpec(name="eu-2", environment="prod"))
    assert git_state(repo) == state


WRITER = """
import sys
from fleet.registry import ClusterSpec, add_cluster
repo, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    add_cluster(repo, ClusterSpec(name=f"w{worker}-c{i}", environment=("dev", "staging", "prod")[i % 3]))
"""


def test_parallel_writers_lose_nothing(repo: Path) -> None:
    workers, each = 8, 3
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(repo), str(w), str(each)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    names = {f"w{w}-c{i}" for w in range(workers) for i in range(each)}
    assert set(load_registry(repo, "HEAD").clusters) == names
    assert set(load_registry(repo).clusters) == names
    log = git(repo, "log", "--format=%s").splitlines()
    assert len(log) == workers * each + 1  # one commit per add, a linear history
    assert git(repo, "rev-list", "--merges", "HEAD") == ""
    assert git(repo, "status", "--porcelain") == ""
