"""``fleet doctor``: every tool fleet needs, found or not, which version it says it is, and what is wrong
with it. Where a tool is and which version is pinned: :mod:`fleet.toolchain`."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleet.adapters import proc
from fleet.errors import FleetError, ToolMissing
from fleet.paths import toolchain_dir
from fleet.toolchain import FLUX_CRDS, FLUX_VERSION, REPAIR, TOOLS, Tool, find

__all__ = ["ToolStatus", "check_all", "flux_manifest_problem"]


@dataclass(frozen=True)
class ToolStatus:
    name: str
    purpose: str
    found: bool
    path: str | None
    version: str | None
    hint: str | None
    required: bool = True
    problem: str | None = None  # found, but broken: does not run, wrong version, bad contents

    @property
    def ok(self) -> bool:
        return self.found and self.problem is None


_VERSION_RE = re.compile(r"v?\d+\.\d+(\.\d+)?([-+][\w.]+)?")


def _flux_version() -> str | None:
    f = toolchain_dir() / "share" / "flux" / "VERSIONS"
    try:
        words = f.read_text().split()
    except OSError:
        return None
    return words[1] if len(words) >= 2 else None


def _version_of(tool: Tool, path: Path) -> tuple[str | None, str | None]:
    """(version, problem): what the binary says of its version, or why it does not answer."""
    if tool.name in ("source-controller", "kustomize-controller"):
        done = proc.run([path, "--help"], timeout=20)
        if "--metrics-addr" not in done.stdout + done.stderr:
            return None, "does not start (`--help` lists no flags)"
        return _flux_version(), None
    if tool.name == "pulumi-resource-kubernetes":
        stamp = path.resolve().parent / ".pulumi-resource-kubernetes.version"
        try:
            return stamp.read_text().strip(), None
        except OSError:
            return None, "has no version stamp (a build from before the toolchain checked its outputs)"
    if not tool.version_args:
        return None, None
    done = proc.run([path, *tool.version_args], timeout=20)
    text = done.stdout + " " + done.stderr
    if not done.ok:
        first = (text.strip().splitlines() or ["no output"])[0]
        return None, f"`{path.name} {' '.join(tool.version_args)}` failed: {first[:120]}"
    # kustomize prints "v5.8.2"; kubectl "Client Version: v1.36.3"; etcd "etcd Version: 3.6.16".
    m = _VERSION_RE.search(text.split("\n", 1)[0]) or _VERSION_RE.search(text)
    lines = text.strip().splitlines()
    return (m.group(0) if m else (lines[0] if lines else None)), None


def _check_tool(tool: Tool) -> ToolStatus:
    try:
        path = find(tool.name)
    except ToolMissing as e:
        hint = tool.unavailable or e.hint
        return ToolStatus(tool.name, tool.purpose, False, None, None, hint, tool.required)
    try:
        version, problem = _version_of(tool, path)
    except FleetError as e:
        version, problem = None, f"does not run: {e.message}"
    if problem is None and tool.expect and version != tool.expect:
        problem = f"is {version or 'of no version'}, expected {tool.expect}"
    return ToolStatus(tool.name, tool.purpose, True, str(path), version, REPAIR if problem else None,
                      tool.required, problem)


def flux_manifest_problem(root: Path) -> str | None:
    """Why the Flux manifests under ``root`` cannot be installed, or None: every file parses, the
    CRDs fleet installs and each controller's Deployment are there."""
    import yaml  # here: finding a binary (every render) needs no YAML

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for ctl, kinds in FLUX_CRDS.items():
        found: dict[str, set[str]] = {"CustomResourceDefinition": set(), "Deployment": set()}
        for sub in ("crds", "manager"):
            files = sorted((root / ctl / sub).glob("*.yaml"))
            if not files:
                return f"{ctl}/{sub} holds no manifests"
            for f in files:
                try:
                    docs = [d for d in yaml.load_all(f.read_text(), Loader=loader) if d]
                except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                    return f"{ctl}/{sub}/{f.name} does not parse: {str(e).splitlines()[0]}"
                for d in docs:
                    if isinstance(d, dict) and d.get("kind") in found:
                        name = d.get("spec", {}).get("names", {}).get("kind") if d["kind"] != "Deployment" \
                            else d.get("metadata", {}).get("name")
                        found[d["kind"]].add(str(name))
        missing = [k for k in kinds if k not in found["CustomResourceDefinition"]]
        if missing:
            return f"{ctl} CRDs lack {', '.join(missing)}"
        if ctl not in found["Deployment"]:
            return f"{ctl}/manager has no Deployment {ctl}"
    return None


def _check_flux_manifests() -> ToolStatus:
    root = toolchain_dir() / "share" / "flux"
    purpose = "Flux CRDs and controllers for the operator install"
    if not root.is_dir():
        return ToolStatus("flux manifests", purpose, False, None, None, REPAIR)
    problem = flux_manifest_problem(root)
    version = _flux_version()
    if problem is None and version != FLUX_VERSION:
        problem = f"are {version or 'of no version'}, expected {FLUX_VERSION}"
    return ToolStatus("flux manifests", purpose, True, str(root.resolve()), version,
                      REPAIR if problem else None, True, problem)


def check_all() -> list[ToolStatus]:
    """Every tool fleet needs, found or not, with its version, and what is wrong with it."""
    out = [_check_tool(tool) for tool in TOOLS]
    out.append(_check_flux_manifests())
    if shutil.which("python3") is None:  # the dynamic-provider plugin is a python script
        out.append(ToolStatus("python3", "Pulumi dynamic providers", False, None, None, "install Python 3.11+"))
    return out
