"""The program and its operator under Pulumi's mocks; the kind command lines; Flux's objects."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_mocks import KUBECONFIG, resolve, set_stack_config, spec, stack_config, use_mocks

from clusters.operator import FluxOperator
from clusters.providers.kind import KindCli, kind_config, node_image
from clusters.providers.kind import props as kind_props
from fleet.errors import ConfigError, InputError
from fleet.operator.flux import install as flux
from fleet.stackconfig import StackConfig, flux_git_url, parse_git_auth

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def install(tmp_path: Path) -> str:
    """A small Flux install.yaml (operator.source may be a path)."""
    f = tmp_path / "install.yaml"
    f.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n")
    return str(f)


def run_program(cfg: StackConfig, **extra: str) -> Any:
    from clusters.program import run

    rec = use_mocks()
    set_stack_config(cfg, **extra)

    @pulumi.runtime.test
    def _run() -> None:
        run()

    _run()
    return rec


def _group(rec: Any) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rec.one("kubernetes:yaml/v2:ConfigGroup").inputs["yaml"]) if d]


FIELD_MANAGER = {"pulumi.com/patchFieldManager": "fleet-pulumi", "pulumi.com/patchForce": "true"}


def test_local_program_creates_the_cluster_then_flux_through_the_kubernetes_provider(install: str) -> None:
    cfg = stack_config(
        spec("dev-1", vars={"GREETING": "hi"}, settings={"nodes": 3}), operator={"source": install}
    )
    rec = run_program(cfg)

    local = rec.one("pulumi-python:dynamic/fleet:LocalCluster")
    assert local.inputs["name"] == "dev-1" and local.inputs["nodes"] == 3
    assert local.inputs["workdir"].endswith("/local")
    assert _group(rec) == [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system", "annotations": FIELD_MANAGER}}
    ]
    provider = rec.one("pulumi:providers:kubernetes")
    assert provider.inputs["enableServerSideApply"] in (True, "true")
    assert provider.inputs["deleteUnreachable"] in (True, "true")
    repo = rec.one("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    assert repo.inputs["spec"]["ref"] == {"branch": "main"} and "secretRef" not in repo.inputs["spec"]
    assert repo.inputs["metadata"]["annotations"] == FIELD_MANAGER
    sync = rec.one("kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization")
    assert sync.inputs["spec"]["path"] == "./environments/dev"
    assert sync.inputs["spec"]["postBuild"]["substitute"]["GREETING"] == "hi"
    assert sync.inputs["spec"]["postBuild"]["substitute"]["FLEET_CLUSTER"] == "dev-1"
    assert not rec.of_type("kubernetes:core/v1:Secret")  # no credentials: no Secret
    assert not rec.of_type("pulumi-python:dynamic/fleet:Manifests")  # no kubectl dynamic provider left


def test_git_credentials_become_a_secret_the_git_repository_refers_to(install: str) -> None:
    rec = use_mocks()
    cfg = stack_config(spec("dev-1", vars={"A": "1"}), revision=SHA, operator={"source": install})
    auth = pulumi.Output.secret('{"username": "bot", "password": "pw"}')
    op = FluxOperator("flux", kubeconfig=KUBECONFIG, config=cfg, git_auth=auth)
    assert resolve(op.path) == "./environments/dev"

    provider = rec.one("pulumi:providers:kubernetes")
    kc = provider.inputs["kubeconfig"]
    assert (kc["value"] if isinstance(kc, dict) else kc) == KUBECONFIG
    repo = rec.one("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    assert repo.inputs["spec"]["ref"] == {"branch": "main", "commit": SHA}
    assert repo.inputs["spec"]["secretRef"] == {"name": "fleet-git-auth"}
    assert repo.inputs["metadata"]["namespace"] == "flux-system"
    sync = rec.one("kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization")
    assert sync.inputs["spec"]["prune"] is True
    assert sync.inputs["spec"]["postBuild"]["substitute"]["A"] == "1"
    secret = rec.one("kubernetes:core/v1:Secret")
    data = secret.inputs["data"]
    assert "value" in data  # a secret: kept encrypted in the state
    assert base64.b64decode(data["value"]["password"]).decode() == "pw"
    group = rec.one("kubernetes:yaml/v2:ConfigGroup")
    for r in (group, repo, sync, secret):
        assert r.provider and "flux-k8s" in r.provider  # through the cluster's provider, not the ambient one


def test_operator_kind_none_installs_nothing() -> None:
    rec = run_program(stack_config(spec("dev-1"), operator={"kind": "none"}))
    assert rec.of_type("pulumi-python:dynamic/fleet:LocalCluster")
    assert not rec.of_type("pulumi:providers:kubernetes")


# ---- Flux objects ----------------------------------------------------------------------------


def test_git_repository_follows_the_branch_or_pins_the_commit() -> None:
    follow = flux.git_repository(stack_config(spec()), with_auth=False)
    assert follow["spec"]["ref"] == {"branch": "main"} and "secretRef" not in follow["spec"]
    pinned = flux.git_repository(stack_config(spec(), revision=SHA), with_auth=True)
    assert pinned["spec"]["ref"] == {"branch": "main", "commit": SHA}
    assert pinned["spec"]["url"] == "https://git.example.com/platform/fleet.git"


def test_kustomization_has_path_vars_prune_timeout_and_health_checks() -> None:
    cfg = stack_config(
        spec("eu-1", environment="prod", region="eu", vars={"X": "1"}, gates={"timeout": 120}),
        operator={"interval": "5m"},
    )
    k = flux.kustomization(cfg)["spec"]
    assert k["path"] == "./environments/prod"
    assert k["prune"] is True and k["wait"] is True
    assert k["timeout"] == "120s" and k["interval"] == "5m"
    assert k["sourceRef"] == {"kind": "GitRepository", "name": "fleet"}
    assert k["postBuild"]["substitute"] == {
        "FLEET_CLUSTER": "eu-1",
        "FLEET_ENVIRONMENT": "prod",
        "FLEET_REGION": "eu",
        "FLEET_PROVIDER": "local",
        "FLEET_WAVE": "0",
        "X": "1",
    }


def test_on_a_flux_directory_the_operator_objects_are_flux_bootstraps_and_flux_applies_nothing_over_them() -> None:
    """The tree's Kustomizations build from GitRepository flux-system: fleet's pinned one takes that name,
    and the annotation keeps kustomize-controller from applying the directory's own copies over it."""
    cfg = stack_config(spec("prod-eu", environment="production", source={"flux": "clusters/production"}),
                       revision=SHA)
    src, sync = flux.git_repository(cfg, with_auth=False), flux.kustomization(cfg)
    for obj in (src, sync):
        assert obj["metadata"]["name"] == "flux-system"
        assert obj["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    assert src["spec"]["ref"]["commit"] == SHA
    assert sync["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
    assert sync["spec"]["path"] == "./clusters/production"
    plain = stack_config(spec())
    assert flux.git_repository(plain, with_auth=False)["metadata"]["name"] == "fleet"
    assert "annotations" not in flux.kustomization(plain)["metadata"]


def test_install_source_is_the_toolchain_for_local_and_the_release_elsewhere() -> None:
    assert flux.install_source(stack_config(spec())) == "toolchain"
    eks = spec("e", "eks", region="eu-west-1")
    assert flux.install_source(stack_config(eks)) == (
        "https://github.com/fluxcd/flux2/releases/download/v2.7.0/install.yaml"
    )
    assert flux.install_source(stack_config(eks, operator={"version": "v2.6.4"})).endswith(
        "/v2.6.4/install.yaml"
    )
    assert flux.install_source(stack_config(eks, operator={"source": "/opt/flux.yaml"})) == "/opt/flux.yaml"
    with pytest.raises(ConfigError, match=r"fleet\.yaml: operator\.version"):
        flux.install_source(stack_config(eks, operator={"version": "latest"}))


def test_install_objects_from_a_path(tmp_path: Path) -> None:
    f = tmp_path / "install.yaml"
    f.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n---\n")
    objs = flux.install_objects(stack_config(spec(), operator={"source": str(f)}))
    assert [o["kind"] for o in objs] == ["Namespace"]
    with pytest.raises(ConfigError, match="not found"):
        flux.install_objects(stack_config(spec(), operator={"source": str(tmp_path / "nope.yaml")}))


# ---- kind ------------------------------------------------------------------------------------


def test_kind_command_lines() -> None:
    cli = KindCli("/usr/bin/kind", wait="120s")
    assert cli.create("k1", Path("/tmp/c.yaml"), Path("/tmp/kc"), "kindest/node:v1.31.0") == [
        "/usr/bin/kind",
        "create",
        "cluster",
        "--name",
        "k1",
        "--config",
        "/tmp/c.yaml",
        "--kubeconfig",
        "/tmp/kc",
        "--wait",
        "120s",
        "--image",
        "kindest/node:v1.31.0",
    ]
    assert cli.create("k1", Path("/c"), Path("/k"), None)[-2:] == ["--wait", "120s"]
    assert cli.get_kubeconfig("k1") == ["/usr/bin/kind", "get", "kubeconfig", "--name", "k1"]
    assert cli.delete("k1") == ["/usr/bin/kind", "delete", "cluster", "--name", "k1"]
    assert cli.get_clusters() == ["/usr/bin/kind", "get", "clusters"]


def test_kind_config_and_image() -> None:
    cfg = yaml.safe_load(kind_config(2))
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    assert node_image("1.31.0", None) == "kindest/node:v1.31.0"
    assert node_image("v1.31.0", "my/node:x") == "my/node:x"
    assert kind_props(spec("k", "kind", settings={"nodes": 3, "kubeVersion": "v1.30.4"})) == {
        "name": "k",
        "nodes": 3,
        "image": "kindest/node:v1.30.4",
    }


def test_kind_program_registers_a_kind_cluster(install: str) -> None:
    cfg = stack_config(spec("k1", "kind", settings={"nodes": 2}), operator={"source": install})
    rec = run_program(cfg)
    kind = rec.one("pulumi-python:dynamic/fleet:KindCluster")
    assert kind.inputs["name"] == "k1" and kind.inputs["nodes"] == 2


# ---- the stack config contract ---------------------------------------------------------------


def test_stack_config_round_trips_through_its_values() -> None:
    cfg = stack_config(
        spec("eu-1", vars={"A": "b"}, labels={"team": "x"}), revision=SHA, git={"branch": "release"}
    )
    back = StackConfig.parse(cfg.values().get)
    assert back == cfg
    assert StackConfig.parse({**cfg.values(), "revision": ""}.get).revision is None
    with pytest.raises(InputError, match='stack config "fleet:cluster" is missing'):
        StackConfig.parse({}.get)
    with pytest.raises(InputError, match="not a full commit id"):
        stack_config(spec(), revision="HEAD")


def test_flux_git_url_accepts_http_ssh_and_scp_and_refuses_local_paths() -> None:
    assert flux_git_url("https://h/x.git") == "https://h/x.git"
    assert flux_git_url("ssh://git@h/x.git") == "ssh://git@h/x.git"
    assert flux_git_url("git@github.com:acme/fleet.git") == "ssh://git@github.com/acme/fleet.git"
    for bad in ("/srv/git/fleet.git", "file:///srv/git/fleet.git", "../fleet.git"):
        with pytest.raises(InputError, match="not an http"):
            flux_git_url(bad)


def test_git_auth_file_contents_are_checked() -> None:
    assert parse_git_auth("username: bot\npassword: pw\n") == {"username": "bot", "password": "pw"}
    assert parse_git_auth('{"identity": "KEY", "known_hosts": "h"}')["identity"] == "KEY"
    assert parse_git_auth(None) == {}
    with pytest.raises(InputError, match="unknown key 'token'"):
        parse_git_auth("token: x\n")
    with pytest.raises(InputError, match="give username and password"):
        parse_git_auth("username: bot\n")
