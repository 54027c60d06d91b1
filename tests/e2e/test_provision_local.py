"""Provisioning a `local` cluster through the real Pulumi engine, start to end, on ONE cluster:
up installs Flux as asked; a second up changes nothing; a variable changes only the Kustomization;
pinning changes only the GitRepository; refresh notices objects removed by hand; a stopped cluster
is started by the next up; destroy removes the cluster and its stack.

Each test brings the stack up to date first instead of relying on the test before it: under
pytest 9.2, xdist's ``--dist loadgroup`` no longer keeps a group on one worker (pytest-xdist issue
1386), and then each worker builds its own shared cluster. Destroy is collected last, so it runs
last on whichever worker gets it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import make_fleet_repo, need_local_clusters, push

from fleet import toolchain
from fleet.adapters.pulumi_auto import Engine, EngineSettings, StackRequest
from fleet.local.clusters import LocalClusters
from fleet.output import SilentReporter
from fleet.provision import ProvisionResult, destroy, provision, refresh, stack_outputs
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, set_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("provision-local")]

NAME = f"e2e-prov-{os.getpid() % 10000}"


def program() -> Any:
    from clusters import program

    return program


@pytest.fixture(autouse=True)
def fleet_home(shared_fleet_home: Path) -> Path:
    """This module's tests share one cluster, so one FLEET_HOME (where its kwokctl data lives)."""
    return shared_fleet_home


@dataclass
class Shared:
    repo: Path
    settings: EngineSettings
    first: ProvisionResult
    first_lines: list[str]


def kubectl(kubeconfig: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(toolchain.find("kubectl")), "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def up(shared: Shared, **kw: Any) -> tuple[ProvisionResult, list[str]]:
    push(shared.repo)  # what the tests commit reaches the remote the operator clones
    r = SilentReporter()
    res = provision(shared.repo, NAME, program=program(), reporter=r, engine=shared.settings, **kw)
    return res, r.lines


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[Shared]:
    need_local_clusters()
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEET_HOME", str(e2e_home))  # module scope: before the per-test fixture sets it
    repo = make_fleet_repo(tmp_path_factory.mktemp("prov"))
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev", vars={"GREETING": "hello"}, settings={"nodes": 2}))
    r = SilentReporter()
    try:
        first = provision(repo, NAME, program=program(), reporter=r, engine=pulumi_env)
        yield Shared(repo, pulumi_env, first, r.lines)
    finally:
        try:
            destroy(NAME, program=program(), reporter=SilentReporter(), engine=pulumi_env)
        finally:
            LocalClusters()._delete_quietly(NAME)  # whatever happened, no cluster is left running
            mp.undo()


def test_up_creates_the_cluster_and_flux_with_path_revision_and_variables(shared: Shared) -> None:
    res = shared.first
    assert res.changes.get("create", 0) >= 6 and not res.preview and res.revision is None
    kc = res.kubeconfig_path
    assert kc is not None and kc.name == f"{NAME}.yaml" and kc.parent.name == "kubeconfigs"
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    assert res.outputs["kubeconfig"] == "[secret]" and res.outputs["kustomizationPath"] == "./environments/dev"
    assert any(ln == f'✔ created LocalCluster "{NAME}-control-plane"' for ln in shared.first_lines)

    crds = {c["metadata"]["name"]: c for c in kubectl(kc, "get", "crd")["items"]}
    for crd in ("gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"):
        conds = {c["type"]: c["status"] for c in crds[crd]["status"]["conditions"]}
        assert conds["Established"] == "True"
    # The controllers run as processes beside the cluster, not as (fake) pods in it.
    assert not kubectl(kc, "-n", "flux-system", "get", "deployments")["items"]
    operator = LocalClusters().operator
    assert operator.running(NAME)
    assert {p.name for p in operator.status(NAME) if p.running} == {
        "source-controller", "kustomize-controller", "git-server"}

    repo = kubectl(kc, "-n", "flux-system", "get", "gitrepository", "fleet")
    assert repo["spec"]["url"] == operator.git_url(NAME)
    assert repo["spec"]["url"].startswith("http://127.0.0.1:")
    assert repo["spec"]["ref"] == {"branch": "main"}
    ks = kubectl(kc, "-n", "flux-system", "get", "kustomization", "fleet")["spec"]
    assert ks["path"] == "./environments/dev" and ks["prune"] is True and ks["wait"] is True
    assert ks["timeout"] == "300s"
    assert ks["postBuild"]["substitute"]["GREETING"] == "hello"
    assert ks["postBuild"]["substitute"]["FLEET_CLUSTER"] == NAME
    managers = {
        m["manager"]
        for m in kubectl(kc, "-n", "flux-system", "get", "kustomization", "fleet", "--show-managed-fields")["metadata"][
            "managedFields"
        ]
    }
    assert "fleet-pulumi" in managers  # server-side applied by the Kubernetes provider, fleet's field manager

    outs = stack_outputs(NAME, engine=shared.settings)
    assert outs["cluster"] == NAME and "kind: Config" in outs["kubeconfig"]
    assert stack_outputs(NAME, engine=shared.settings, show_secrets=False)["kubeconfig"] == "[secret]"


def greeting(kc: Path) -> str:
    ks = kubectl(kc, "-n", "flux-system", "get", "kustomization", "fleet")
    return str(ks["spec"]["postBuild"]["substitute"]["GREETING"])


def test_a_second_up_changes_nothing(shared: Shared) -> None:
    up(shared)  # whatever the tests before left to apply
    res, lines = up(shared)
    assert set(res.changes) == {"same"}, res.changes
    assert res.unchanged
    assert lines[-1] == f'✔ cluster "{NAME}" is up to date'


def test_changing_a_variable_updates_only_the_kustomization(shared: Shared) -> None:
    up(shared)
    set_cluster(shared.repo, NAME, ClusterUpdate(vars={"GREETING": "bonjour"}))
    res, lines = up(shared)
    assert res.changes.get("update") == 1 and set(res.changes) == {"same", "update"}, res.changes
    assert [ln for ln in lines if ln.startswith("✔ updated")] == ['✔ updated Kustomization "flux-sync"']
    assert res.kubeconfig_path is not None
    assert greeting(res.kubeconfig_path) == "bonjour"


def test_preview_shows_the_change_and_changes_nothing(shared: Shared) -> None:
    kc = up(shared)[0].kubeconfig_path
    assert kc is not None
    before = greeting(kc)
    set_cluster(shared.repo, NAME, ClusterUpdate(vars={"GREETING": before + "-hola"}))
    res, lines = up(shared, preview=True)
    assert res.preview and res.changes.get("update") == 1 and res.kubeconfig_path is None
    assert '► would update Kustomization "flux-sync"' in lines
    assert greeting(kc) == before  # unchanged
    up(shared)
    assert greeting(kc) == before + "-hola"


def test_the_cluster_phase_of_a_stack_with_an_operator_brings_it_up_whole(shared: Shared) -> None:
    """Pulumi cannot replace the Kubernetes provider (a rebuilt cluster's new kubeconfig) under
    --target, so the DR pipeline's provision step brings a stack that has an operator up whole; only a
    new stack gets the cluster alone first (tests/e2e/test_operator.py bootstraps one)."""
    kc = up(shared)[0].kubeconfig_path
    assert kc is not None
    before = greeting(kc)
    set_cluster(shared.repo, NAME, ClusterUpdate(vars={"GREETING": before + "-ciao"}))
    res, lines = up(shared, phase="cluster")
    assert [ln for ln in lines if ln.startswith("✔ updated")] == ['✔ updated Kustomization "flux-sync"']
    assert greeting(kc) == before + "-ciao"
    res, lines = up(shared)
    assert set(res.changes) == {"same"}, res.changes


def test_pinning_a_revision_changes_only_the_git_repository(shared: Shared) -> None:
    kc = up(shared)[0].kubeconfig_path
    assert kc is not None
    head = subprocess.run(
        ["git", "-C", str(shared.repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    res, lines = up(shared, pin_revision="HEAD")
    assert res.revision == head
    assert [ln for ln in lines if ln.startswith("✔ updated")] == ['✔ updated GitRepository "flux-source"']
    repo = kubectl(kc, "-n", "flux-system", "get", "gitrepository", "fleet")
    assert repo["spec"]["ref"] == {"branch": "main", "commit": head}
    assert res.outputs["revision"] == head
    res, _ = up(shared)  # no revision named: the stack, the pin's one owner, keeps it
    assert kubectl(kc, "-n", "flux-system", "get", "gitrepository", "fleet")["spec"]["ref"] == {
        "branch": "main", "commit": head}
    res, _ = up(shared, follow_branch=True)  # following the branch again, said so
    assert kubectl(kc, "-n", "flux-system", "get", "gitrepository", "fleet")["spec"]["ref"] == {"branch": "main"}


def test_refresh_notices_objects_deleted_by_hand_and_up_applies_them_again(shared: Shared) -> None:
    kc = up(shared)[0].kubeconfig_path
    assert kc is not None
    subprocess.run(
        [
            str(toolchain.find("kubectl")),
            "--kubeconfig",
            str(kc),
            "-n",
            "flux-system",
            "delete",
            "kustomization",
            "fleet",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    refresh(NAME, program=program(), reporter=SilentReporter(), engine=shared.settings)
    _res, lines = up(shared)
    # The provider's refresh saw it gone and dropped it from the state: the next up creates it again.
    assert [ln for ln in lines if ln.startswith("✔ ")][:-1] == ['✔ created Kustomization "flux-sync"'], lines
    assert kubectl(kc, "-n", "flux-system", "get", "kustomization", "fleet")["spec"]["prune"] is True


def test_a_stopped_cluster_is_started_again_by_the_next_up(shared: Shared) -> None:
    lc = LocalClusters()
    lc.stop(NAME)
    assert not lc.healthy(NAME)
    res, lines = up(shared)
    assert f'✔ updated LocalCluster "{NAME}-control-plane"' in lines
    assert lc.healthy(NAME)  # the update waited for the control plane and its nodes
    assert res.kubeconfig_path is not None
    kubectl(res.kubeconfig_path, "-n", "flux-system", "get", "gitrepository", "fleet")  # the data survived


def test_provision_through_the_cli_prints_json(shared: Shared, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import run_cli

    up(shared)
    code, out, err = run_cli(capsys, "provision", NAME, "--repo", str(shared.repo), "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["cluster"] == NAME and set(data["changes"]) == {"same"}
    assert data["outputs"]["kubeconfig"] == "[secret]"  # never printed


def test_git_credentials_become_a_secret_and_stay_encrypted(shared: Shared) -> None:
    import base64

    kc = up(shared)[0].kubeconfig_path
    assert kc is not None
    password = f"pa55-{os.getpid()}-e2e"
    _res, lines = up(shared, git_auth={"username": "fleet-bot", "password": password})
    assert '✔ created Secret "flux-git-auth"' in lines
    assert '✔ updated GitRepository "flux-source"' in lines
    secret = kubectl(kc, "-n", "flux-system", "get", "secret", "fleet-git-auth")
    assert base64.b64decode(secret["data"]["password"]).decode() == password
    repo = kubectl(kc, "-n", "flux-system", "get", "gitrepository", "fleet")
    assert repo["spec"]["secretRef"] == {"name": "fleet-git-auth"}
    again, _ = up(shared)  # kept as a stack secret: no --git-auth needed the next time
    assert set(again.changes) == {"same"}, again.changes
    encoded = base64.b64encode(password.encode()).decode()
    places = [shared.settings.file_backend_dir, shared.settings.work_root, shared.repo]
    for root in places:
        assert root is not None
        for f in root.rglob("*"):
            if f.is_file() and ".git" not in f.parts:
                text = f.read_bytes()
                assert password.encode() not in text and encoded.encode() not in text, f


SMOKE_YAML = """apiVersion: v1
kind: Namespace
metadata:
  name: fleet-smoke
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: smoke
  namespace: fleet-smoke
data:
  greeting: hello
"""


def _exists(kubeconfig: Path, *args: str) -> bool:
    done = subprocess.run(
        [str(toolchain.find("kubectl")), "--kubeconfig", str(kubeconfig), "get", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode == 0


def _smoke(shared: Shared, program_fn: Any) -> None:
    """Issue 2's smoke test: `pulumi up` creates a Namespace and a ConfigMap; `pulumi destroy` removes
    them."""
    kc = shared.first.kubeconfig_path
    assert kc is not None
    engine = Engine(shared.settings)
    req = StackRequest("smoke", program_fn(kc.read_text()), project="fleet-smoke")
    try:
        res = engine.up(req)
        assert res.changes.get("create", 0) >= 2
        assert _exists(kc, "namespace", "fleet-smoke")
        assert _exists(kc, "-n", "fleet-smoke", "configmap", "smoke")
        engine.destroy(req)
        assert not _exists(kc, "-n", "fleet-smoke", "configmap", "smoke")
        assert not engine.exists("smoke", project="fleet-smoke")
    finally:
        if engine.exists("smoke", project="fleet-smoke"):
            engine.destroy(req)


def test_smoke_pulumi_up_with_pulumi_kubernetes_configgroup(shared: Shared) -> None:
    toolchain.find("pulumi-resource-kubernetes")  # built by the toolchain (family pulumi-kubernetes)

    def program_fn(kubeconfig: str) -> Any:
        def run() -> None:
            import pulumi
            import pulumi_kubernetes as k8s

            provider = k8s.Provider("smoke-k8s", kubeconfig=kubeconfig)
            k8s.yaml.v2.ConfigGroup("smoke", yaml=SMOKE_YAML, opts=pulumi.ResourceOptions(provider=provider))

        return run

    _smoke(shared, program_fn)


def test_destroy_removes_the_cluster_and_its_stack(shared: Shared) -> None:
    res = destroy(NAME, program=program(), reporter=SilentReporter(), engine=shared.settings)
    assert res.existed and res.changes.get("delete", 0) >= 6
    assert not LocalClusters().exists(NAME)
    assert not Engine(shared.settings).exists(NAME)
    assert shared.first.kubeconfig_path is not None and not shared.first.kubeconfig_path.exists()
    again = destroy(NAME, program=program(), reporter=SilentReporter(), engine=shared.settings)
    assert not again.existed
