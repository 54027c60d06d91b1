"""The live path on both adopted layouts, through the real operator: a kustomize overlay tree (``bases/`` +
``overlays/<env>/``) and a Flux repo (``clusters/<name>/`` holding Flux Kustomizations with dependsOn and
substituteFrom, building ``infrastructure/`` and ``apps/<env>``), each written here, pushed to a local bare
remote and adopted by ``fleet adopt`` without a file moved. Then, for each:

- ``fleet good --set`` the adoption commit and ``fleet bootstrap`` (no ``--to``): a local cluster whose
  operator is pinned at that last good commit, pointed at the environment's overlay, or at the cluster's
  own Flux directory; the gates wait for every Flux Kustomization of the tree Ready at the revision;
- ``fleet rollout`` of a new commit, after which ``fleet diff`` finds no drift;
- for the Flux directory, parity with kustomize-controller: what fleet renders is, object for object and
  field for field (server-set fields aside), what Flux applied on the cluster, and the objects Flux's
  Kustomizations hold in their inventories are exactly the rendered ones (fleet's own sync objects
  aside, which stand in place of the tree's copies).

Every wait is for an explicit state (a revision in Flux's status), never a fixed delay.
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
from e2e_support import fleet, need_local_clusters, push, removed_at_end, wait_until
from helpers import commit_file, git

from fleet import toolchain
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from tests.adopt_fixtures import flux_live_files, kustomize_repo, write_tree

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("adopted-operator")]

SUFFIX = os.getpid() % 10000
KUST = f"ad-kust-{SUFFIX}"
FLUX = f"ad-flux-{SUFFIX}"
FLUX_API = "kustomize.toolkit.fluxcd.io/v1"


@dataclass
class World:
    repo: Path
    env: dict[str, str]
    cluster: str
    kubeconfig: Path
    good: str  # the commit bootstrap rebuilt at (the last good one)


def kubectl_json(kc: Path, *args: str) -> Any:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), "get", *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _adopted(root: Path, remote: Path, env: dict[str, str]) -> str:
    """Push the team's repo to its remote, adopt it, and check nothing of theirs moved."""
    git(root, "remote", "add", "origin", str(remote))
    push(root)
    before = set(git(root, "ls-files").split())
    fleet(env, "adopt", str(root))
    changed = git(root, "diff", "--name-status", "HEAD~1", "HEAD").split("\n")
    assert all(line.startswith("A\t") for line in changed if line), changed  # only added files
    assert before <= set(git(root, "ls-files").split())
    return git(root, "rev-parse", "HEAD").strip()


def _world(root: Path, cluster: str, home: Path, env: dict[str, str]) -> Iterator[World]:
    rev = git(root, "rev-parse", "HEAD").strip()
    push(root)
    lc = LocalClusters(home / "local")
    with removed_at_end(env, lc, cluster):
        fleet(env, "good", cluster, "--set", rev, "--reason", "adopted: the team's Flux applied it")
        fleet(env, "bootstrap", cluster)  # at the last good commit, through the operator
        yield World(root, env, cluster, lc.kubeconfig_path(cluster), rev)


@pytest.fixture(scope="module")
def kust_world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[World]:
    need_local_clusters()
    parent = tmp_path_factory.mktemp("adopt-kust")
    subprocess.run(["git", "init", "-q", "--bare", str(parent / "remote.git")], check=True)
    root = kustomize_repo(parent)
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(root)}
    _adopted(root, parent / "remote.git", env)
    fleet(env, "cluster", "add", KUST, "--env", "dev")
    yield from _world(root, KUST, e2e_home, env)


@pytest.fixture(scope="module")
def flux_world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[World]:
    need_local_clusters()
    parent = tmp_path_factory.mktemp("adopt-flux")
    subprocess.run(["git", "init", "-q", "--bare", str(parent / "remote.git")], check=True)
    root = parent / "fleet-infra"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_tree(root, flux_live_files(FLUX))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "flux repo")
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(root)}
    _adopted(root, parent / "remote.git", env)
    spec = (root / f"fleet/clusters/{FLUX}.yaml").read_text()
    assert f"flux: clusters/{FLUX}" in spec, spec
    yield from _world(root, FLUX, e2e_home, env)


def kustomizations(world: World) -> dict[str, dict[str, Any]]:
    items = kubectl_json(world.kubeconfig, "-A", "kustomizations.kustomize.toolkit.fluxcd.io")["items"]
    return {f"{k['metadata']['namespace']}/{k['metadata']['name']}": k for k in items}


def _ready_at(k: dict[str, Any], rev: str) -> bool:
    st = k.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    return ready.get("status") == "True" and str(st.get("lastAppliedRevision", "")).endswith(rev)


def _all_ready_at(world: World, rev: str, timeout: float = 60) -> None:
    """Every Kustomization Ready at ``rev``: waited for (an explicit state), since a recovery or rollout whose
    gates judged every object itself ends before Flux's next health poll says Ready (within 5 s)."""
    seen: dict[str, dict[str, Any]] = {}

    def ready() -> bool:
        seen.clear()
        seen.update(kustomizations(world))
        return bool(seen) and all(_ready_at(k, rev) for k in seen.values())

    wait_until(ready, f"every Kustomization Ready at {rev[:12]}", timeout=timeout, detail=lambda: str({
        n: ((k.get("status") or {}).get("lastAppliedRevision"), (k.get("status") or {}).get("conditions"))
        for n, k in seen.items()}))


def _rollout(world: World, path: str, text: str) -> str:
    new = commit_file(world.repo, path, text, "a new commit to roll out")
    push(world.repo)
    fleet(world.env, "rollout", "--rev", new)
    good = json.loads(fleet(world.env, "good", world.cluster, "-o", "json").stdout)
    assert new.startswith(str(good.get("revision") or good.get("good") or "")[:12]), good
    return new


# ---- the kustomize overlay tree -----------------------------------------------------------------------


def test_an_adopted_overlay_tree_is_bootstrapped_by_the_operator_at_its_last_good_commit(kust_world: World) -> None:
    w = kust_world
    src = kubectl_json(w.kubeconfig, "-n", "flux-system", "gitrepository", "fleet")
    assert src["spec"]["ref"]["commit"] == w.good
    ks = kustomizations(w)
    assert list(ks) == ["flux-system/fleet"] and ks["flux-system/fleet"]["spec"]["path"] == "./overlays/dev"
    _all_ready_at(w, w.good)
    cm = kubectl_json(w.kubeconfig, "-n", "web-dev", "configmap", "web-config")
    assert cm["data"] == {"GREETING": f"hello from {KUST}"}
    fleet(w.env, "diff", w.cluster)  # exit 0: no drift


def test_a_rollout_on_the_overlay_tree_moves_the_pin_and_leaves_no_drift(kust_world: World) -> None:
    w = kust_world
    text = (w.repo / "bases/app/configmap.yaml").read_text() + "  FAREWELL: bye from ${FLEET_CLUSTER}\n"
    new = _rollout(w, "bases/app/configmap.yaml", text)
    _all_ready_at(w, new)
    data = kubectl_json(w.kubeconfig, "-n", "web-dev", "configmap", "web-config")["data"]
    assert data["FAREWELL"] == f"bye from {KUST}"
    out = fleet(w.env, "diff", w.cluster).stdout
    assert "no drift" in out, out


# ---- the Flux repo ------------------------------------------------------------------------------------

SERVER_SET = {"creationTimestamp", "generation", "managedFields", "resourceVersion", "uid"}


def _missing(want: Any, live: Any, path: str = "") -> list[str]:
    """Where ``live`` lacks or differs from a field ``want`` (what fleet rendered) sets."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return [f"{path}: {live!r} is not a mapping"]
        out: list[str] = []
        for k, v in want.items():
            if path == ".metadata" and k in SERVER_SET:
                continue
            out += _missing(v, live.get(k), f"{path}.{k}") if k in live else [f"{path}.{k}: missing"]
        return out
    if isinstance(want, list):
        if not isinstance(live, list) or len(live) != len(want):
            return [f"{path}: {live!r} != {want!r}"]
        return [m for i, (a, b) in enumerate(zip(want, live, strict=True)) for m in _missing(a, b, f"{path}[{i}]")]
    return [] if want == live else [f"{path}: {live!r} != {want!r}"]


def _id(o: dict[str, Any]) -> str:
    group = o["apiVersion"].rsplit("/", 1)[0] if "/" in o["apiVersion"] else ""
    return f"{o['metadata'].get('namespace') or ''}_{o['metadata']['name']}_{group}_{o['kind']}"


def _parity(w: World, rev: str) -> None:
    rendered = json.loads(fleet(w.env, "render", w.cluster, "--rev", rev, "-o", "json").stdout)
    objects = rendered["objects"]  # `render -o json` is an object: {"cluster", "revision", "objects", ...}
    ks = kustomizations(w)
    # What Flux applied from the fleet repo: the inventories of fleet's Kustomization and of every
    # Kustomization that builds from its GitRepository; less fleet's own two objects (skipped by Flux).
    own = {"flux-system_flux-system_source.toolkit.fluxcd.io_GitRepository",
           "flux-system_flux-system_kustomize.toolkit.fluxcd.io_Kustomization"}
    applied = {e["id"] for k in ks.values()
               for e in ((k.get("status") or {}).get("inventory") or {}).get("entries", [])}
    assert applied - own == {_id(o) for o in objects}
    for o in objects:
        ns = o["metadata"].get("namespace")
        where = ["-n", ns] if ns else []
        plural = f"{o['kind'].lower()}.{o['apiVersion'].rsplit('/', 1)[0]}" if "/" in o["apiVersion"] else o["kind"]
        live = kubectl_json(w.kubeconfig, *where, plural, o["metadata"]["name"], "--show-managed-fields")
        assert not _missing(o, live), (_id(o), _missing(o, live))
        managers = {m["manager"] for m in live["metadata"].get("managedFields") or []}
        assert "kustomize-controller" in managers, (_id(o), managers)  # Flux applied it, not fleet


def test_an_adopted_flux_repo_is_applied_by_its_own_kustomizations_at_the_last_good_commit(flux_world: World) -> None:
    w = flux_world
    src = kubectl_json(w.kubeconfig, "-n", "flux-system", "gitrepository", "flux-system")
    # fleet's pinned source stands in place of the tree's (which follows the team's branch on GitHub)
    assert src["spec"]["ref"]["commit"] == w.good and src["spec"]["url"].startswith("http://127.0.0.1:"), src["spec"]
    assert src["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"] == "disabled"
    ks = kustomizations(w)
    assert set(ks) == {"flux-system/flux-system", "flux-system/infra-controllers", "flux-system/infra-configs",
                       "flux-system/apps"}
    assert ks["flux-system/flux-system"]["spec"]["path"] == f"./clusters/{FLUX}"
    assert ks["flux-system/flux-system"]["spec"]["postBuild"]["substitute"]["FLEET_CLUSTER"] == FLUX
    _all_ready_at(w, w.good)  # the gates waited for every Kustomization of the tree
    deploy = kubectl_json(w.kubeconfig, "-n", "podinfo", "deployment", "podinfo")
    assert deploy["spec"]["replicas"] == 2 and deploy["metadata"]["labels"]["env"] == "staging"
    env = {e["name"]: e["value"] for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"REGION": "eu-west-1", "TIER": "web"}  # substituteFrom the tree's ConfigMap
    fleet(w.env, "diff", w.cluster)  # exit 0: no drift


def test_what_kustomize_controller_applied_is_what_fleet_renders(flux_world: World) -> None:
    _parity(flux_world, flux_world.good)


def test_a_rollout_on_the_flux_repo_reaches_every_kustomization_and_leaves_no_drift(flux_world: World) -> None:
    w = flux_world
    vars_file = f"clusters/{FLUX}/cluster-vars.yaml"
    text = (w.repo / vars_file).read_text().replace("eu-west-1", "eu-north-1")
    new = _rollout(w, vars_file, text)
    _all_ready_at(w, new)
    deploy = kubectl_json(w.kubeconfig, "-n", "podinfo", "deployment", "podinfo")
    env = {e["name"]: e["value"] for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REGION"] == "eu-north-1"
    out = fleet(w.env, "diff", w.cluster).stdout
    assert "no drift" in out, out
    _parity(w, new)
