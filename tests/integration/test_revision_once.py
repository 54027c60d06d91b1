"""A revision is read once (issue 19): a render, a diff of two revisions and a bootstrap's plan look each
commit up in the git adapter once (fleet.adapters.git.Snapshot), and read no object from the object
database twice. The counts are the adapter's own (GitRepo.stats), of a real repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import commit_file, git, need_tool, new_fleet_repo

from fleet.adapters.git import GitRepo, Snapshot
from fleet.rendering import build

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path: Path, fleet_home: Path) -> Iterator[Path]:
    need_tool("fleet-build")
    build.clear_cache()
    root = new_fleet_repo(tmp_path, clusters={"eu-1": "prod", "us-1": "staging", "dev-1": "dev"})
    yield root
    build.clear_cache()


def test_a_render_looks_its_commit_up_once(repo: Path) -> None:
    from fleet.rendering.cluster import render_cluster

    with GitRepo.open(repo) as g:
        rendered = render_cluster(g, "eu-1")
        assert rendered.objects
        stats = g.stats()
        assert g.lookups() == {"HEAD": 1}
    assert stats["resolve"] == 1, stats
    assert stats["object"] > 0 and stats["object_reread"] == 0, stats


def test_render_all_looks_its_commit_up_once_and_reads_no_blob_twice(repo: Path) -> None:
    from fleet.rendering.cluster import render_all

    with GitRepo.open(repo) as g:
        assert [r.cluster for r in render_all(g, "main")] == ["dev-1", "eu-1", "us-1"]
        stats = g.stats()
    assert stats == {**stats, "resolve": 1, "object_reread": 0}


def test_diff_base_looks_each_revision_up_once(repo: Path) -> None:
    from fleet.rendering.revdiff import diff_revisions

    base = git(repo, "rev-parse", "HEAD").strip()
    hello = repo / "environments" / "prod" / "hello.yaml"
    commit_file(repo, "environments/prod/hello.yaml", hello.read_text().replace("${REPLICAS:=3}", "${REPLICAS:=5}"))
    with GitRepo.open(repo) as g:
        diff = diff_revisions(g, base, "HEAD")
        assert [c.cluster for c in diff.clusters if c.status == "changed"] == ["eu-1"]
        stats = g.stats()
    assert stats["resolve"] == 2, stats  # base and head, once each
    assert stats["object_reread"] == 0, stats


def test_a_bootstrap_plan_looks_its_target_up_once(repo: Path) -> None:
    from bootstrap.services import RealServices
    from fleet.adapters.pulumi_auto import default_settings

    services = RealServices(repo, engine=default_settings())
    resolved = services.resolve("eu-1", "main")
    plan = services.plan("eu-1", resolved, "auto", None)
    assert plan.revision == git(repo, "rev-parse", "main").strip() and plan.objects > 0
    # the target once, never again by its commit id; HEAD once per read of the checkout's signature policy
    # (fleet.verify: the resolve step's and the plan's provisioning check; a branch may move between them),
    # and the older commits that changed fleet.yaml, whose policy it walks (each a commit of its own)
    lookups = services.git.lookups()
    assert lookups.pop("main") == 1 and lookups.pop("HEAD") == 2, lookups
    assert plan.revision not in lookups and set(lookups.values()) <= {1}, lookups
    assert services.git.stats()["object_reread"] == 0


def test_a_snapshot_is_passed_through_and_reads_as_the_repository_does(repo: Path) -> None:
    from fleet.registry import load_registry

    with GitRepo.open(repo) as g:
        snap = g.snapshot("HEAD")
        assert isinstance(snap, Snapshot) and g.snapshot(snap) is snap and g.snapshot(snap.commit) is snap
        assert snap.tree == git(repo, "rev-parse", "HEAD^{tree}").strip()
        text = (repo / "fleet.yaml").read_text()
        assert snap.read_file("fleet.yaml") == g.read_file(snap.commit, "fleet.yaml") == text
        assert snap.read_file("nope.yaml") is None and snap.list_dir("nope") == [] and snap.tree_id("nope") is None
        assert load_registry(g, snap).revision == snap.commit
        # a branch moves: a name is looked up again, a commit id is not
        commit_file(repo, "environments/prod/extra.yaml", "# x\n")
        assert g.snapshot("HEAD").commit != snap.commit
        before = g.stats()["resolve"]
        g.snapshot(snap.commit)
        assert g.stats()["resolve"] == before
