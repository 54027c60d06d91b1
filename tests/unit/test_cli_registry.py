"""The registry commands end to end through the CLI: outputs, and every kind of bad input giving one
clear line, exit code 2 and an unchanged repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import commit_file, git, git_state, new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_fleet_repo(tmp_path)
    monkeypatch.chdir(root)  # the default --repo: the current directory's repo
    return root


def ok(capsys: Capsys, *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return out


def test_from_init_to_list(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ok(capsys, "init", str(tmp_path / "acme"))
    assert out.strip() == str(tmp_path / "acme")
    monkeypatch.setenv("FLEET_REPO", str(tmp_path / "acme"))
    ok(
        capsys,
        "cluster",
        "add",
        "eu-1",
        "--env",
        "prod",
        "--region",
        "eu-west-1",
        "--wave",
        "1",
        "-l",
        "team=web",
        "--var",
        "REPLICAS=4",
        "--setting",
        "nodes=3",
    )
    ok(capsys, "cluster", "add", "us-1", "--env", "staging", "--provider", "kind")
    table = ok(capsys, "cluster", "list").splitlines()
    assert table[0].split() == ["NAME", "ENV", "PROVIDER", "REGION", "WAVE", "LABELS"]
    assert table[1].split() == ["eu-1", "prod", "local", "eu-west-1", "1", "team=web"]
    data = json.loads(ok(capsys, "cluster", "list", "-o", "json", "-l", "env=prod"))["items"]
    assert [c["name"] for c in data] == ["eu-1"]
    assert data[0]["settings"] == {"nodes": 3} and data[0]["vars"] == {"REPLICAS": "4"}
    assert yaml.safe_load(ok(capsys, "cluster", "list", "-o", "yaml"))["items"][1]["provider"] == "kind"
    shown = json.loads(ok(capsys, "cluster", "show", "eu-1", "-o", "json"))
    assert shown["overlay"] == "environments/prod" and shown["good"] is None
    assert shown["substituted"]["FLEET_REGION"] == "eu-west-1"
    ok(capsys, "cluster", "set", "eu-1", "--wave", "2", "--remove-label", "team")
    ok(capsys, "cluster", "remove", "us-1")
    subjects = git(tmp_path / "acme", "log", "--format=%s").splitlines()
    assert subjects[:2] == [
        "Remove cluster us-1 (env staging, provider kind, region local, wave 0)",
        "Set cluster eu-1: wave 1 -> 2, -labels.team",
    ]


def test_good_and_history(repo: Path, capsys: Capsys) -> None:
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    code, out, err = run_cli(capsys, "good", "eu-1", "-o", "json")
    assert (code, out.strip()) == (1, "null") and 'no last good revision recorded for cluster "eu-1"' in err
    gates = repo.parent / "gates.json"
    gates.write_text('[{"gate": "rollout", "passed": true}]')
    ok(
        capsys,
        "good",
        "eu-1",
        "--set",
        "HEAD",
        "--reason",
        "drill passed",
        "--gates",
        str(gates),
        "--duration",
        "4",
    )
    rec = json.loads(ok(capsys, "good", "eu-1", "-o", "json"))
    assert rec["reason"] == "drill passed" and rec["gates"] == [{"gate": "rollout", "passed": True}]
    assert rec["duration_s"] == 4.0 and rec["revision"] == git(repo, "rev-parse", "HEAD").strip()
    assert "drill passed" in ok(capsys, "good", "eu-1")
    hist = json.loads(ok(capsys, "history", "eu-1", "-o", "json"))["items"]
    assert [h["good"] for h in hist] == [True, False] and hist[0]["recorded"] is True
    table = ok(capsys, "history", "eu-1").splitlines()
    assert table[0].split() == ["REVISION", "DATE", "AUTHOR", "GOOD", "SUBJECT"]
    assert "Fleet Tester  good  Add cluster eu-1" in table[1] and " good " not in table[2]


def test_push_and_pull(repo: Path, capsys: Capsys, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "remote.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "remote.git"))
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    ok(capsys, "good", "eu-1", "--set", "HEAD")
    code, _, err = run_cli(capsys, "push")
    assert code == 0 and "refs/fleet/good/eu-1" in err
    code, _, err = run_cli(capsys, "push")
    assert code == 0 and "up to date" in err
    code, _, err = run_cli(capsys, "pull")
    assert code == 0 and "up to date" in err


def test_schema(capsys: Capsys) -> None:
    cluster = json.loads(ok(capsys, "schema", "cluster"))
    assert cluster["title"].startswith("fleet cluster")
    assert set(cluster["required"]) == {"name", "environment"}
    assert cluster["properties"]["provider"]["enum"] == ["local", "kind", "eks", "gke", "aks"]
    assert cluster["additionalProperties"] is False
    both = yaml.safe_load(ok(capsys, "schema", "-o", "yaml"))
    assert set(both) == {"fleet.yaml", "clusters/*.yaml"}
    assert "environment" in ok(capsys, "schema", "cluster", "-o", "table")



# ---- bad input: one line, exit 2, nothing changed -----------------------------------------------------

BAD = [
    # (setup, args, message)
    (None, ["cluster", "add", "eu-1", "--env", "prod"], 'cluster "eu-1" already exists (clusters/eu-1.yaml)'),
    (
        None,
        ["cluster", "add", "qa-1", "--env", "qa"],
        'unknown environment "qa"; environments/ has: dev, prod, staging',
    ),
    (None, ["cluster", "add", "a/b", "--env", "dev"], 'NAME: "a/b" is not a DNS label'),
    (None, ["cluster", "add", "..", "--env", "dev"], 'NAME: ".." is not a DNS label'),
    (
        None,
        ["cluster", "add", "x", "--env", "../../etc"],
        '--env: "../../etc" is not a valid environment name',
    ),
    (None, ["cluster", "add", "x", "--env", "dev", "--provider", "gcp"], '--provider: "gcp" is not allowed'),
    (
        None,
        ["cluster", "add", "x", "--env", "dev", "--label", "novalue"],
        '--label "novalue": expected KEY=VALUE',
    ),
    (None, ["cluster", "add", "x", "--env", "dev", "--wave", "many"], "Invalid value for '--wave'"),
    (None, ["cluster", "set", "../eu-1", "--wave", "1"], '"../eu-1" is not a valid cluster name'),
    (None, ["cluster", "set", "eu-9", "--wave", "1"], 'cluster "eu-9" not found in clusters/'),
    (None, ["cluster", "remove", "eu-9"], 'cluster "eu-9" not found in clusters/'),
    (None, ["cluster", "show", "eu-9"], 'cluster "eu-9" not found in clusters/'),
    (None, ["cluster", "list", "-l", "env in (a"], 'invalid selector "env in (a"'),
    (None, ["cluster", "list", "--rev", "nope"], 'revision "nope" not found'),
    (None, ["good", "eu-1", "--set", "nope"], 'revision "nope" not found'),
    (None, ["good", "../x", "--set", "HEAD"], '"../x" is not a valid cluster name'),
    (None, ["good", "eu-9"], 'cluster "eu-9" not found in clusters/'),
    (None, ["history", "eu-9"], 'cluster "eu-9" not found in clusters/'),
    (None, ["render", "eu-1", "--rev", "nope"], 'revision "nope" not found'),
    (None, ["render", "a/../b"], '"a/../b" is not a valid cluster name'),
    (None, ["render"], "name one cluster, or pass --all"),
    (None, ["push"], 'git remote "origin" is not configured'),
    (
        "dirty-cluster",
        ["cluster", "add", "eu-2", "--env", "dev"],
        "uncommitted changes in clusters/eu-1.yaml",
    ),
    ("dirty-cluster", ["cluster", "set", "eu-1", "--wave", "3"], "uncommitted changes in clusters/eu-1.yaml"),
    ("dirty-fleet", ["cluster", "remove", "eu-1"], "uncommitted changes in fleet.yaml"),
    (
        "untracked-cluster",
        ["cluster", "add", "eu-2", "--env", "dev"],
        "uncommitted changes in clusters/eu-3.yaml",
    ),
    ("malformed", ["cluster", "list"], "clusters/bad.yaml:3: invalid YAML"),
    ("malformed-committed", ["cluster", "add", "eu-2", "--env", "dev"], "clusters/bad.yaml:3: invalid YAML"),
    ("unknown-key", ["cluster", "list"], "clusters/bad.yaml:3: regoin: unknown key"),
    ("wrong-type", ["cluster", "list"], "clusters/bad.yaml:3: wave: Input should be a valid integer"),
    ("wrong-env", ["cluster", "list"], 'clusters/bad.yaml:2: environment: unknown environment "qa"'),
    (
        "wrong-name",
        ["cluster", "list"],
        'clusters/bad.yaml:1: name: name "good" does not match the file name',
    ),
]


def _setup(repo: Path, what: str | None) -> None:
    bad = repo / "clusters" / "bad.yaml"
    if what == "dirty-cluster":
        (repo / "clusters" / "eu-1.yaml").write_text(
            (repo / "clusters" / "eu-1.yaml").read_text() + "wave: 2\n"
        )
    elif what == "dirty-fleet":
        (repo / "fleet.yaml").write_text((repo / "fleet.yaml").read_text() + "# mine\n")
    elif what == "untracked-cluster":
        (repo / "clusters" / "eu-3.yaml").write_text("name: eu-3\nenvironment: dev\n")
    elif what == "malformed":
        bad.write_text("name: bad\nenvironment: [dev\n")
    elif what == "malformed-committed":
        commit_file(repo, "clusters/bad.yaml", "name: bad\nenvironment: [dev\n")
    elif what == "unknown-key":
        bad.write_text("name: bad\nenvironment: dev\nregoin: eu\n")
    elif what == "wrong-type":
        bad.write_text("name: bad\nenvironment: dev\nwave: high\n")
    elif what == "wrong-env":
        bad.write_text("name: bad\nenvironment: qa\n")
    elif what == "wrong-name":
        bad.write_text("name: good\nenvironment: dev\n")


@pytest.mark.parametrize(("setup", "args", "message"), BAD, ids=[" ".join(b[1]) + f" [{b[0]}]" for b in BAD])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    repo: Path, capsys: Capsys, setup: str | None, args: list[str], message: str
) -> None:
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    _setup(repo, setup)
    state = git_state(repo)
    code, out, err = run_cli(capsys, *args)
    assert code == 2, err
    assert out == ""
    errors = [line for line in err.splitlines() if not line.startswith("  hint: ")]
    assert len(errors) == 1 and errors[0].startswith("✗ "), err
    assert message in errors[0]
    assert "Traceback" not in err
    assert git_state(repo) == state


def test_not_a_git_repository(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain").mkdir()
    monkeypatch.chdir(tmp_path / "plain")
    for args in (
        ["cluster", "list"],
        ["cluster", "add", "a", "--env", "dev"],
        ["render", "a"],
        ["good", "a"],
        ["history", "a"],
        ["pull"],
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.startswith("✗ not a git repository: "), (args, err)
    assert list((tmp_path / "plain").iterdir()) == []
