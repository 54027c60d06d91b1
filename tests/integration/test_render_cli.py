"""`fleet render` through the CLI with the real kustomize: outputs, and an overlay kustomize rejects or a
missing variable giving one clear line, exit code 2 and an unchanged repo. (The registry commands without
kustomize are unit tests: tests/unit/test_cli_registry.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import commit_file, git_state, need_tool, new_fleet_repo, run_cli

from fleet.rendering import build

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def kustomize() -> Path:
    need_tool("fleet-build")  # renders run the builder
    path = need_tool("kustomize")
    build.clear_cache()
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_fleet_repo(tmp_path)
    monkeypatch.chdir(root)  # the default --repo: the current directory's repo
    return root


def ok(capsys: Capsys, *args: str) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return out


def test_render_commands(repo: Path, capsys: Capsys, tmp_path: Path) -> None:
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod", "--var", "REPLICAS=2")
    ok(capsys, "cluster", "add", "dev-1", "--env", "dev")
    docs = list(yaml.safe_load_all(ok(capsys, "render", "eu-1")))
    assert [d["kind"] for d in docs] == ["Namespace", "ConfigMap", "Service", "Deployment"]
    assert docs[-1]["spec"]["replicas"] == 2
    data = json.loads(ok(capsys, "render", "eu-1", "-o", "json", "--rev", "HEAD~1"))
    assert data["cluster"] == "eu-1" and len(data["objects"]) == 4
    assert "Deployment  hello-prod  hello" in ok(capsys, "render", "eu-1", "-o", "table")
    out = tmp_path / "out"
    ok(capsys, "render", "--all", "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["dev-1.yaml", "eu-1.yaml", "index.json"]
    assert [x["cluster"] for x in json.loads((out / "index.json").read_text())] == ["dev-1", "eu-1"]
    assert len(json.loads(ok(capsys, "render", "--all", "-l", "env=dev", "-o", "json"))["items"]) == 1
    (repo / "base" / "service.yaml").write_text("# uncommitted\n")
    code, _, err = run_cli(capsys, "render", "eu-1")
    assert code == 0 and "uncommitted changes (base/service.yaml) are not rendered" in err


def test_overlay_that_kustomize_rejects(repo: Path, capsys: Capsys) -> None:
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    commit_file(repo, "environments/prod/kustomization.yaml", "resources:\n  - nope.yaml\n", "break prod")
    state = git_state(repo)
    code, out, err = run_cli(capsys, "render", "eu-1")
    assert code == 2 and out == ""
    assert err.startswith("✗ kustomize build environments/prod at ") and "nope.yaml" in err
    assert len(err.strip().splitlines()) == 1
    assert git_state(repo) == state


def test_missing_variable_is_named(repo: Path, capsys: Capsys) -> None:
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    commit_file(
        repo, "base/configmap.yaml", (repo / "base/configmap.yaml").read_text() + "  DB: ${DB_HOST}\n"
    )
    code, _, err = run_cli(capsys, "render", "eu-1")
    assert code == 2 and '✗ variable "DB_HOST" not set in ConfigMap/hello-prod/hello-config' in err


def test_render_table_shows_hostile_names_escaped(repo: Path, capsys: Capsys) -> None:
    """Object names come from the repository (anyone's pull request): an ESC, an OSC or a bidi override in
    one is shown, not obeyed (issue 20)."""
    ok(capsys, "cluster", "add", "eu-1", "--env", "prod")
    commit_file(repo, "environments/prod/hostile.yaml",
                'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "x\\e]0;pwned\\a\\e[2J\\u202ecod.exe"\n')
    overlay = "environments/prod/kustomization.yaml"
    text = (repo / overlay).read_text()
    commit_file(repo, overlay, text.replace("resources:\n", "resources:\n  - hostile.yaml\n"))
    out = ok(capsys, "render", "eu-1", "-o", "table")
    assert not any(c in out for c in "\x1b\x07\u202e"), repr(out)
    assert "x\\x1b]0;pwned\\x07\\x1b[2J\\u202ecod.exe" in out
