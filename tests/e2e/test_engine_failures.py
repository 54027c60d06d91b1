"""Pulumi failures told apart by the engine's own events and error types, through the real engine
(issue 19): a lock held by another update is the SDK's ConcurrentUpdateError (never retried as transient);
a resource whose API server refuses the connection is that resource's failure event and its diagnostic,
transient (retried to the adapter's bound, then not transient for the step runner); a resource the API
server refuses is its failure, not transient (not retried). Kubernetes resources through the real
pulumi-resource-kubernetes plugin; the refusing API server is a real local control plane."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest
from e2e_support import CLUSTER_TOOLS
from helpers import need_tool

from fleet.adapters.pulumi_auto import Engine, EngineSettings, StackRequest
from fleet.errors import ConcurrentUpdate, ProgramError
from fleet.output import SilentReporter

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine-failures")]

RETRIED = "hit a transient failure; trying again"


def noop() -> None:
    pulumi.export("answer", 42)


def config_map(kubeconfig: str, name: str) -> None:
    import pulumi_kubernetes as k8s

    provider = k8s.Provider("k", kubeconfig=kubeconfig, enable_server_side_apply=True)
    k8s.core.v1.ConfigMap(
        "cm", metadata={"name": name, "namespace": "default"}, data={"a": "b"},
        opts=pulumi.ResourceOptions(provider=provider),
    )


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _kubeconfig(server: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
        "users:\n- name: u\n  user:\n    token: none\n"
    )


@pytest.fixture
def reporter() -> SilentReporter:
    return SilentReporter()


@pytest.fixture
def engine(pulumi_env: EngineSettings, reporter: SilentReporter) -> Engine:
    need_tool("pulumi-resource-kubernetes")
    return Engine(pulumi_env, reporter)


def test_a_lock_held_is_the_engines_concurrent_update_and_not_retried_as_transient(
    engine: Engine, reporter: SilentReporter
) -> None:
    stack = "e2e-fail-locked"
    release, started = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait()  # the lock is held until the test has seen the second update refused

    t = threading.Thread(target=lambda: engine.up(StackRequest(stack, blocking)), daemon=True)
    t.start()
    try:
        assert started.wait(120), "the first update never ran its program"
        with pytest.raises(ConcurrentUpdate) as e:
            engine.up(StackRequest(stack, noop))
        assert not e.value.transient
        assert not any(RETRIED in line for line in reporter.lines)
    finally:
        release.set()
        t.join(300)
        engine.destroy(StackRequest(stack, noop))


def test_an_unreachable_api_server_is_the_resources_transient_failure(
    engine: Engine, reporter: SilentReporter, pulumi_env: EngineSettings
) -> None:
    stack = "e2e-fail-unreachable"
    kubeconfig = _kubeconfig(f"https://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(ProgramError) as e:
            engine.up(StackRequest(stack, lambda: config_map(kubeconfig, "fleet-e2e")))
        assert e.value.urn is not None and e.value.urn.endswith("kubernetes:core/v1:ConfigMap::cm"), e.value.urn
        assert "connection refused" in e.value.message
        retried = [line for line in reporter.lines if RETRIED in line]
        assert len(retried) == pulumi_env.transient_attempts - 1, reporter.lines
        assert not e.value.transient  # retried to the adapter's bound: the step runner must not retry it again
    finally:
        engine.destroy(StackRequest(stack, noop))


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local control plane (kwokctl); its kubeconfig's text."""
    for tool in CLUSTER_TOOLS:
        need_tool(tool)
    from fleet.local.clusters import LocalClusters

    clusters = LocalClusters(tmp_path_factory.mktemp("engine-failures"))
    name = f"ef-{os.getpid()}"
    try:
        yield clusters.create(name, nodes=0).kubeconfig_text()
    finally:
        clusters._delete_quietly(name)


def test_a_resource_the_api_server_refuses_is_its_failure_and_not_transient(
    engine: Engine, reporter: SilentReporter, api_server: str, tmp_path: Path
) -> None:
    stack = "e2e-fail-refused"
    try:
        with pytest.raises(ProgramError) as e:
            engine.up(StackRequest(stack, lambda: config_map(api_server, "Not_A_DNS_Name")))
        assert e.value.urn is not None and e.value.urn.endswith("kubernetes:core/v1:ConfigMap::cm"), e.value.urn
        assert "Not_A_DNS_Name" in e.value.message
        assert not any(RETRIED in line for line in reporter.lines), reporter.lines
        assert not e.value.transient
    finally:
        engine.destroy(StackRequest(stack, noop))
