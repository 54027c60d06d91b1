"""Render confinement with the real kustomize: paths inside the tree still build; the disk cache serves
only entries it sealed (an edited or foreign entry is rebuilt); a read-only cache is only no cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet import paths
from fleet.registry import ClusterSpec, add_cluster
from fleet.rendering import build
from fleet.rendering import cluster as render
from tests.helpers import commit_file, git, need_tool, new_fleet_repo

OVERLAY = "environments/prod/kustomization.yaml"
HEAD = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: hello-prod
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    need_tool("fleet-build")  # renders run the builder
    need_tool("kustomize")
    root = new_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name="eu-1", environment="prod", vars={"REPLICAS": "4"}))
    build.clear_cache()
    return root


def forget_kept(home: Path) -> None:
    """Drop the whole renders kept per commit (tests/integration/test_render_kept.py), so the build runs."""
    shutil.rmtree(home / "cache" / "render" / "results", ignore_errors=True)


def symlink(repo: Path, path: str, target: str) -> None:
    (repo / path).symlink_to(target)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"link {path}")


def test_paths_inside_the_tree_still_render(repo: Path) -> None:
    symlink(repo, "environments/prod/base-link", "../../base")
    commit_file(repo, "environments/prod/extra.env", "EXTRA=1\n")
    commit_file(
        repo,
        OVERLAY,
        HEAD + "resources:\n  - namespace.yaml\n  - base-link\n"
        "configMapGenerator:\n  - name: extra\n    envs: [extra.env]\n",
    )
    kinds = [o["kind"] for o in render.render_cluster(repo, "eu-1").objects]
    assert kinds.count("ConfigMap") == 2 and "Deployment" in kinds


def test_an_edited_cache_entry_is_ignored_and_rebuilt(repo: Path, fleet_home: Path) -> None:
    first = render.render_cluster(repo, "eu-1")
    [entry] = list((fleet_home / "cache" / "render").rglob("*.yaml"))
    assert entry.stat().st_mode & 0o777 == 0o600
    entry.write_text(entry.read_text().replace("hello-prod", "evil"))
    build.clear_cache()
    forget_kept(fleet_home)
    again = render.render_cluster(repo, "eu-1")
    assert again.text == first.text and "evil" not in again.text
    assert build.stats() == {"kustomize_runs": 1, "memo_hits": 0, "disk_hits": 0}
    assert "evil" not in entry.read_text()  # rebuilt and sealed again
    build.clear_cache()
    forget_kept(fleet_home)
    render.render_cluster(repo, "eu-1")
    assert build.stats()["disk_hits"] == 1


def test_an_edited_list_of_parsed_objects_is_ignored(repo: Path, fleet_home: Path) -> None:
    """The objects a build parsed are kept beside it (sealed): edited, they are parsed again from the build."""
    first = render.render_cluster(repo, "eu-1")
    [docs] = list((fleet_home / "cache" / "render").rglob("*.docs.json"))
    docs.write_text(docs.read_text().replace("hello-prod", "evil"))
    build.clear_cache()
    forget_kept(fleet_home)
    again = render.render_cluster(repo, "eu-1")
    assert again.objects == first.objects and "evil" not in json.dumps(again.objects)
    assert build.stats() == {"kustomize_runs": 0, "memo_hits": 0, "disk_hits": 1}
    assert "evil" not in docs.read_text()  # parsed and sealed again


def test_a_cache_entry_sealed_by_another_home_is_not_trusted(
    repo: Path, fleet_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render.render_cluster(repo, "eu-1")
    [entry] = list((fleet_home / "cache" / "render").rglob("*.yaml"))
    (fleet_home / "secrets" / "render-cache").write_text("another-secret\n")
    build.clear_cache()
    render.render_cluster(repo, "eu-1")
    assert build.stats()["kustomize_runs"] == 1 and entry.exists()


def test_a_read_only_cache_only_means_no_disk_cache(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(paths, "write_private", refuse)  # every sealed cache entry is written through it
    assert render.render_cluster(repo, "eu-1").objects
