"""`fleet render CLUSTER` of a commit it rendered before is served whole from fleet.rendering.cache: the same
output, keyed by the commit id the revision names (a new commit renders in full), sealed (an edited entry
is ignored), uncommitted edits still warned of, and without GitPython, the registry's models or kustomize."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import commit_file, need_tool, new_fleet_repo, run_cli

import fleet.rendering.cluster
from fleet.rendering import build

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fleet_home: Path) -> Iterator[Path]:
    need_tool("fleet-build")  # renders run the builder
    need_tool("kustomize")
    build.clear_cache()
    root = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    monkeypatch.chdir(root)
    yield root
    build.clear_cache()


def _entries(home: Path) -> list[Path]:
    return sorted((home / "cache" / "render" / "results").glob("eu-1/*.json"))


def test_a_kept_render_prints_what_the_full_render_printed(
    repo: Path, capsys: Capsys, fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = {fmt: run_cli(capsys, "render", "eu-1", "-o", fmt) for fmt in ("yaml", "json", "table")}
    assert all(code == 0 for code, _, _ in full.values())
    assert len(_entries(fleet_home)) == 1
    monkeypatch.setattr(fleet.rendering.cluster, "render_cluster", lambda *_a, **_k: pytest.fail("rendered in full"))
    for fmt, expected in full.items():
        assert run_cli(capsys, "render", "eu-1", "-o", fmt) == expected, fmt
    head = json.loads(full["json"][1])["revision"]
    assert run_cli(capsys, "render", "eu-1", "--rev", head[:10])[1] == full["yaml"][1]  # the same commit


def test_a_new_commit_renders_in_full_and_an_old_one_from_its_entry(
    repo: Path, capsys: Capsys, fleet_home: Path
) -> None:
    before = run_cli(capsys, "render", "eu-1")[1]
    hello = repo / "environments" / "prod" / "hello.yaml"
    commit_file(repo, "environments/prod/hello.yaml", hello.read_text().replace("${REPLICAS:=3}", "${REPLICAS:=7}"))
    after = run_cli(capsys, "render", "eu-1")[1]
    assert "replicas: 7" in after and after != before
    assert len(_entries(fleet_home)) == 2
    build.clear_cache()
    assert run_cli(capsys, "render", "eu-1", "--rev", "HEAD~1")[1] == before


def test_only_the_newest_renders_of_a_cluster_are_kept(
    repo: Path, capsys: Capsys, fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.rendering import cache as rendercache

    monkeypatch.setattr(rendercache, "KEEP_PER_CLUSTER", 2)
    for n in range(3):
        commit_file(repo, "NOTES.md", f"note {n}\n")
        assert run_cli(capsys, "render", "eu-1")[0] == 0
        build.clear_cache()
    assert len(_entries(fleet_home)) == 2
    assert rendercache.load("0" * 40, "../eu-1") is None  # a name that is no cluster name is never a path


def test_an_edited_entry_is_ignored_and_removed(
    repo: Path, capsys: Capsys, fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = run_cli(capsys, "render", "eu-1")[1]
    (entry,) = _entries(fleet_home)
    entry.write_text(entry.read_text().replace("hello-prod", "evil-prod"))
    calls: list[str] = []
    real = fleet.rendering.cluster.render_cluster

    def counted(*a: object, **k: object) -> fleet.rendering.cluster.Rendered:
        calls.append("full")
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet.rendering.cluster, "render_cluster", counted)
    code, out, _ = run_cli(capsys, "render", "eu-1")
    assert (code, out, calls) == (0, expected, ["full"])
    assert "evil-prod" not in _entries(fleet_home)[0].read_text()


def test_uncommitted_edits_are_warned_of_when_kept(
    repo: Path, capsys: Capsys, fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(capsys, "render", "eu-1")[0] == 0
    monkeypatch.setattr(fleet.rendering.cluster, "render_cluster", lambda *_a, **_k: pytest.fail("rendered in full"))
    (repo / "base" / "service.yaml").write_text("# uncommitted\n")
    (repo / "clusters" / "eu-1.yaml").write_text((repo / "clusters" / "eu-1.yaml").read_text() + "# edit\n")
    (repo / "notes.txt").write_text("not an input\n")
    code, _, err = run_cli(capsys, "render", "eu-1")
    assert code == 0
    # the cluster's own registry file holds its variables: an edit to it is not rendered either (issue 20)
    assert err.strip() == ("⚠ uncommitted changes (base/service.yaml, clusters/eu-1.yaml) are not rendered: "
                           "fleet renders Git")


def test_an_uncommitted_registry_edit_is_warned_of(repo: Path, capsys: Capsys) -> None:
    """Before, an edit to the rendered cluster's own file (a variable) was never said; another cluster's
    file is not an input, and is not named."""
    (repo / "clusters" / "eu-1.yaml").write_text((repo / "clusters" / "eu-1.yaml").read_text() + "# edit\n")
    code, _, err = run_cli(capsys, "render", "eu-1")  # in full (nothing kept yet)
    assert code == 0
    assert err.strip() == "⚠ uncommitted changes (clusters/eu-1.yaml) are not rendered: fleet renders Git"
    code, _, err = run_cli(capsys, "render", "eu-1")  # kept
    assert code == 0
    assert err.strip() == "⚠ uncommitted changes (clusters/eu-1.yaml) are not rendered: fleet renders Git"


def test_a_kept_render_loads_no_git_library_no_models_no_kustomize_and_no_typer(repo: Path, capsys: Capsys) -> None:
    """`fleet render CLUSTER` of a kept commit is printed before typer (and the pydantic its option parsing
    needs) loads, as `fleet --help` is drawn without it (fleet.cli.kept)."""
    assert run_cli(capsys, "render", "eu-1")[0] == 0
    probe = (
        "import sys\nfrom fleet.cli import main\ncode = main(sys.argv[1:])\n"
        "heavy = {'git', 'yaml', 'kubernetes', 'rich', 'typer', 'pydantic'}\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & heavy),"
        " sorted(m for m in sys.modules if m in {'fleet.registry', 'fleet.rendering.cluster', 'fleet.adapters.git',"
        " 'fleet.sops', 'fleet.adapters.gitplain', 'fleet.rendering.cache'}), file=sys.stderr)\n"
    )
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-c", probe, "render", "eu-1"], capture_output=True, text=True,
                          cwd=repo, env=env, check=False)
    last = done.stderr.strip().splitlines()[-1]
    assert last == "0 [] ['fleet.adapters.gitplain', 'fleet.rendering.cache']", done.stderr
