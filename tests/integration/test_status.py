"""fleet status over a small fleet: a healthy synced cluster, a broken one, one that is down, one fleet
cannot reach at all. The down one answers fast and never holds up the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from helpers import run_cli
from live_support import configmap, deployment, live_repo, namespace, write_env
from test_live_failures import dead_kubeconfig

from fleet.adapters.git import GitRepo
from fleet.adapters.kube import KubeTarget
from fleet.local.clusters import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def test_status_of_a_small_fleet(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    live_cluster: LocalCluster,
    live_target: KubeTarget,
    ns: str,
) -> None:
    objects = [namespace(ns), configmap(ns, "settings"), deployment(ns, "web")]
    repo = live_repo(tmp_path, "it-up", live_cluster.kubeconfig, objects, extra={"region": "eu-1", "wave": 1})
    dead = dead_kubeconfig(live_cluster.kubeconfig, tmp_path / "dead.yaml")
    clusters = {
        "it-down": {"access": {"kubeconfig": str(dead)}, "region": "us-2", "wave": 2},
        "it-nowhere": {"region": "ap-3", "wave": 3},
    }
    files = {}
    for name, extra in clusters.items():
        spec = {"apiVersion": "fleet.dev/v1", "kind": "Cluster", "name": name, "environment": "it", **extra}
        files[f"clusters/{name}.yaml"] = yaml.safe_dump(spec)
    with GitRepo.open(repo) as g, g.lock():
        head = g.commit(files, "more clusters")

    code, out, err = run_cli(capsys, "status", "--repo", str(repo), "-o", "json")
    assert code == 0, err
    before = {c["name"]: c for c in json.loads(out)["items"]}
    assert before["it-up"]["health"] == "unknown" and before["it-up"]["message"] == "never synced by fleet"

    assert run_cli(capsys, "sync", "it-up", "--repo", str(repo))[0] == 0
    assert run_cli(capsys, "gate", "it-up", "--repo", str(repo), "--timeout", "120s", "--mark-good")[0] == 0

    t0 = time.monotonic()
    code, out, err = run_cli(capsys, "status", "--repo", str(repo), "-o", "json")
    took = time.monotonic() - t0
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "ClusterStatusList" and data["metadata"]["revision"] == head
    rows = {c["name"]: c for c in data["items"]}
    assert [c["name"] for c in data["items"]] == ["it-up", "it-down", "it-nowhere"]  # by wave
    up = rows["it-up"]
    assert (up["desired"], up["applied"], up["last_good"]) == (head[:12], head[:12], head[:12])
    assert (up["health"], up["reachable"], up["drift"], up["applied_state"]) == (
        "healthy",
        "yes",
        "-",
        "applied",
    )
    assert (up["environment"], up["region"], up["wave"]) == ("it", "eu-1", 1)
    down = rows["it-down"]
    assert down["reachable"] == "no" and down["health"] == "unknown" and down["applied"] is None
    assert "refused" in down["message"].lower()
    assert down["seconds"] < 10  # refused at once; no retries in status
    nowhere = rows["it-nowhere"]
    assert nowhere["reachable"] == "no access" and "access.context" in nowhere["message"]
    assert took < 30

    # table output; drift computed on request
    code, out, _ = run_cli(capsys, "status", "--repo", str(repo), "--drift", "-l", "region=eu-1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:13] == [
        "NAME",
        "ENV",
        "REGION",
        "WAVE",
        "DESIRED",
        "APPLIED",
        "BY",
        "GOOD",
        "HEALTH",
        "OPERATOR",
        "DRIFT",
        "DRILL",
        "REACHABLE",
    ]
    assert len(lines) == 2 and lines[1].split()[:13] == [
        "it-up",
        "it",
        "eu-1",
        "1",
        head[:12],
        head[:12],
        "fleet",  # synced directly: no operator on this cluster
        head[:12],
        "healthy",
        "-",
        "no",
        "never",  # no drill yet
        "yes",
    ]

    # a broken rollout and drift show up
    with GitRepo.open(repo) as g, g.lock():
        g.commit(
            write_env(
                repo,
                "it",
                [
                    namespace(ns),
                    configmap(ns, "settings"),
                    deployment(ns, "web", node_selector={"pool": "none"}),
                ],
            ),
            "break it",
        )
    assert run_cli(capsys, "diff", "it-up", "--repo", str(repo))[0] == 1
    assert run_cli(capsys, "sync", "it-up", "--repo", str(repo))[0] == 0
    code, out, _ = run_cli(capsys, "status", "--repo", str(repo), "-o", "json", "-l", "name=it-up", "--drift")
    up = json.loads(out)["items"][0]
    assert up["health"] in ("progressing", "unhealthy") and f"Deployment/{ns}/web" in up["message"]
    assert up["last_good"] == head[:12] and up["applied"] != head[:12] and up["drift"] == "no"
