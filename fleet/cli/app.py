"""The typer application behind ``fleet``: a root group that knows every command by name and help line
(:data:`fleet.cli.commands.COMMANDS`) and imports a command's module only when that command runs, or its own
help is asked for. :func:`fleet.cli.main` runs it (and draws the root help without it)."""

from __future__ import annotations

import functools
import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.20 vendors click
    from typer._click import Command, Context
except ImportError:  # pragma: no cover
    from click import Command, Context  # type: ignore[assignment]

from fleet.cli.commands import COMMANDS
from fleet.cli.help import DEBUG_HELP, HELP

__all__ = ["LazyGroup", "app", "load_module", "with_help_line"]

_SETTINGS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}


@functools.cache
def load_module(module: str) -> dict[str, Command]:
    """The click commands that ``fleet.cli.<module>`` registers, by name (imports the module). Each one's
    help begins with its line of :data:`COMMANDS` (written once, there; the command's docstring, if any,
    holds only what follows it)."""
    sub = typer.Typer(**_SETTINGS)
    importlib.import_module(f"fleet.cli.{module}").register(sub)
    commands = dict(typer.main.get_group(sub).commands)
    for name, cmd in commands.items():
        if name in COMMANDS:
            cmd.help = with_help_line(name, cmd.help)
    return commands


def with_help_line(name: str, rest: str | None) -> str:
    """Command ``name``'s whole help: its line of :data:`COMMANDS`, then the rest of its docstring."""
    line = COMMANDS[name][1]
    rest = (rest or "").strip()
    if " ".join(rest.split()).startswith(" ".join(line.split())):  # a docstring that repeats it (never twice)
        rest = rest.partition("\n\n")[2].strip()
    return line + (f"\n\n{rest}" if rest else "")


class LazyGroup(TyperGroup):
    """The root group: lists every command from :data:`COMMANDS` and imports a command's module only
    when the command is resolved to run (or to show its own help)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listing = False
        # placeholders that carry the name and help line: ``--help`` lists them, typo suggestions use them
        for name, (_module, help_line) in COMMANDS.items():
            self.commands[name] = TyperCommand(name=name, help=help_line, rich_help_panel=None)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return self.commands[cmd_name]
        return load_module(COMMANDS[cmd_name][0])[cmd_name]

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="fleet",
    help=HELP,
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_SETTINGS,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Declares ``--debug`` for the help text; :func:`fleet.cli.main` reads it before any command runs."""
