"""Golden files of the read commands whose data come from processes or the Pulumi engine, fed fixed data
at the service boundary: ``local list`` with clusters (one with its Flux controllers and git endpoint
running, one stopped) and ``drift`` (drift and none). The command's own code (what it gathers, the table,
the JSON and YAML) runs as it does for a user; only the service under it answers with fixed data.

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden_fixed.py   # rewrite them, then review

The live commands (``diff``, ``sync``, ``gate``, ``status`` of a reachable cluster) are golden-tested on a
real local cluster: tests/integration/test_golden_live.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet.local.flux import ProcessStatus
from fleet.provision import DriftResult
from tests.golden.harness import Case, check_case


@pytest.fixture(autouse=True)
def stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", "120")


class _Operator:
    def __init__(self, home: Path) -> None:
        self.home = home

    def status(self, name: str) -> list[ProcessStatus]:
        if name == "us-1":
            return []  # created without Flux's controllers
        running = name == "eu-1"
        return [
            ProcessStatus("git-server", running, 41001 if running else None,
                          "http://127.0.0.1:38411/" if running else "stopped"),
            ProcessStatus("source-controller", running, 41002 if running else None,
                          "metrics :38412, health :38413" if running else "stopped"),
            ProcessStatus("kustomize-controller", running, 41003 if running else None,
                          "metrics :38414, health :38415" if running else "exited (code 1)"),
        ]

    def git_url(self, name: str) -> str | None:
        return "http://127.0.0.1:38411/fleet.git" if name == "eu-1" else None

    def dir(self, name: str) -> Path:
        return self.home / "local" / "operator" / name


class _LocalClusters:
    """fleet.local.clusters.LocalClusters as ``fleet local list`` uses it, answering for three clusters."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.operator = _Operator(home)

    def list(self) -> list[str]:
        return ["eu-1", "eu-2", "us-1"]

    def healthy(self, name: str) -> bool:
        return name != "eu-2"

    def kubeconfig_path(self, name: str) -> Path:
        return self.home / "local" / "kubeconfigs" / f"{name}.yaml"


def test_local_list_with_clusters(fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleet.cli.local

    monkeypatch.setattr(fleet.cli.local, "LocalClusters", lambda: _LocalClusters(fleet_home))
    check_case(Case("local-list-clusters", ("local", "list"), repo=False), Path("/nonexistent"),
               (fleet_home, "<HOME>"))


DRIFTED = DriftResult(
    cluster="eu-1", stack="eu-1", drift=True, changes={"same": 9, "update": 1, "delete": 1},
    resources=(
        {"op": "update", "resource": "kubernetes:apps/v1:Deployment::flux-system/source-controller",
         "properties": ["spec.replicas"]},
        {"op": "delete", "resource": "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository::flux-system/fleet",
         "properties": []},
    ),
    duration_s=3.2,
)
CLEAN = DriftResult(cluster="eu-2", stack="eu-2", drift=False, changes={"same": 11}, resources=(), duration_s=2.9)


@pytest.mark.parametrize(("case", "result"), [
    (Case("drift", ("drift", "eu-1"), code=1, repo=False), DRIFTED),
    (Case("drift-none", ("drift", "eu-2"), repo=False), CLEAN),
], ids=["drift", "none"])
def test_drift(case: Case, result: DriftResult, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleet.cli.provision
    import fleet.provision

    asked: list[str] = []

    def drift(name: str, **_kw: Any) -> DriftResult:
        asked.append(name)
        return result

    monkeypatch.setattr(fleet.provision, "drift", drift)
    monkeypatch.setattr(fleet.cli.provision, "_program", lambda: None)
    check_case(case, Path("/nonexistent"), (fleet_home, "<HOME>"))
    assert set(asked) == {result.cluster}
