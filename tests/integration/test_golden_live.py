"""Golden files of the live read commands on the real local cluster: ``diff`` (all to create, none, an
object edited on the cluster), ``sync`` (first apply, then nothing to do), ``gate`` and ``status`` of a
reachable cluster, each as a user runs it (tests/golden/harness.py compares the table and ``-o json``, and
checks that ``-o yaml`` carries the JSON's data).

What differs from run to run is replaced before comparing: the commit ids (the registry entry names the
session cluster's kubeconfig, so the commits differ) by ``<REVISION>`` (and ``<REVISION12>``, as wide as
the short id, so tables keep their columns), paths, times and durations as the harness does.

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden_live.py   # rewrite, then review
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_support import configmap, deployment, live_repo, namespace, reset_inventory, wait_until

from fleet.adapters.kube import Kube
from fleet.local.clusters import LocalCluster
from tests.golden.harness import Case, check, check_case, normalize, run

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]

NS = "golden-live"  # fixed: it is in the output


@pytest.fixture
def live_fleet(tmp_path: Path, live_cluster: LocalCluster, kube: Kube, monkeypatch: pytest.MonkeyPatch,
               fleet_home: Path) -> tuple[Path, tuple[tuple[Path, str], ...]]:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", "160")
    kube.delete("v1", "Namespace", NS)
    wait_until(f"namespace {NS} gone", lambda: kube.get("v1", "Namespace", NS) is None, timeout=120)
    reset_inventory(kube)
    objects = [namespace(NS), configmap(NS, "settings", mode="fast"), deployment(NS, "web", replicas=2)]
    repo = live_repo(tmp_path, "live-1", live_cluster.kubeconfig, objects, env="golden",
                     extra={"region": "eu", "wave": 1, "labels": {"team": "web"}})
    head = run("render", "live-1", "-o", "json", "--repo", str(repo))[1].split('"revision": "')[1][:40]
    places = ((repo, "<REPO>"), (fleet_home, "<HOME>"), (Path(live_cluster.kubeconfig), "<KUBECONFIG>"),
              (Path(head), "<REVISION>"), (Path(head[:12]), "<REVISION12>"))
    yield repo, places
    kube.delete("v1", "Namespace", NS)
    reset_inventory(kube)


def _table(out: str, places: tuple[tuple[Path, str], ...]) -> str:
    """A table's text, normalised as the harness does, durations (``0.4s``) included."""
    text = normalize(out, *places, table=True)
    return re.sub(r"(?<![\w.])\d+\.\ds\b", lambda m: "<S>".ljust(len(m.group())), text)


def test_the_live_commands_print_what_their_golden_files_hold(
    live_fleet: tuple[Path, tuple[tuple[Path, str], ...]], kube: Kube
) -> None:
    repo, places = live_fleet
    r = ("--repo", str(repo))

    # nothing applied yet: everything to create (exit 1: drift)
    check_case(Case("diff-live-create", ("diff", "live-1"), code=1), repo, *places)

    # the first apply (JSON), then the same again: nothing sent
    code, out, err = run("sync", "live-1", "-o", "json", *r)
    assert code == 0, err
    check("sync-live.json", normalize(out, *places))
    code, out, err = run("sync", "live-1", *r)
    assert code == 0, err
    check("sync-live-same.txt", _table(out, places))

    check_case(Case("diff-live-none", ("diff", "live-1")), repo, *places)
    # the operator gate off: whether it would run depends on which CRDs earlier tests left on the shared cluster
    check_case(Case("gate-live", ("gate", "live-1", "--timeout", "120s", "--operator-gate", "off")), repo, *places)
    check_case(Case("status-live", ("status",)), repo, *places)

    # someone edits an object on the cluster: diff shows it (exit 1)
    kube.apply(configmap(NS, "settings", mode="slow"), field_manager="golden-test")
    wait_until("the edit", lambda: ((kube.get("v1", "ConfigMap", "settings", NS) or {}).get("data") or {}).get(
        "mode") == "slow")
    check_case(Case("diff-live-update", ("diff", "live-1"), code=1), repo, *places)
