"""Flux reconciles for real: source- and kustomize-controller run beside one local cluster and apply the
fleet repo, which fleet serves them on loopback. On that cluster, in order:

- `fleet bootstrap --to REV` pins the operator to REV and Flux (not fleet) applies it;
- render parity: what Flux applied is, object for object, what `fleet render` gives at the same revision
  (variables, defaults, `$${VAR}` escapes, an object that opts out of substitution);
- self-heal: a Deployment scaled by hand and a ConfigMap deleted come back without fleet applying
  anything; `fleet diff` shows the drift before and none after;
- prune and rollback: an object removed from Git disappears once the pin moves, and a revert committed
  and promoted brings it back.

Every wait is for an explicit state (a revision in Flux's status, a reconcile request handled).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import fleet, make_fleet_repo, need_local_clusters, push, removed_at_end
from helpers import commit_file, git

from fleet import toolchain
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("operator")]

NAME = f"e2e-flux-{os.getpid() % 10000}"

PARITY = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: parity
data:
  greeting: "${GREETING}"
  fallback: "${UNSET_WITH_DEFAULT:=the default}"
  escaped: "$${NOT_A_VARIABLE}"
  cluster: "${FLEET_CLUSTER}"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: opted-out
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  script: "echo ${HOME} and ${PATH}"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: prunable
data:
  state: "here"
"""


@dataclass
class World:
    repo: Path
    env: dict[str, str]
    kubeconfig: Path
    rev: str


def kubectl(kc: Path, *args: str, check: bool = True) -> Any:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), *args], capture_output=True,
                          text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def get(kc: Path, *args: str) -> Any:
    return json.loads(kubectl(kc, "get", *args, "-o", "json").stdout)


def until(what: str, fn: Any, timeout: float = 120) -> Any:
    """Poll for an explicit state (never a fixed delay)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[World]:
    need_local_clusters()
    parent = tmp_path_factory.mktemp("operator")
    repo = make_fleet_repo(parent)
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev", vars={"GREETING": "hej"}))
    commit_file(repo, "environments/dev/parity.yaml", PARITY, "dev: parity objects")
    kust = (repo / "environments/dev/kustomization.yaml").read_text().replace(
        "  - ../../base\n", "  - ../../base\n  - parity.yaml\n")
    rev = commit_file(repo, "environments/dev/kustomization.yaml", kust, "dev: with parity objects")
    push(repo)
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(repo)}
    lc = LocalClusters(e2e_home / "local")
    with removed_at_end(env, lc, NAME):
        fleet(env, "bootstrap", NAME, "--to", rev)
        yield World(repo, env, lc.kubeconfig_path(NAME), rev)


def flux_status(world: World) -> dict[str, Any]:
    return dict(get(world.kubeconfig, "-n", "flux-system", "kustomization", "fleet")["status"])


def test_bootstrap_pins_the_operator_and_flux_applies_the_revision(world: World) -> None:
    kc = world.kubeconfig
    src = get(kc, "-n", "flux-system", "gitrepository", "fleet")
    assert src["spec"]["ref"]["commit"] == world.rev
    assert src["spec"]["url"].startswith("http://127.0.0.1:")
    assert src["status"]["artifact"]["revision"].endswith(world.rev)
    # The recovery ended when fleet's gates saw every object healthy; Flux says Ready at its next health poll.
    until("Flux to say Ready at the revision",
          lambda: str(flux_status(world).get("lastAppliedRevision", "")).endswith(world.rev))
    # Flux applied it, not fleet: there is no fleet inventory, and the objects carry Flux's field manager.
    assert kubectl(kc, "-n", "fleet-system", "get", "configmap", "fleet-inventory", check=False).returncode != 0
    cm = json.loads(kubectl(kc, "-n", "hello-dev", "get", "configmap", "parity", "--show-managed-fields",
                            "-o", "json").stdout)
    assert {m["manager"] for m in cm["metadata"]["managedFields"]} == {"kustomize-controller"}
    status = json.loads(fleet(world.env, "status", "-o", "json").stdout)
    row = next(c for c in status["items"] if c["name"] == NAME)
    assert row["applied_by"] == "flux" and world.rev.startswith(row["applied"])
    assert row["operator"] == "Ready" and row["health"] == "healthy", row
    local = json.loads(fleet(world.env, "local", "list", "-o", "json").stdout)
    assert next(x for x in local["items"] if x["name"] == NAME)["operator"] == "running"


def test_what_flux_applies_is_what_fleet_renders_object_for_object(world: World) -> None:
    rendered = json.loads(fleet(world.env, "render", NAME, "--rev", world.rev, "-o", "json").stdout)
    objects = rendered["objects"]  # `render -o json` is an object: {"cluster", "revision", "objects", ...}
    want = {f"{(o['metadata'].get('namespace') or '')}_{o['metadata']['name']}_"
            f"{o['apiVersion'].rsplit('/', 1)[0] if '/' in o['apiVersion'] else ''}_{o['kind']}" for o in objects}
    applied = {e["id"] for e in flux_status(world)["inventory"]["entries"]}
    assert applied == want
    data = get(world.kubeconfig, "-n", "hello-dev", "configmap", "parity")["data"]
    assert data == {"greeting": "hej", "fallback": "the default", "escaped": "${NOT_A_VARIABLE}",
                    "cluster": NAME}
    by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert by_name["parity"]["data"] == data
    opted = get(world.kubeconfig, "-n", "hello-dev", "configmap", "opted-out")["data"]
    assert opted == by_name["opted-out"]["data"] == {"script": "echo ${HOME} and ${PATH}"}
    # And field by field: a server-side dry run of fleet's render against what Flux applied finds nothing.
    fleet(world.env, "diff", NAME, "--rev", world.rev)


def test_flux_heals_drift_by_itself(world: World) -> None:
    kc = world.kubeconfig
    kubectl(kc, "-n", "hello-dev", "scale", "deployment", "hello", "--replicas=4")
    kubectl(kc, "-n", "hello-dev", "delete", "configmap", "hello-config")
    out = fleet(world.env, "diff", NAME, "--rev", world.rev, ok=(1,)).stdout
    assert "hello-config" in out and "replicas" in out
    token = f"heal-{time.monotonic_ns()}"
    for kind in ("gitrepository", "kustomization"):
        kubectl(kc, "-n", "flux-system", "annotate", "--overwrite", kind, "fleet",
                f"reconcile.fluxcd.io/requestedAt={token}")
    until("Flux to handle the reconcile request",
          lambda: flux_status(world).get("lastHandledReconcileAt") == token)
    assert get(kc, "-n", "hello-dev", "deployment", "hello")["spec"]["replicas"] == 1
    assert get(kc, "-n", "hello-dev", "configmap", "hello-config")["data"]["LOG_LEVEL"] == "debug"
    fleet(world.env, "diff", NAME, "--rev", world.rev)  # exit 0: no drift left


def test_an_object_removed_from_git_is_pruned_and_a_revert_brings_it_back(world: World) -> None:
    kc = world.kubeconfig
    text = PARITY.split("---\n")
    removed = commit_file(world.repo, "environments/dev/parity.yaml", "---\n".join(text[:2]), "dev: drop prunable")
    push(world.repo)
    out = fleet(world.env, "sync", NAME, "-o", "json").stdout
    assert json.loads(out)["mode"] == "operator" and json.loads(out)["revision"] == removed
    assert kubectl(kc, "-n", "hello-dev", "get", "configmap", "prunable", check=False).returncode != 0
    git(world.repo, "revert", "--no-edit", "HEAD")
    reverted = git(world.repo, "rev-parse", "HEAD").strip()
    push(world.repo)
    done = fleet(world.env, "sync", NAME, "-o", "json")
    promoted = json.loads(done.stdout)
    assert promoted["revision"] == reverted and promoted["previous"] == removed, done.stderr
    assert get(kc, "-n", "hello-dev", "configmap", "prunable")["data"] == {"state": "here"}
    assert get(kc, "-n", "flux-system", "gitrepository", "fleet")["spec"]["ref"]["commit"] == reverted


def test_a_commit_that_was_never_pushed_is_refused_before_the_pin_moves(world: World) -> None:
    before = get(world.kubeconfig, "-n", "flux-system", "gitrepository", "fleet")["spec"]["ref"]
    commit_file(world.repo, "environments/dev/extra.yaml", "# not pushed\n", "dev: local only")
    done = fleet(world.env, "sync", NAME, ok=(2,))
    assert "is not on the remote" in done.stderr and "fleet push" in done.stderr
    assert get(world.kubeconfig, "-n", "flux-system", "gitrepository", "fleet")["spec"]["ref"] == before
    push(world.repo)
