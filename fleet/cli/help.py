"""``fleet --help`` without typer: the root help drawn with rich's own parts, as typer draws it.

Typer's help renderer imports rich's Markdown (markdown-it) and Traceback modules, and typer itself
builds every parameter; for the root help that is most of the process's time. The root help only needs
names and help lines (:data:`fleet.cli.COMMANDS`), so it is drawn here with the same layout and styles
(typer 0.2x ``rich_utils``: usage, the help paragraph, an Options panel and a Commands panel). A unit test
compares this output with typer's own, plain and in colour (tests/unit/test_golden_cli.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.columns import Columns
    from rich.text import Text

__all__ = ["DEBUG_HELP", "HELP", "USAGE", "is_root_help", "print_root_help"]

HELP = "Multi-cluster fleet manager and disaster-recovery bootstrapper for Kubernetes."
DEBUG_HELP = "Show tracebacks and debug detail (or FLEET_DEBUG=1)."
USAGE = "Usage: fleet [OPTIONS] COMMAND [ARGS]..."
_HELP_FLAGS = ("--help", "-h")


def is_root_help(args: list[str]) -> bool:
    """``fleet``, ``fleet --help`` or ``fleet -h`` (with or without ``--debug``): the root help."""
    return not args or (set(args) <= {*_HELP_FLAGS, "--debug"} and any(a in _HELP_FLAGS for a in args))


def print_root_help(commands: Mapping[str, tuple[str, str]]) -> None:
    """Print the root help to stdout: usage, help, options, then ``commands`` (name -> (module, help))."""
    from rich.console import Console, Group
    from rich.highlighter import RegexHighlighter
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from rich.theme import Theme

    class OptionHighlighter(RegexHighlighter):  # typer.rich_utils.OptionHighlighter
        highlights = [  # noqa: RUF012
            r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
            r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
            r"(?P<types>\<[^\>]+\>)",
            r"(?P<usage>Usage: )",
        ]

    class TypesHighlighter(RegexHighlighter):  # typer.rich_utils.TypesHighlighter
        highlights = [  # noqa: RUF012
            r"^(?P<types_sep>(\[|<))",
            r"(?P<types_sep>\|)",
            r"(?P<types_sep>(\]|>))(\.\.\.)?$",
        ]

    highlighter, types = OptionHighlighter(), TypesHighlighter()
    width = os.environ.get("TERMINAL_WIDTH")
    force = True if (os.environ.get("GITHUB_ACTIONS") or os.environ.get("FORCE_COLOR")
                     or os.environ.get("PY_COLORS")) else None
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    console = Console(
        theme=Theme({
            "option": "bold cyan", "switch": "bold green", "negative_option": "bold magenta",
            "negative_switch": "bold red", "types": "bold yellow", "types_sep": "dim", "usage": "yellow",
        }),
        highlighter=highlighter,
        color_system="auto",
        force_terminal=force,
        width=int(width) if width else None,
        file=sys.stdout,
    )

    def text(s: str) -> Text:
        return highlighter(Text.from_markup(s, style=""))

    console.print(Padding(highlighter(USAGE), 1), style="bold")
    console.print(Padding(Group(text(HELP)), (0, 1, 1, 1)))

    def table(**kw: object) -> Table:
        return Table(show_header=False, expand=True, box=None, show_lines=False, leading=0, border_style=None,
                     row_styles=None, pad_edge=False, padding=(0, 1), **kw)  # type: ignore[arg-type]

    options = table(highlight=True)
    for long, short, help_text in (("--debug", "", DEBUG_HELP), ("--help", "-h", "Show this message and exit.")):
        options.add_row(highlighter(long), highlighter(short), highlighter(""), highlighter(""),
                        types(Text("<bool>", style="bold yellow", overflow="fold")), _columns(text(help_text)))
    console.print(Panel(options, border_style="dim", title="Options", title_align="left"))

    cmds = table(highlight=False)
    cmds.add_column(style="bold cyan", no_wrap=True, width=max(len(n) for n in commands))
    cmds.add_column("Description", justify="left", no_wrap=False, ratio=10)
    for name, (_module, help_line) in commands.items():
        cmds.add_row(Text(name), text(help_line.split("\n\n")[0].strip()))
    console.print(Panel(cmds, border_style="dim", title="Commands", title_align="left"))
    sys.stdout.write("\n")  # click echoes the (empty) string typer's renderer returns


def _columns(t: Text) -> Columns:
    """An option's help as typer puts it: in Columns (with its default and required marks, none here)."""
    from rich.columns import Columns

    return Columns([t])
