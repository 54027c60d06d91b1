"""Golden files of the read commands that run kustomize: ``render`` (manifests, objects table, JSON, one
cluster and ``--all``) and the ``bootstrap --dry-run`` runbook, on the golden fleet of
tests/golden/harness.py. ``UPDATE_GOLDEN=1`` rewrites them. (The others: tests/unit/test_golden.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import need_tool

from fleet.rendering import build
from tests.golden.harness import Case, build_fleet, check_case

pytestmark = pytest.mark.integration

CASES = [
    # render's default output (and -o yaml) is the manifests; -o json is one object, or with --all the envelope
    Case("render", ("render", "eu-1"), yaml=False),
    Case("render-objects", ("render", "eu-1"), table=("-o", "table"), json=False),
    Case("render-all", ("render", "--all"), table=("-o", "table"), yaml=False),
    Case("bootstrap-dry-run", ("bootstrap", "eu-1", "--dry-run")),  # at eu-1's last good revision
    Case("bootstrap-many-dry-run", ("bootstrap", "-l", "region=eu", "--to", "HEAD", "--dry-run")),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("golden")
    return build_fleet(base, base / "home")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: Case, fleet: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_tool("fleet-build")  # renders run the builder
    need_tool("kustomize")
    build.clear_cache()
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", "120")
    toolchain = Path(os.environ.get("FLEET_TOOLCHAIN_DIR", Path.home() / ".cache" / "fleet" / "toolchain"))
    check_case(case, fleet, (fleet, "<REPO>"), (fleet_home, "<HOME>"), (toolchain, "<TOOLCHAIN>"))
