"""`fleet provision --all -l SELECTOR --max-parallel N`: clusters provisioned in parallel through the
CLI; one cluster's bad input does not stop the others; `fleet destroy --yes` removes each."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import make_fleet_repo, need_local_clusters
from helpers import run_cli

from fleet.adapters.pulumi_auto import Engine, EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("provision-many")]

SUFFIX = os.getpid() % 10000
LOCAL = [f"e2e-many-a-{SUFFIX}", f"e2e-many-b-{SUFFIX}"]
BROKEN = f"e2e-many-eks-{SUFFIX}"


@pytest.fixture
def repo(tmp_path: Path, pulumi_env: EngineSettings) -> Iterator[Path]:
    need_local_clusters()
    root = make_fleet_repo(tmp_path)
    for name in LOCAL:
        add_cluster(root, ClusterSpec(name=name, environment="dev", labels={"team": "e2e"}, settings={"nodes": 1}))
    add_cluster(root, ClusterSpec(name=BROKEN, environment="dev", provider="eks", labels={"team": "e2e-broken"}))
    add_cluster(root, ClusterSpec(name="not-selected", environment="prod", labels={"team": "other"}))
    try:
        yield root
    finally:
        for name in LOCAL:
            run_cli_quiet("destroy", name, "--yes")
            LocalClusters()._delete_quietly(name)


def run_cli_quiet(*args: str) -> int:
    from fleet.cli import main

    return main(list(args))


def test_provision_all_in_parallel_then_destroy(
    repo: Path, pulumi_env: EngineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, out, err = run_cli(
        capsys,
        "provision",
        "--all",
        "-l",
        "team=e2e",
        "--max-parallel",
        "2",
        "--repo",
        str(repo),
        "-o",
        "json",
    )
    elapsed = time.monotonic() - started
    assert code == 0, err
    results = json.loads(out)["items"]
    assert [r["cluster"] for r in results] == LOCAL  # registry order, only the selected ones
    for r in results:
        assert r["error"] is None and r["result"]["changes"].get("create", 0) >= 6
        assert Path(r["result"]["kubeconfig_path"]).is_file()
    assert all(LocalClusters().healthy(n) for n in LOCAL)
    # progress lines carry the cluster's name, so parallel output stays readable
    assert any(ln.startswith(f"✔ {LOCAL[0]}: ") for ln in err.splitlines())
    assert any(ln.startswith(f"✔ {LOCAL[1]}: ") for ln in err.splitlines())
    print(f"provisioned {len(LOCAL)} local clusters in parallel in {elapsed:.1f}s")

    for name in LOCAL:
        code, out, err = run_cli(capsys, "destroy", name, "--yes", "-o", "json")
        assert code == 0, err
        assert json.loads(out)["existed"] is True
        assert not LocalClusters().exists(name)
        assert not Engine(pulumi_env).exists(name)


def test_one_clusters_bad_input_does_not_stop_the_others(
    repo: Path, pulumi_env: EngineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys,
        "provision",
        "--all",
        "-l",
        "team in (e2e,e2e-broken)",
        "--preview",
        "--repo",
        str(repo),
        "-o",
        "json",
    )
    assert code == 2, err  # the worst exit code of the failures: bad input
    by_name = {r["cluster"]: r for r in json.loads(out)["items"]}
    assert set(by_name) == {*LOCAL, BROKEN}
    assert "settings.region: the eks provider needs this setting" in by_name[BROKEN]["error"]
    for name in LOCAL:
        assert by_name[name]["error"] is None and by_name[name]["result"]["preview"] is True
        assert not LocalClusters().exists(name)  # a preview creates nothing
    assert f"✗ 1 of 3 clusters failed: {BROKEN}" in err
