"""The local toolchain: which binaries fleet needs, at which pinned versions, and where each one is.

Finding a binary runs nothing; asking each one its version (``fleet doctor``) is :mod:`fleet.doctor`'s,
which runs them through :mod:`fleet.adapters.proc`. So the adapters (the Pulumi engine finds ``pulumi``
here) can use this module without an import cycle."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ToolMissing
from fleet.paths import toolchain_dir

__all__ = [
    "FLUX_CRDS",
    "REPAIR",
    "TOOLS",
    "Tool",
    "env_with_toolchain",
    "find",
    "flux_manifests_dir",
]


@dataclass(frozen=True)
class Tool:
    name: str
    version_args: tuple[str, ...]
    purpose: str
    required: bool = True
    expect: str | None = None  # the version tools/build.sh pins; anything else is reported broken
    unavailable: str | None = None  # why the toolchain cannot build it here (said instead of "run make toolchain")


# The pins of tools/build.sh (a test keeps the two in step).
K8S_VERSION = "v1.36.3"
FLUX_VERSION = "v1.9.6"
PULUMI_KUBERNETES_VERSION = "4.32.0"
FLUX_PKG_KUSTOMIZE_VERSION = "v1.41.0"  # fleet-build's Flux kustomize library (its version answer's first)
SEAWEEDFS_VERSION = "4.53"
REGISTRY_VERSION = "v3.1.2"  # CNCF Distribution, the tests' OCI registry
ORAS_VERSION = "1.3.6"

TOOLS: tuple[Tool, ...] = (
    Tool("etcd", ("--version",), "local clusters: storage", expect="3.6.16"),
    Tool("kube-apiserver", ("--version",), "local clusters: API server", expect=K8S_VERSION),
    Tool("kube-controller-manager", ("--version",), "local clusters: controllers", expect=K8S_VERSION),
    Tool("kube-scheduler", ("--version",), "local clusters: scheduler", expect=K8S_VERSION),
    Tool("kubectl", ("version", "--client"), "local clusters, benchmarks", expect=K8S_VERSION),
    Tool("kwok", ("--version",), "local clusters: fake nodes and kubelets", expect="v0.8.0"),
    Tool("kwokctl", ("--version",), "local clusters: runs the control plane", expect="v0.8.0"),
    Tool("kustomize", ("version",), "benchmarks and comparisons (rendering runs fleet-build)", expect="v5.8.2"),
    Tool("fleet-build", ("version",), "rendering: Flux's confined kustomize build, substitution and Helm templates",
         expect=FLUX_PKG_KUSTOMIZE_VERSION),
    Tool("pulumi", ("version",), "provisioning (Automation API engine)", expect="v3.259.0"),
    Tool("pulumi-resource-pulumi-python", (), "Pulumi dynamic providers (local clusters)"),
    Tool("pulumi-resource-kubernetes", (), "Pulumi's Kubernetes provider (every Kubernetes object from Pulumi)",
         expect=PULUMI_KUBERNETES_VERSION),
    # The Flux controllers have no version flag: `--help` proves they start; the version is the
    # build's (share/flux/VERSIONS).
    Tool("source-controller", ("--help",), "the operator on local clusters: fetches the fleet repo",
         expect=FLUX_VERSION),
    Tool("kustomize-controller", ("--help",), "the operator on local clusters: applies the overlay",
         expect=FLUX_VERSION),
    Tool("git", ("--version",), "the fleet repo"),
    # The file backend is the default; a team's shared S3 backend tried on one machine (`fleet local
    # backend`) and the S3 tests run this server (seaweedfs).
    Tool("weed", ("version",), "a local S3 server: a shared Pulumi backend (`fleet local backend`)",
         expect=SEAWEEDFS_VERSION),
    # The tests' OCI registry and the client they push charts with (fleet itself reads OCI registries
    # through fleet-build): optional for fleet, needed by tests/integration/test_helm_oci.py.
    Tool("registry", ("--version",), "tests: an OCI registry on loopback (OCI Helm charts)", required=False,
         expect=REGISTRY_VERSION),
    Tool("oras", ("version",), "tests: pushes charts to that registry", required=False, expect=ORAS_VERSION),
    # Optional: the Go module proxy here refuses the module (docs/toolchain.md); fleet runs its
    # program inline through the Automation API instead.
    Tool("pulumi-language-python", (), "optional: `pulumi up` of Pulumi.yaml outside fleet", required=False,
         unavailable="not buildable here: the Go module proxy refuses it (docs/toolchain.md)"),
)

# What fleet installs from the Flux manifests: a cache missing any of these is broken.
FLUX_CRDS = {
    "source-controller": ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket"),
    "kustomize-controller": ("Kustomization",),
}

REPAIR = "run `make toolchain` (it rebuilds a family whose outputs differ from what was built)"


def _search_path() -> list[Path]:
    return [toolchain_dir() / "bin", *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)]


def find(name: str) -> Path:
    """Path of a toolchain binary: the toolchain cache first, then ``PATH``."""
    for d in _search_path():
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise ToolMissing(
        f"{name} not found in {toolchain_dir() / 'bin'} or on PATH",
        hint="run `make toolchain` (builds it from Go modules), then `fleet doctor`",
    )


def env_with_toolchain(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions that put the toolchain's bin first on PATH (for child processes)."""
    env = {"PATH": os.pathsep.join([str(toolchain_dir() / "bin"), os.environ.get("PATH", "")])}
    if extra:
        env.update(extra)
    return env


def flux_manifests_dir() -> Path:
    """The Flux CRDs and controller manifests the toolchain extracted from the controllers' modules."""
    d = toolchain_dir() / "share" / "flux"
    if not d.is_dir():
        raise ToolMissing(f"Flux manifests not found in {d}", hint="run `make toolchain`")
    for ctl in FLUX_CRDS:  # the cheap part of doctor's check, on every install
        for sub in ("crds", "manager"):
            if not any((d / ctl / sub).glob("*.yaml")):
                raise ToolMissing(f"the Flux manifests in {d} are broken: {ctl}/{sub} holds no manifests",
                                  hint=REPAIR)
    return d.resolve()
