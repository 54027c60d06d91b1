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
    for name in ("etcd", "kube-apiserver", "kwokctl", "kustomize", "pulumi", "flux manifests"):
        assert by_name[name]["found"] is False
        assert "make toolchain" in by_name[name]["hint"]
    assert by_name["pulumi-resource-kubernetes"]["required"] is False
    assert "missing: etcd" in err and "run `make toolchain`" in err


def test_doctor_passes_with_only_optional_tools_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet import toolchain

    real = [t for t in toolchain.TOOLS if t.required]
    bin_dir = tmp_path / "toolchain" / "bin"
    bin_dir.mkdir(parents=True)
    for t in real:  # executables that answer no version: found is what doctor checks first
        p = bin_dir / t.name
        p.write_text("#!/bin/sh\necho 1.2.3\n")
        p.chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)  # the dynamic-provider plugin runs python3
    monkeypatch.setenv("PATH", str(bin_dir))
    flux = tmp_path / "toolchain" / "share" / "flux"
    (flux / "source-controller" / "crds").mkdir(parents=True)
    (flux / "VERSIONS").write_text("source-controller v1.9.6\n")
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(tmp_path / "toolchain"))
    code, out, err = run_cli(capsys, "doctor")
    assert code == 0, err
    assert "optional" in out and "every required tool found" in err


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
