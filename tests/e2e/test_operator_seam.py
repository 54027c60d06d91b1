"""The operator seam on a real cluster through the real engine and Flux's controllers:

- one owner of the pin: `fleet sync` moves the GitRepository's commit through the cluster's Pulumi stack,
  `fleet provision` (no --pin) keeps it, the next sync moves it again; no other field manager ever owns
  ``spec.ref.commit``, and neither `fleet drift` nor `fleet diff` reports anything;
- a cluster moves between modes cleanly: a direct sync (break-glass) and then a sync through the operator
  hands the objects over (fleet's inventory and marks gone, `fleet diff` clean), and back again;
- the sync says which mode it chose and why.

Every wait is fleet's own (its exit tells); nothing is ordered by sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import fleet, make_fleet_repo, need_local_clusters, push, removed_at_end
from helpers import commit_file

from fleet import toolchain
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("operator-seam")]

NAME = f"e2e-seam-{os.getpid() % 10000}"


@dataclass
class World:
    repo: Path
    env: dict[str, str]
    kubeconfig: Path


def kubectl(kc: Path, *args: str) -> Any:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.startswith("{") else done.stdout


def source(world: World) -> dict[str, Any]:
    return dict(kubectl(world.kubeconfig, "get", "-n", "flux-system", "gitrepository", "fleet",
                        "--show-managed-fields", "-o", "json"))


def commit_managers(src: dict[str, Any]) -> set[str]:
    """The field managers that own ``spec.ref.commit`` of the GitRepository."""
    out = set()
    for mf in src["metadata"].get("managedFields") or []:
        ref = ((mf.get("fieldsV1") or {}).get("f:spec") or {}).get("f:ref") or {}
        if "f:commit" in ref:
            out.add(mf["manager"])
    return out


def new_commit(world: World, n: int) -> str:
    rev = commit_file(world.repo, f"environments/dev/step-{n}.yaml",
                      f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: step-{n}\ndata:\n  n: \"{n}\"\n",
                      f"dev: step {n}")
    kust = world.repo / "environments/dev/kustomization.yaml"
    text = kust.read_text().replace("  - ../../base\n", f"  - ../../base\n  - step-{n}.yaml\n")
    rev = commit_file(world.repo, "environments/dev/kustomization.yaml", text, f"dev: with step {n}")
    push(world.repo)
    return rev


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[World]:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path_factory.mktemp("seam"))
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev"))
    push(repo)
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(repo)}
    lc = LocalClusters(e2e_home / "local")
    with removed_at_end(env, lc, NAME):
        fleet(env, "provision", NAME)
        yield World(repo, env, lc.kubeconfig_path(NAME))


def test_sync_provision_sync_never_fight_over_the_pin(world: World) -> None:
    a = new_commit(world, 1)
    done = fleet(world.env, "sync", NAME, "--rev", a, "-o", "json")
    assert 'sync operator: Flux is installed on "' in done.stderr, done.stderr
    assert json.loads(done.stdout)["revision"] == a
    assert source(world)["spec"]["ref"]["commit"] == a
    done = fleet(world.env, "provision", NAME)  # names no revision: keeps the stack's pin
    assert f"pinned to {a[:12]}" in done.stderr, done.stderr
    src = source(world)
    assert src["spec"]["ref"]["commit"] == a and len(commit_managers(src)) == 1, src["metadata"]["managedFields"]
    fleet(world.env, "drift", NAME)  # exit 0: the stack and the cluster agree
    fleet(world.env, "diff", NAME, "--rev", a)  # exit 0: no drift
    b = new_commit(world, 2)
    fleet(world.env, "sync", NAME, "--rev", b)
    src = source(world)
    assert src["spec"]["ref"]["commit"] == b and len(commit_managers(src)) == 1, src["metadata"]["managedFields"]
    fleet(world.env, "drift", NAME)
    fleet(world.env, "diff", NAME, "--rev", b)


def test_direct_then_operator_hands_the_objects_over_and_back_again(world: World) -> None:
    c = new_commit(world, 3)
    done = fleet(world.env, "sync", NAME, "--rev", c, "--sync", "direct")
    assert "sync direct: --sync direct: fleet applies the objects itself (break-glass)" in done.stderr, done.stderr
    cm = kubectl(world.kubeconfig, "get", "configmap", "step-3", "-n", "hello-dev", "-o", "json")
    assert cm["metadata"]["labels"].get("fleet.dev/managed-by") == "fleet"
    fleet(world.env, "diff", NAME, "--rev", c)  # as fleet applied it: no drift
    d = new_commit(world, 4)
    done = fleet(world.env, "sync", NAME, "--rev", d)  # auto: through Flux, which is installed
    assert "sync operator:" in done.stderr and "handed over from fleet's direct sync to the operator" in done.stderr
    inventory = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(world.kubeconfig), "get",
                                "configmap", "-n", "fleet-system", "fleet-inventory"], capture_output=True, text=True)
    assert inventory.returncode != 0 and "NotFound" in inventory.stderr  # fleet applies nothing any more
    cm = kubectl(world.kubeconfig, "get", "configmap", "step-3", "-n", "hello-dev", "-o", "json")
    assert "fleet.dev/managed-by" not in (cm["metadata"].get("labels") or {}), cm["metadata"]
    fleet(world.env, "diff", NAME, "--rev", d)  # exit 0: no drift from fleet's marks, for ever
    # and back: break-glass again, then the operator again
    fleet(world.env, "sync", NAME, "--rev", d, "--sync", "direct")
    fleet(world.env, "diff", NAME, "--rev", d)
    fleet(world.env, "sync", NAME, "--rev", d)
    fleet(world.env, "diff", NAME, "--rev", d)
