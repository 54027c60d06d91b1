"""Exit codes that never lie: a command whose exit 1 means a finding (``diff``, ``drift``, ``gate``,
``status``) exits 1 only for that finding; any other error of theirs exits 2 (or 70 for a bug), decided
once in fleet.cli's handler from the table :data:`fleet.cli.commands.FINDINGS`.

``drift`` runs for real (a fresh FLEET_HOME has no stack); ``gate`` and ``diff`` get their live service
(our own interface) answering with an error, since what is tested is the handler, not the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleet.cli import exit_code_of
from fleet.cli.commands import COMMANDS, FINDINGS
from fleet.errors import (
    FleetError,
    GateFailed,
    GitError,
    InputError,
    PulumiError,
    StackNotFound,
    Unreachable,
)
from fleet.rendering.build import Rendered
from tests.helpers import new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]


def test_every_finding_command_is_a_command() -> None:
    assert set(FINDINGS) <= set(COMMANDS)
    assert set(FINDINGS) == {"diff", "drift", "gate", "status"}


@pytest.mark.parametrize(("command", "error", "code"), [
    ("gate", GateFailed("a gate failed"), 1),
    ("gate", Unreachable("no route"), 2),
    ("gate", GitError("git failed"), 2),
    ("diff", Unreachable("no route"), 2),
    ("drift", StackNotFound("no stack"), 2),
    ("drift", PulumiError("engine failed"), 2),
    ("status", GitError("git failed"), 2),
    ("diff", InputError("bad"), 2),
    ("sync", Unreachable("no route"), 1),  # not a finding command: its 1 is a failure, as before
    ("bootstrap", GateFailed("a gate failed"), 1),
])
def test_the_handler_decides_from_the_declaration(command: str, error: FleetError, code: int) -> None:
    assert exit_code_of(error, command) == code


def test_drift_of_a_cluster_with_no_stack_exits_2(fleet_home: Path, capsys: Capsys) -> None:
    code, out, err = run_cli(capsys, "drift", "eu-1")
    assert code == 2, err
    assert out == ""
    assert "✗ no stack" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["nope", "../x", "EU-1", ""])
def test_drift_of_a_cluster_that_does_not_exist_exits_2(fleet_home: Path, capsys: Capsys, name: str) -> None:
    code, out, err = run_cli(capsys, "drift", name)
    assert code == 2, err
    assert out == "" and "Traceback" not in err


def test_drift_internal_error_exits_70(fleet_home: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleet.cli.provision
    import fleet.provision

    def drift(name: str, **_kw: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fleet.provision, "drift", drift)
    monkeypatch.setattr(fleet.cli.provision, "_program", lambda: None)
    code, _out, err = run_cli(capsys, "drift", "eu-1")
    assert code == 70, err


@pytest.fixture
def live_repo(tmp_path: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fleet repo with cluster eu-1 and a provisioned kubeconfig; rendering answers with no objects."""
    import fleet.rendering.cluster

    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "dev"})
    (fleet_home / "kubeconfigs").mkdir(mode=0o700)
    (fleet_home / "kubeconfigs" / "eu-1.yaml").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setattr(fleet.rendering.cluster, "render_cluster",
                        lambda *_a, **_k: Rendered("eu-1", "a" * 40, (), "", ""))
    monkeypatch.chdir(repo)
    return repo


@pytest.mark.parametrize(("error", "code"), [
    (GateFailed('cluster "eu-1": 1 gate failed'), 1),
    (Unreachable("cluster eu-1 is unreachable"), 2),
    (RuntimeError("a bug"), 70),
])
def test_gate_exits_1_only_for_a_failed_gate(
    live_repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, error: BaseException, code: int
) -> None:
    import fleet.live.gates

    def run_gates(*_a: Any, **_k: Any) -> Any:
        raise error

    monkeypatch.setattr(fleet.live.gates, "run_gates", run_gates)
    got, out, err = run_cli(capsys, "gate", "eu-1")
    assert got == code, err
    assert out == ""


@pytest.mark.parametrize(("error", "code"), [
    (Unreachable("cluster eu-1 is unreachable"), 2),
    (FleetError("the API server refused"), 2),
    (RuntimeError("a bug"), 70),
])
def test_diff_never_exits_1_for_an_error(
    live_repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch, error: BaseException, code: int
) -> None:
    import fleet.live.diff

    def diff(*_a: Any, **_k: Any) -> Any:
        raise error

    monkeypatch.setattr(fleet.live.diff, "diff", diff)
    got, out, err = run_cli(capsys, "diff", "eu-1")
    assert got == code, err
    assert out == ""
