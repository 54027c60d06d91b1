"""fleet adopt: an existing repo becomes a fleet repo in one commit, no existing file moved or changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.adopt import adopt_repo, plan_adoption
from fleet.errors import DirtyTree, InputError
from fleet.registry import Layout, load_registry
from tests.adopt_fixtures import flux_repo, kustomize_repo, write_tree
from tests.helpers import git, git_state, run_cli


def _unchanged_except_added(root: Path) -> list[str]:
    """The files the last commit added; fails if it modified, deleted or renamed any."""
    lines = git(root, "diff", "--name-status", "--no-renames", "HEAD~1", "HEAD").splitlines()
    assert all(line.startswith("A\t") for line in lines), lines
    return sorted(line.split("\t", 1)[1] for line in lines)


def test_a_flux_repo_is_adopted_with_one_entry_per_cluster_directory(tmp_path: Path) -> None:
    root = flux_repo(tmp_path)
    before = git(root, "ls-tree", "-r", "HEAD")
    plan = adopt_repo(root)
    assert plan.kind == "flux" and plan.revision == git(root, "rev-parse", "HEAD").strip()
    assert _unchanged_except_added(root) == ["fleet.yaml", "fleet/clusters/production.yaml",
                                             "fleet/clusters/staging.yaml"]
    after = git(root, "ls-tree", "-r", "HEAD")
    assert set(before.splitlines()) <= set(after.splitlines())  # every old blob where it was
    assert git(root, "status", "--porcelain") == ""
    subject = git(root, "log", "-1", "--format=%s").strip()
    assert subject == "Adopt fleet-infra as a fleet repo (2 Flux cluster directories)"
    reg = load_registry(root, "HEAD")
    assert reg.layout == Layout("fleet/clusters", "apps/{env}")
    assert reg.environments == ("production", "staging")
    staging = reg.get("staging")
    assert staging.source is not None and staging.source.flux == "clusters/staging"
    assert staging.environment == "staging"  # the overlay its apps Kustomization builds
    assert plan.flux_kustomizations == 9
    assert any("2 cluster directories (clusters/production, clusters/staging)" in f for f in plan.findings)


def test_a_kustomize_tree_is_adopted_with_its_overlays_as_environments(tmp_path: Path) -> None:
    root = kustomize_repo(tmp_path)
    plan = adopt_repo(root, name="acme")
    assert plan.kind == "kustomize" and plan.environments == ("dev", "prod")
    assert _unchanged_except_added(root) == ["clusters/README.md", "fleet.yaml"]
    reg = load_registry(root, "HEAD")
    assert reg.settings.name == "acme" and reg.layout == Layout("clusters", "overlays/{env}")
    assert reg.clusters == {} and reg.environments == ("dev", "prod")


def test_overlays_deeper_in_the_tree_are_found(tmp_path: Path) -> None:
    root = kustomize_repo(tmp_path)
    write_tree(root, {
        **{f"deploy/overlays/{env}/kustomization.yaml": "resources: [../../../bases/app]\n"
           for env in ("qa", "stage", "live")},
        "deploy/overlays/base/kustomization.yaml": "resources: []\n",
    })
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "deploy")
    plan = plan_adoption(root)
    assert plan.layout.environments == "deploy/overlays/{env}"  # the overlays folder with most environments
    assert plan.environments == ("base", "live", "qa", "stage")  # every directory the pattern matches
    assert any("also found overlays at overlays/{env} (dev, prod)" in f for f in plan.findings)
    plan = plan_adoption(root, environments="overlays/{env}")
    assert plan.environments == ("dev", "prod")


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = flux_repo(tmp_path)
    state = git_state(root)
    code, out, err = run_cli(capsys, "adopt", str(root), "--dry-run")
    assert code == 0, err
    assert git_state(root) == state
    assert "--- fleet.yaml\n" in out and "--- fleet/clusters/staging.yaml\n" in out and "flux: clusters/staging" in out
    assert "dry run: would write fleet.yaml, fleet/clusters/production.yaml, fleet/clusters/staging.yaml" in err


def test_the_cli_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = kustomize_repo(tmp_path)
    code, _, err = run_cli(capsys, "adopt", str(root))
    assert code == 0, err
    assert "► a kustomize tree: overlays dev, prod (overlays/{env})" in err
    assert "(no existing file moved or changed)" in err and "next: fleet cluster add NAME --env dev" in err


@pytest.mark.parametrize("case", ["fleet.yaml", "dirty", "untracked", "staged"])
def test_refusals_are_one_line_exit_2_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    root = kustomize_repo(tmp_path)
    if case == "fleet.yaml":
        adopt_repo(root)
        expected = "fleet.yaml already exists"
    elif case == "dirty":
        (root / "bases/app/service.yaml").write_text("edited\n")
        expected = "uncommitted changes (bases/app/service.yaml): commit or stash them first"
    elif case == "untracked":
        (root / "notes.txt").write_text("wip\n")
        expected = "uncommitted changes (notes.txt)"
    else:
        (root / "new.yaml").write_text("a: 1\n")
        git(root, "add", "new.yaml")
        expected = "uncommitted changes (new.yaml)"
    state = git_state(root)
    code, out, err = run_cli(capsys, "adopt", str(root))
    assert code == 2
    assert err.startswith("✗ ") and expected in err and len(err.strip().splitlines()) == 1, err
    assert out == "" and git_state(root) == state


def test_what_cannot_be_adopted(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(InputError, match="has no commits"):
        adopt_repo(empty)
    root = kustomize_repo(tmp_path)
    git(root, "checkout", "-q", "--detach")
    with pytest.raises(InputError, match="HEAD is detached"):
        adopt_repo(root)
    git(root, "checkout", "-q", "main")
    with pytest.raises(InputError, match=r"the proposed fleet.yaml:\d+: environments.path: .*exactly once"):
        adopt_repo(root, environments="overlays")
    write_tree(root, {"clusters/README.md": "ours\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ours")
    plan = plan_adoption(root)
    assert plan.layout.registry == "fleet/clusters"  # clusters/ holds the repo's own file
    with pytest.raises(InputError, match=r"clusters/README\.md exists: adopt never changes an existing file"):
        adopt_repo(root, registry="clusters")
    with pytest.raises(DirtyTree):
        (root / "x").write_text("x")
        adopt_repo(root)
