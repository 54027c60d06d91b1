"""The operator verifies commits as fleet does (fleet.yaml ``verify:``): Flux's GitRepository gets
``spec.verify`` (mode HEAD, secretRef) and the public keys land in a Secret beside it, under Pulumi's mocks."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pulumi
import pytest
from pulumi_mocks import KUBECONFIG, resolve, set_stack_config, spec, stack_config, use_mocks

from clusters.operator import FluxOperator
from fleet.operator.flux import install as flux
from fleet.stackconfig import StackConfig
from tests.helpers import new_fleet_repo

SHA = "0123456789abcdef0123456789abcdef01234567"
KEYS = (("alice.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n"),
        ("allowed-signers.sshpub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDbe alice\n"))


@pytest.fixture
def install(tmp_path: Path) -> str:
    f = tmp_path / "install.yaml"
    f.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n")
    return str(f)


def test_without_keys_the_git_repository_does_not_verify(install: str) -> None:
    repo = flux.git_repository(stack_config(spec(), operator={"source": install}), with_auth=False)
    assert "verify" not in repo["spec"]


def test_the_git_repository_verifies_head_with_the_keys_secret(install: str) -> None:
    cfg = dataclasses.replace(stack_config(spec(), revision=SHA, operator={"source": install}), verify_keys=KEYS)
    assert flux.git_repository(cfg, with_auth=False)["spec"]["verify"] == {
        "mode": "HEAD", "secretRef": {"name": "fleet-verify-keys"}}
    rec = use_mocks()
    op = FluxOperator("flux", kubeconfig=KUBECONFIG, config=cfg)
    assert resolve(op.path) == "./environments/dev"  # runs the mocks until every resource is registered

    source = rec.one("kubernetes:source.toolkit.fluxcd.io/v1:GitRepository")
    assert source.inputs["spec"]["verify"] == {"mode": "HEAD", "secretRef": {"name": "fleet-verify-keys"}}
    secret = rec.one("kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["name"] == "fleet-verify-keys"
    assert secret.inputs["metadata"]["namespace"] == "flux-system"
    data = secret.inputs["data"]
    data = data.get("value", data)  # pulumi-kubernetes keeps every Secret's data as a secret in the state
    assert {k: base64.b64decode(v).decode() for k, v in data.items()} == dict(KEYS)
    assert secret.provider and "flux-k8s" in secret.provider


def test_the_keys_travel_in_the_stack_config(install: str) -> None:
    cfg = dataclasses.replace(stack_config(spec(), operator={"source": install}), verify_keys=KEYS)
    assert StackConfig.parse(cfg.values().get).verify_keys == KEYS
    set_stack_config(cfg)
    assert pulumi.Config("fleet").get("verifyKeys")
    plain = stack_config(spec(), operator={"source": install})
    assert StackConfig.parse(plain.values().get).verify_keys == ()
    assert StackConfig.parse({**plain.values(), "verifyKeys": None}.get).verify_keys == ()  # older stacks


def test_stack_config_takes_the_keys_from_the_working_tree(tmp_path: Path) -> None:
    """What fleet provision pins: the working tree's verify:, whatever the pinned revision says."""
    from fleet.provision import _verify_keys
    from fleet.registry.load import open_repo

    root = new_fleet_repo(tmp_path)
    assert _verify_keys(open_repo(root)) == ()
    (tmp_path / "alice.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n")
    (tmp_path / "signers").write_text("alice@example.com ssh-ed25519 AAAAC3Nz alice\n")
    (root / "fleet.yaml").write_text((root / "fleet.yaml").read_text() + "verify:\n  mode: head\n"
                                     f"  allowedSigners: {tmp_path / 'signers'}\n"
                                     f"  publicKeys: {tmp_path / 'alice.asc'}\n")
    keys = dict(_verify_keys(open_repo(root)))
    assert keys == {"alice.asc": (tmp_path / "alice.asc").read_text(),
                    "allowed-signers.sshpub": "ssh-ed25519 AAAAC3Nz\n"}
