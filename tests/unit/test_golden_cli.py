"""The CLI's own contracts: the command table that ``fleet --help`` lists without importing any command,
the exit code of an internal error, and what start-up imports (no binaries needed)."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]
CLI_DIR = Path(__file__).resolve().parents[2] / "fleet" / "cli"


def test_every_command_is_in_the_table_with_its_own_first_help_paragraph() -> None:
    from fleet.cli import COMMANDS
    from fleet.cli.app import load_module

    modules = {p.stem for p in CLI_DIR.glob("*.py") if re.search(r"^def register\(", p.read_text(), re.M)}
    assert modules == {m for m, _ in COMMANDS.values()}
    registered = {}
    for module in modules:
        for name, cmd in load_module(module).items():
            registered[name] = module
            first = inspect.cleandoc(cmd.help or "").split("\n\n")[0].strip()
            assert COMMANDS[name][1] == first, (
                f"`fleet --help` shows fleet.cli.COMMANDS[{name!r}] without importing fleet.cli.{module}: "
                "copy the first paragraph of the command's docstring there"
            )
    assert registered == {name: m for name, (m, _) in COMMANDS.items()}


def test_each_help_line_is_written_once_in_the_table_never_again_in_a_docstring() -> None:
    """`fleet --help` and `fleet CMD --help` show the same line, written once (fleet.cli.commands.COMMANDS):
    a command's docstring holds only what follows it (fleet.cli.app.with_help_line puts them together)."""
    import ast

    from fleet.cli import COMMANDS

    for path in CLI_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and (doc := ast.get_docstring(node)):
                first = " ".join(doc.split("\n\n")[0].split())
                again = [n for n, (_, line) in COMMANDS.items() if " ".join(line.split()) == first]
                assert not again, f"{path.name}:{node.lineno}: the help line of {again} is written again"
        assert not re.search(r'typer\.Typer\(help="', path.read_text()), f"{path.name}: a group's help line again"


_EAGER = """
import sys
import typer
from fleet.cli import COMMANDS
from fleet.cli.app import app, load_module

eager = typer.Typer(name="fleet", help=app.info.help, no_args_is_help=True, add_completion=False,
                    context_settings={"help_option_names": ["-h", "--help"]})
eager.callback()(app.registered_callback.callback)
group = typer.main.get_group(eager)
for name, (module, _) in COMMANDS.items():
    group.add_command(load_module(module)[name], name)
group.main(sys.argv[1:], prog_name="fleet", standalone_mode=False)
"""


@pytest.mark.parametrize(
    "env",
    [{"COLUMNS": "100", "TERM": "dumb"}, {"COLUMNS": "80", "FORCE_COLOR": "1"}, {"COLUMNS": "50", "PY_COLORS": "1"},
     {"TERMINAL_WIDTH": "140"}],
    ids=["plain", "colour", "narrow", "wide"],
)
def test_the_root_help_is_what_typer_draws_for_every_command(env: dict[str, str]) -> None:
    """``fleet --help`` is drawn without typer (fleet.cli.help); it must be exactly what typer draws for an
    app with every command module loaded, in colour and at any width."""
    from fleet.cli import COMMANDS

    run_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PY_COLORS", "NO_COLOR",
                                                                  "TERMINAL_WIDTH", "GITHUB_ACTIONS")}
    run_env.update(env)

    def py(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=run_env, check=True)
        return done.stdout

    eager = py("-c", _EAGER, "--help")
    fast = py("-m", "fleet", "--help")
    assert fast == eager
    assert py("-m", "fleet", "-h") == py("-m", "fleet") == fast
    plain = re.sub(r"\x1b\[[0-9;]*m", "", fast)
    for name in COMMANDS:
        assert re.search(rf"^│ {name} ", plain, re.M), name


def test_a_command_module_loads_only_when_it_runs(capsys: Capsys) -> None:
    code, out, _ = run_cli(capsys, "schema", "--help")
    assert code == 0 and "cluster, fleet, or all" in out
    code, _, err = run_cli(capsys, "clustr", "list")
    assert code == 2 and "Did you mean 'cluster'?" in err


# ---- exit codes ------------------------------------------------------------------------------------


@pytest.fixture
def broken_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``fleet cluster list`` with a bug inside: the registry loader raises a plain exception."""
    import fleet.registry

    def boom(*_a: object, **_k: object) -> None:
        raise KeyError("environment")

    root = new_fleet_repo(tmp_path)
    monkeypatch.setattr(fleet.registry, "load_registry", boom)
    monkeypatch.delenv("FLEET_DEBUG", raising=False)
    return root


def test_an_internal_error_exits_70_with_one_line_and_a_hint(broken_list: Path, capsys: Capsys) -> None:
    from fleet.cli import EXIT_INTERNAL

    code, out, err = run_cli(capsys, "cluster", "list", "--repo", str(broken_list))
    assert code == EXIT_INTERNAL == 70
    assert out == ""
    assert err.splitlines() == [
        "✗ internal error: KeyError: 'environment'",
        "  hint: this is a bug in fleet; rerun with --debug for the traceback and report it",
    ]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_of_an_internal_error(
    how: str, broken_list: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["cluster", "list", "--repo", str(broken_list)]
    if how == "flag":
        args.insert(0, "--debug")
    else:
        monkeypatch.setenv("FLEET_DEBUG", "1")
    code, _, err = run_cli(capsys, *args)
    assert code == 70
    assert err.startswith("Traceback (most recent call last):") and "in boom" in err
    assert err.splitlines()[-1] == "✗ internal error: KeyError: 'environment'"


def test_diff_keeps_1_for_drift_and_an_internal_error_is_never_1(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleet.registry.load
    import fleet.rendering.cluster  # imported before the patch, so it never binds boom for later tests

    def boom(*_a: object, **_k: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'items'")

    root = new_fleet_repo(tmp_path, clusters={"dev-1": "dev"})
    monkeypatch.setattr(fleet.registry.load, "load_registry", boom)
    code, _, err = run_cli(capsys, "diff", "dev-1", "--repo", str(root))
    assert code == 70 and "✗ internal error: AttributeError" in err


# ---- start-up: what each command imports --------------------------------------------------------------

_PROBE = """
import json, sys
from fleet.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
roots = sorted({m.split(".")[0] for m in sys.modules} & {"pydantic", "git", "kubernetes", "pulumi", "rich",
               "yaml", "bootstrap", "rollout", "drill", "clusters", "tenacity", "typer"})
from fleet.cli import COMMANDS
commands = {f"fleet.cli.{m}" for m, _ in COMMANDS.values()} | {"fleet.cli.common", "fleet.registry",
                                                                "fleet.rendering.cluster", "fleet.registry.store",
                                                                "fleet.adapters.git"}
fleet = sorted(m for m in sys.modules if m in commands)
print(json.dumps({"code": code, "roots": roots, "fleet": fleet}), file=sys.stderr)
"""


def _imports(*args: str, cwd: Path | None = None) -> dict[str, object]:
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, check=False)
    return dict(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    seen = _imports("--help")
    assert seen["code"] == 0
    assert seen["fleet"] == []
    assert seen["roots"] == ["rich"]  # drawn with rich (fleet.cli.help), without typer


def test_cluster_list_imports_only_what_it_needs(tmp_path: Path) -> None:
    root = new_fleet_repo(tmp_path, clusters={"dev-1": "dev"})
    seen = _imports("cluster", "list", "--repo", str(root))
    assert seen["code"] == 0
    # the working tree is read without GitPython (its root found by walking up for .git), and the
    # registry's write side (fleet.registry.store) is not loaded by a read command
    assert seen["fleet"] == ["fleet.cli.cluster", "fleet.cli.common", "fleet.registry"]
    assert seen["roots"] == ["pydantic", "typer", "yaml"]
