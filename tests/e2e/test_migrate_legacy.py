"""A stack made by fleet 0.1 (Flux's objects applied with kubectl from a dynamic resource) is migrated
to the Kubernetes provider by the next `fleet provision`: the cluster is not recreated, the operator's
objects keep their identity, and the kubectl-applied resources are gone from the stack's state."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from e2e_support import make_fleet_repo, need_local_clusters
from helpers import need_tool
from legacy_operator import HERE, legacy_program

from fleet import toolchain
from fleet.adapters.pulumi_auto import Engine, EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.output import SilentReporter
from fleet.provision import destroy, provision
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e]

NAME = f"e2e-migr-{os.getpid() % 10000}"


def uid(kc: Path, *args: str) -> str:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), "get", *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=True)
    return str(json.loads(done.stdout)["metadata"]["uid"])


def state_types(settings: EngineSettings) -> list[str]:
    from pulumi import automation as auto

    eng = Engine(settings)
    stack = auto.select_stack(stack_name=NAME, project_name="fleet", program=lambda: None,
                              opts=eng._options("fleet", NAME, None))
    return [r["type"] for r in stack.export_stack().deployment["resources"]]


def test_a_kubectl_dynamic_provider_stack_is_migrated_without_recreating_anything(
    tmp_path: Path, pulumi_env: EngineSettings
) -> None:
    need_local_clusters()
    need_tool("pulumi-resource-kubernetes")
    from clusters import program

    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev"))
    # The legacy dynamic provider is imported by the engine's plugin: give it this folder.
    settings = replace(pulumi_env, env={**pulumi_env.env, "PYTHONPATH": os.pathsep.join(
        [str(HERE), str(HERE.parent), str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])})
    try:
        old = provision(repo, NAME, program=legacy_program, reporter=SilentReporter(), engine=settings)
        kc = old.kubeconfig_path
        assert kc is not None
        assert state_types(settings).count("pulumi-python:dynamic/fleet:Manifests") == 3
        before = {what: uid(kc, *what) for what in (
            ("namespace", "kube-system"), ("namespace", "flux-system"),
            ("crd", "gitrepositories.source.toolkit.fluxcd.io"),
            ("-n", "flux-system", "gitrepository", "fleet"), ("-n", "flux-system", "kustomization", "fleet"))}

        r = SilentReporter()
        new = provision(repo, NAME, program=program, reporter=r, engine=settings)

        assert any("3 resources of the kubectl dynamic provider are now managed by the Kubernetes provider" in ln
                   for ln in r.lines), r.lines
        assert not [ln for ln in r.lines if "LocalCluster" in ln], r.lines  # the cluster is left as it is
        assert not [ln for ln in r.lines if ln.startswith(("✔ deleted", "✔ replaced"))], r.lines
        after = {what: uid(kc, *what) for what in before}
        assert after == before  # the same cluster, the same objects: adopted, not recreated
        types = state_types(settings)
        assert "pulumi-python:dynamic/fleet:Manifests" not in types
        assert {"pulumi:providers:kubernetes", "kubernetes:yaml/v2:ConfigGroup",
                "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository",
                "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"} <= set(types)
        again = provision(repo, NAME, program=program, reporter=SilentReporter(), engine=settings)
        assert again.unchanged, again.changes
        assert new.kubeconfig_path == kc
    finally:
        try:
            destroy(NAME, program=program, reporter=SilentReporter(), engine=settings)
        finally:
            LocalClusters()._delete_quietly(NAME)


