"""The local toolchain: where each binary fleet needs is, and which version it is (``fleet doctor``)."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleet.adapters import proc
from fleet.errors import ToolMissing
from fleet.paths import toolchain_dir

__all__ = ["TOOLS", "Tool", "ToolStatus", "check_all", "env_with_toolchain", "find", "flux_manifests_dir"]


@dataclass(frozen=True)
class Tool:
    name: str
    version_args: tuple[str, ...]
    purpose: str
    required: bool = True


TOOLS: tuple[Tool, ...] = (
    Tool("etcd", ("--version",), "local clusters: storage"),
    Tool("kube-apiserver", ("--version",), "local clusters: API server"),
    Tool("kube-controller-manager", ("--version",), "local clusters: controllers"),
    Tool("kube-scheduler", ("--version",), "local clusters: scheduler"),
    Tool("kubectl", ("version", "--client"), "local clusters, benchmarks"),
    Tool("kwok", ("--version",), "local clusters: fake nodes and kubelets"),
    Tool("kwokctl", ("--version",), "local clusters: runs the control plane"),
    Tool("kustomize", ("version",), "rendering environment overlays"),
    Tool("pulumi", ("version",), "provisioning (Automation API engine)"),
    Tool("pulumi-resource-pulumi-python", (), "Pulumi dynamic providers (local clusters, manifests)"),
    Tool("git", ("--version",), "the fleet repo"),
    # Optional: the Go module proxy here refuses both modules (docs/toolchain.md); fleet runs its
    # program inline and applies Kubernetes objects through its own dynamic provider instead.
    Tool("pulumi-language-python", (), "optional: `pulumi up` of Pulumi.yaml outside fleet", required=False),
    Tool("pulumi-resource-kubernetes", (), "optional: the pulumi_kubernetes operator backend", required=False),
)


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
    if not (d / "source-controller" / "crds").is_dir():
        raise ToolMissing(f"Flux manifests not found in {d}", hint="run `make toolchain`")
    return d.resolve()


@dataclass(frozen=True)
class ToolStatus:
    name: str
    purpose: str
    found: bool
    path: str | None
    version: str | None
    hint: str | None
    required: bool = True


_VERSION_RE = re.compile(r"v?\d+\.\d+(\.\d+)?([-+][\w.]+)?")


def _version_of(tool: Tool, path: Path) -> str | None:
    if not tool.version_args:
        return None
    done = proc.run([path, *tool.version_args], timeout=20)
    text = done.stdout + " " + done.stderr
    # kustomize prints "v5.8.2"; kubectl "Client Version: v1.36.3"; etcd "etcd Version: 3.6.16".
    m = _VERSION_RE.search(text.split("\n", 1)[0]) or _VERSION_RE.search(text)
    lines = text.strip().splitlines()
    return m.group(0) if m else (lines[0] if lines else None)


def check_all() -> list[ToolStatus]:
    """Every tool fleet needs, found or not, with its version."""
    out: list[ToolStatus] = []
    for tool in TOOLS:
        try:
            path = find(tool.name)
        except ToolMissing as e:
            hint = e.hint if tool.required else "not buildable here: the Go module proxy refuses it (docs/toolchain.md)"
            out.append(ToolStatus(tool.name, tool.purpose, False, None, None, hint, tool.required))
            continue
        try:
            version = _version_of(tool, path)
        except Exception as e:
            version = f"error: {e}"
        out.append(ToolStatus(tool.name, tool.purpose, True, str(path), version, None, tool.required))
    flux = toolchain_dir() / "share" / "flux" / "VERSIONS"
    out.append(
        ToolStatus(
            "flux manifests",
            "Flux CRDs and controllers for the operator install",
            flux.is_file(),
            str(flux.parent.resolve()) if flux.is_file() else None,
            " ".join(flux.read_text().split()) if flux.is_file() else None,
            None if flux.is_file() else "run `make toolchain`",
        )
    )
    if shutil.which("python3") is None:  # the dynamic-provider plugin is a python script
        out.append(ToolStatus("python3", "Pulumi dynamic providers", False, None, None, "install Python 3.11+"))
    return out
