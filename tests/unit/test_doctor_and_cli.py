"""`fleet doctor` and the CLI's error conventions (no binaries needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import run_cli


def test_doctor_names_every_missing_tool_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(tmp_path / "toolchain"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, out, err = run_cli(capsys, "doctor", "-o", "json")
    assert code == 1
    data = json.loads(out)
    assert data["toolchain_dir"] == str(tmp_path / "toolchain")
    by_name = {t["name"]: t for t in data["tools"]}
    for name in ("etcd", "kube-apiserver", "kwokctl", "kustomize", "fleet-build", "pulumi", "flux manifests",
                 "source-controller", "kustomize-controller", "pulumi-resource-kubernetes"):
        assert by_name[name]["found"] is False
        assert by_name[name]["required"] is True
        assert "make toolchain" in by_name[name]["hint"]
    assert by_name["pulumi-language-python"]["required"] is False
    assert "missing: etcd" in err and "run `make toolchain`" in err


def _fake_toolchain(root: Path) -> Path:
    """A toolchain of scripts that answer the pinned versions, and Flux manifests fleet can install."""
    from fleet import toolchain

    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for t in toolchain.TOOLS:
        if not t.required:
            continue
        p = bin_dir / t.name
        if t.name in ("source-controller", "kustomize-controller"):
            p.write_text("#!/bin/sh\necho '  --metrics-addr string'\n")
        else:
            p.write_text(f"#!/bin/sh\necho {t.expect or '1.2.3'}\n")
        p.chmod(0o755)
    (bin_dir / ".pulumi-resource-kubernetes.version").write_text(toolchain.PULUMI_KUBERNETES_VERSION)
    (bin_dir / "python3").symlink_to(sys.executable)  # the dynamic-provider plugin runs python3
    flux = root / "share" / "flux"
    for ctl, kinds in toolchain.FLUX_CRDS.items():
        (flux / ctl / "crds").mkdir(parents=True)
        (flux / ctl / "manager").mkdir(parents=True)
        for kind in kinds:
            (flux / ctl / "crds" / f"{kind.lower()}.yaml").write_text(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                f"spec:\n  names:\n    kind: {kind}\n")
        (flux / ctl / "manager" / "deployment.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {ctl}\n")
    (flux / "VERSIONS").write_text(f"source-controller {toolchain.FLUX_VERSION}\n")
    return root


def test_doctor_passes_with_only_optional_tools_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fake_toolchain(tmp_path / "toolchain")
    monkeypatch.setenv("PATH", str(root / "bin"))
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(root))
    code, out, err = run_cli(capsys, "doctor")
    assert code == 0, err
    assert "optional" in out and "every required tool found" in err


def _truncate(f: Path) -> None:
    f.write_text("")


def _garble(f: Path) -> None:
    f.write_text("kind: [unclosed\n")


@pytest.mark.parametrize(
    "damage, tool, problem",
    [
        (lambda r: (r / "bin" / "kustomize").write_text("#!/bin/sh\nexit 3\n"), "kustomize", "failed"),
        (lambda r: (r / "bin" / "etcd").write_text("#!/bin/sh\necho 3.5.1\n"), "etcd", "expected 3.6.16"),
        (lambda r: (r / "bin" / "source-controller").write_text("#!/bin/sh\nexit 1\n"), "source-controller",
         "does not start"),
        (lambda r: (r / "bin" / ".pulumi-resource-kubernetes.version").unlink(), "pulumi-resource-kubernetes",
         "no version stamp"),
        (lambda r: [f.unlink() for f in (r / "share/flux/source-controller/crds").iterdir()], "flux manifests",
         "holds no manifests"),
        (lambda r: _garble(r / "share/flux/kustomize-controller/manager/deployment.yaml"), "flux manifests",
         "does not parse"),
        (lambda r: (r / "share/flux/source-controller/crds/gitrepository.yaml").unlink(), "flux manifests",
         "lack GitRepository"),
        (lambda r: _truncate(r / "share/flux/kustomize-controller/manager/deployment.yaml"), "flux manifests",
         "no Deployment"),
    ],
)
def test_doctor_reports_a_broken_toolchain_with_the_command_that_repairs_it(
    damage: object, tool: str, problem: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    root = _fake_toolchain(tmp_path / "toolchain")
    damage(root)  # type: ignore[operator]
    monkeypatch.setenv("PATH", str(root / "bin"))
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(root))
    code, out, err = run_cli(capsys, "doctor", "-o", "json")
    assert code == 1
    by_name = {t["name"]: t for t in json.loads(out)["tools"]}
    assert problem in by_name[tool]["problem"]
    assert "make toolchain" in by_name[tool]["hint"]
    assert f"broken: {tool}" in err and "run `make toolchain`" in err


def test_the_pins_fleet_checks_are_the_pins_the_toolchain_builds() -> None:
    import re

    from fleet import toolchain

    script = (Path(__file__).resolve().parents[2] / "tools" / "build.sh").read_text()
    pins = dict(re.findall(r"^([A-Z0-9_]+_VERSION)=(\S+)$", script, re.M))
    assert pins["K8S_VERSION"] == toolchain.K8S_VERSION
    assert pins["FLUX_SOURCE_VERSION"] == pins["FLUX_KUSTOMIZE_VERSION"] == toolchain.FLUX_VERSION
    assert pins["PULUMI_KUBERNETES_VERSION"] == toolchain.PULUMI_KUBERNETES_VERSION
    expects = {t.name: t.expect for t in toolchain.TOOLS}
    assert expects["etcd"] == pins["ETCD_VERSION"].lstrip("v")
    assert expects["kustomize"] == pins["KUSTOMIZE_VERSION"]
    assert expects["fleet-build"] == pins["FLUX_PKG_KUSTOMIZE_VERSION"]
    assert expects["pulumi"] == pins["PULUMI_VERSION"]
    assert expects["kwokctl"] == pins["KWOK_VERSION"]
    assert expects["weed"] == toolchain.SEAWEEDFS_VERSION == pins["SEAWEEDFS_VERSION"]
    assert expects["registry"] == toolchain.REGISTRY_VERSION == pins["REGISTRY_VERSION"]
    assert expects["oras"] == toolchain.ORAS_VERSION == pins["ORAS_VERSION"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("nope",), "No such command 'nope'"),
        (("local", "create"), "Missing argument"),
        (("cluster", "list", "-o", "xml"), "xml"),
    ],
)
def test_usage_errors_are_one_line_exit_2_without_traceback(
    args: tuple[str, ...], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_cli(capsys, *args)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("✗")]) == 1


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_by_flag_or_env(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["cluster", "list", "--repo", str(tmp_path)]  # not a git repository: exit 2
    code, _out, err = run_cli(capsys, *args)
    assert code == 2 and "Traceback" not in err
    if how == "flag":
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("FLEET_DEBUG", "1")
    code, _out, err = run_cli(capsys, *args)
    assert code == 2
    assert "Traceback" in err and "not a git repository" in err
