"""``fleet region add``: naming, what is copied and substituted, one commit, refusals that write nothing;
``add_clusters`` in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fleet.errors import InputError
from fleet.registry import ClusterSpec, add_cluster, add_clusters, load_registry
from fleet.registry.model import GateSettings, KubeAccess
from fleet.registry.region import new_cluster_name, plan_region, substitute_region
from tests.helpers import git, git_state, new_fleet_repo, run_cli


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("eu-1", "eu", "us", "us-1"),
        ("prod-eu-2", "eu", "us", "prod-us-2"),
        ("eu", "eu", "ap", "ap"),
        ("web-eu-west-1-a", "eu-west-1", "us-east-2", "web-us-east-2-a"),
        ("europa-1", "eu", "us", "europa-1-us"),  # "eu" is not a part of "europa": suffixed instead
        ("edge", "eu", "us", "edge-us"),
        ("eu1", "eu", "us", "eu1-us"),
    ],
)
def test_new_cluster_name(name: str, old: str, new: str, expected: str) -> None:
    assert new_cluster_name(name, old, new) == expected


def test_substitute_region_replaces_whole_parts_only() -> None:
    assert substitute_region("api.eu.example.com", "eu", "us") == "api.us.example.com"
    assert substitute_region("eu-1,eu-2", "eu", "us") == "us-1,us-2"
    assert substitute_region("neutral", "eu", "us") == "neutral"
    assert substitute_region("EU", "eu", "us") == "EU"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(
        name="eu-1", environment="prod", region="eu", wave=1, provider="eks",
        labels={"tier": "prod", "geo": "eu"}, vars={"DOMAIN": "eu.example.com", "REPLICAS": "3"},
        settings={"nodes": 3, "instanceType": "m6i.large", "minNodes": 2},
        access=KubeAccess(context="eu-1-admin"), gates=GateSettings(timeout=120),
    ))
    add_cluster(root, ClusterSpec(name="eu-2", environment="staging", region="eu", wave=2))
    add_cluster(root, ClusterSpec(name="canary", environment="dev", region="eu", wave=0))
    add_cluster(root, ClusterSpec(name="ap-1", environment="prod", region="ap"))
    return root


def test_plan_models_every_cluster_of_the_region(repo: Path) -> None:
    plan = plan_region(repo, "us", "eu")
    by = {e.source: e.spec for e in plan.entries}
    assert [e.spec.name for e in plan.entries] == ["canary-us", "us-1", "us-2"]  # by wave, then name
    us1 = by["eu-1"]
    assert (us1.name, us1.region, us1.environment, us1.wave, us1.provider) == ("us-1", "us", "prod", 1, "eks")
    assert us1.labels == {"tier": "prod", "geo": "us"}
    assert us1.vars == {"DOMAIN": "us.example.com", "REPLICAS": "3"}
    assert us1.settings == {"nodes": 3, "instanceType": "m6i.large", "minNodes": 2}
    assert us1.gates == GateSettings(timeout=120)
    assert us1.access is None  # it named eu-1's API server
    assert plan.dropped == ('access of "eu-1" (a new cluster is provisioned by fleet)',)
    assert plan.entries[1].file == "clusters/us-1.yaml"
    assert yaml.safe_load(plan.entries[1].text)["region"] == "us"


def test_env_filter_models_only_those_environments(repo: Path) -> None:
    plan = plan_region(repo, "us", "eu", environments=["prod", "staging"])
    assert [e.spec.name for e in plan.entries] == ["us-1", "us-2"]


def test_region_add_shows_then_writes_one_commit(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    code, out, err = run_cli(capsys, "region", "add", "us", "--from", "eu", "--repo", str(repo))
    assert code == 0, err
    assert "# clusters/us-1.yaml (modelled on eu-1)\n" in out and "region: us\n" in out
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert git(repo, "log", "-1", "--format=%s").strip() == (
        "Add region us: 3 clusters modelled on eu (canary-us, us-1, us-2)")
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(changed) == ["clusters/canary-us.yaml", "clusters/us-1.yaml", "clusters/us-2.yaml"]
    assert git(repo, "status", "--porcelain") == ""
    reg = load_registry(repo, "HEAD")
    assert {c.name for c in reg.select("region=us")} == {"canary-us", "us-1", "us-2"}
    assert "⚠ not copied: access of \"eu-1\"" in err
    assert "fleet rollout -l region=us" in err


def test_dry_run_shows_and_writes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = git_state(repo)
    code, out, err = run_cli(capsys, "region", "add", "us", "--from", "eu", "--dry-run", "-o", "json",
                             "--repo", str(repo))
    assert code == 0, err
    data = json.loads(out)
    assert data["dry_run"] is True and data["revision"] is None
    assert [(c["name"], c["from"]) for c in data["clusters"]] == [("canary-us", "canary"), ("us-1", "eu-1"),
                                                                   ("us-2", "eu-2")]
    assert data["clusters"][1]["spec"]["vars"]["DOMAIN"] == "us.example.com"
    assert git_state(repo) == state


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["us", "--from", "mars"], 'no cluster is in region "mars"; regions in clusters/: ap, eu'),
        (["us", "--from", "eu", "--env", "qa"], '--env "qa": region "eu" has no cluster in it'),
        (["eu", "--from", "eu"], '--from "eu" is the region being added'),
        (["ap", "--from", "eu"], 'region "ap" already has clusters: ap-1'),
        (["US East", "--from", "eu"], 'REGION "US East" is not a valid region name'),
        (["US", "--from", "eu"], "would be invalid: name"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(repo: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                              message: str) -> None:
    state = git_state(repo)
    code, out, err = run_cli(capsys, "region", "add", *args, "--repo", str(repo))
    assert code == 2, err
    assert message in err and err.count("\n") <= 2 and "Traceback" not in err
    assert out == "" and git_state(repo) == state


def test_a_name_that_already_exists_exits_2_and_writes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_cluster(repo, ClusterSpec(name="us-2", environment="dev", region="other"))
    state = git_state(repo)
    code, out, err = run_cli(capsys, "region", "add", "us", "--from", "eu", "--repo", str(repo))
    assert code == 2 and out == ""
    assert 'cluster "us-2" (modelled on "eu-2") already exists (clusters/us-2.yaml)' in err
    assert git_state(repo) == state


def test_add_clusters_is_one_commit_and_refuses_all_when_one_exists(tmp_path: Path) -> None:
    root = new_fleet_repo(tmp_path, clusters={"a": "dev"})
    head = git(root, "rev-parse", "HEAD").strip()
    specs = [ClusterSpec(name="b", environment="dev"), ClusterSpec(name="a", environment="prod")]
    with pytest.raises(InputError, match='cluster "a" already exists'):
        add_clusters(root, specs, "two")
    assert git(root, "rev-parse", "HEAD").strip() == head
    with pytest.raises(InputError, match='cluster "b" is given twice'):
        add_clusters(root, [specs[0], specs[0]], "twice")
    with pytest.raises(InputError, match='unknown environment "qa"'):
        add_clusters(root, [ClusterSpec(name="c", environment="qa")], "qa")
    res = add_clusters(root, [specs[0], ClusterSpec(name="c", environment="prod")], "Add b and c")
    assert res.clusters == ("b", "c") and res.files == ("clusters/b.yaml", "clusters/c.yaml")
    assert git(root, "rev-parse", "HEAD").strip() == res.revision
    assert git(root, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    assert set(load_registry(root, "HEAD").clusters) == {"a", "b", "c"}


def test_region_list(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "region", "list", "-o", "json", "--repo", str(repo))
    assert code == 0
    assert json.loads(out)["items"] == [
        {"region": "ap", "clusters": ["ap-1"], "environments": ["prod"], "waves": [0]},
        {"region": "eu", "clusters": ["canary", "eu-1", "eu-2"], "environments": ["dev", "prod", "staging"],
         "waves": [0, 1, 2]},
    ]
