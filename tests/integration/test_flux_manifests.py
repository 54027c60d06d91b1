"""The Flux install set a local cluster gets, read from the manifests `make toolchain` extracted from the
controllers' modules (the unit tier has no toolchain: tests/unit/test_clusters_program.py covers the
other install sources)."""

from __future__ import annotations

import pytest
from helpers import need_flux_manifests

from fleet.operator.flux import install as flux
from fleet.registry.model import ClusterSpec, FleetSettings
from fleet.stackconfig import StackConfig

pytestmark = pytest.mark.integration


def test_toolchain_install_set_has_crds_and_accounts_but_no_fake_controller_pods() -> None:
    need_flux_manifests()
    cfg = StackConfig(
        cluster=ClusterSpec(name="c1", environment="dev", provider="local"),
        settings=FleetSettings.model_validate({}),
        repo_url="https://git.example.com/platform/fleet.git",
        branch="main",
        revision=None,
    )
    objs = flux.install_objects(cfg)
    kinds = [o["kind"] for o in objs]
    assert kinds[0] == "Namespace"
    crds = {o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert {"gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"} <= crds
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    assert accounts == {"source-controller", "kustomize-controller"}
    # On a local cluster the controllers run as processes beside it: kwok would fake their pods.
    assert not [o for o in objs if o["kind"] in ("Deployment", "Service")]
