"""Golden file of ``fleet sync -o json`` in operator mode (issue 19): a local cluster provisioned through the
real engine with Flux's controllers beside it, a new commit pushed, then ``fleet sync CLUSTER --rev COMMIT
-o json`` as a user runs it; its JSON (the Promotion: the pin moved, fetched and applied by Flux) is compared
with tests/golden/sync-operator.json (tests/integration/test_golden_live.py holds the direct-mode one).

What differs from run to run is replaced before comparing, as the harness does: the cluster's name (it
carries the test process's id), the commit ids (``<REVISION>``, ``<PREVIOUS>``), times and durations.

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/e2e/test_golden_operator_sync.py   # rewrite, then review
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import fleet, make_fleet_repo, need_local_clusters, push, removed_at_end
from helpers import commit_file, git

from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster
from tests.golden.harness import check, normalize

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("golden-operator-sync")]

NAME = f"e2e-gold-{os.getpid() % 10000}"


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings,
                e2e_home: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path_factory.mktemp("golden-op"))
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev"))
    push(repo)
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(repo), "TZ": "UTC", "COLUMNS": "160"}
    lc = LocalClusters(e2e_home / "local")
    with removed_at_end(env, lc, NAME):
        fleet(env, "provision", NAME)
        yield repo, env


def test_operator_sync_json_is_what_its_golden_file_holds(provisioned: tuple[Path, dict[str, str]]) -> None:
    repo, env = provisioned
    previous = git(repo, "rev-parse", "HEAD").strip()
    fleet(env, "sync", NAME, "--rev", previous)  # pinned at a known commit first
    rev = commit_file(repo, "environments/dev/golden.yaml",
                      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: golden\ndata:\n  a: \"1\"\n", "dev: golden")
    kust = repo / "environments/dev/kustomization.yaml"
    rev = commit_file(repo, "environments/dev/kustomization.yaml",
                      kust.read_text().replace("  - ../../base\n", "  - ../../base\n  - golden.yaml\n"),
                      "dev: with golden")
    push(repo)
    done = fleet(env, "sync", NAME, "--rev", rev, "-o", "json")
    assert "sync operator:" in done.stderr, done.stderr
    data = json.loads(done.stdout)
    assert (data["cluster"], data["revision"], data["previous"], data["mode"]) == (NAME, rev, previous, "operator")
    text = normalize(done.stdout, (Path(rev), "<REVISION>"), (Path(previous), "<PREVIOUS>"), (Path(NAME), "<CLUSTER>"))
    check("sync-operator.json", text)
