"""`fleet doctor` on this machine's real toolchain: every required tool found, at the pinned versions."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from live_support import need_live_tools


def test_doctor_finds_every_required_tool_at_its_pinned_version(capsys: pytest.CaptureFixture[str]) -> None:
    need_live_tools()
    code, out, err = run_cli(capsys, "doctor", "-o", "json")
    tools = {t["name"]: t for t in json.loads(out)["tools"]}
    assert code == 0, err
    assert all(t["found"] for t in tools.values() if t["required"])
    assert tools["kube-apiserver"]["version"] == "v1.36.3"
    assert tools["kubectl"]["version"] == "v1.36.3"
    assert tools["etcd"]["version"] == "3.6.16"
    assert tools["kwokctl"]["version"] == "v0.8.0"
    assert tools["kustomize"]["version"] == "v5.8.2"
    assert tools["pulumi"]["version"] == "v3.259.0"
    assert tools["flux manifests"]["version"] == "v1.9.6"
    assert tools["source-controller"]["version"] == tools["kustomize-controller"]["version"] == "v1.9.6"
    assert tools["pulumi-resource-kubernetes"]["version"] == "4.32.0"
    assert not [t["name"] for t in tools.values() if t["problem"]]
