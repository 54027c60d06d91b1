"""The composition root: wires the command modules to the services, and maps errors to exit codes.

Exit codes (one handler, :func:`main`, maps every outcome to one of them):

    0   ok
    1   failed: a gate, a rebuild, a rollout, a provisioning run (for ``fleet diff``: drift found); for the
        commands whose 1 means a finding (:data:`fleet.cli.commands.FINDINGS`: ``diff``, ``drift``, ``gate``,
        ``status``) only that finding: any other error of theirs exits 2 (or 70), never 1
    2   bad input or configuration (a flag, a file of the fleet repo, a name), or a missing tool;
        one line naming file, line and key, and nothing changed
    70  internal error: an unexpected exception, a bug in fleet (EX_SOFTWARE of sysexits.h); one line
        ``✗ internal error: ...``, the traceback only with ``--debug`` (or ``FLEET_DEBUG=1``)
    130 interrupted (Ctrl-C)

Start-up: this module knows every command's name, module and help text (:data:`COMMANDS`, kept in
:mod:`fleet.cli.commands`, which :mod:`fleet.cli.app` reads too), so
``fleet --help`` lists them all without importing any of them; a command's module (and the
libraries it needs: pydantic, GitPython, kubernetes, pulumi, rich) is imported only when that
command runs or its own help is asked for.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from fleet.cli.commands import COMMANDS, FINDINGS
from fleet.cli.help import is_root_help, print_root_help
from fleet.errors import FleetError
from fleet.output import visible_text
from fleet.paths import debug_from_env

if TYPE_CHECKING:
    from fleet.cli.app import LazyGroup, load_module

__all__ = [
    "COMMANDS",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "LazyGroup",
    "app",
    "load_module",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: never 1, which ``fleet diff`` uses for drift
EXIT_INTERRUPTED = 130



def __getattr__(name: str) -> Any:
    """``app``, ``LazyGroup`` and ``load_module`` live in :mod:`fleet.cli.app` (typer loads with them)."""
    if name in ("app", "LazyGroup", "load_module"):
        from fleet.cli import app as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_of(args: list[str]) -> str | None:
    """The command ``args`` runs (its first word that is not an option: the root takes only ``--debug``)."""
    return next((a for a in args if not a.startswith("-")), None)


def exit_code_of(e: FleetError, command: str | None) -> int:
    """The exit code of error ``e`` raised by ``command``: its own, except that a command whose exit 1 is a
    finding (:data:`FINDINGS`) exits 1 only for that finding, and 2 for any other error that would say 1."""
    code = e.exit_code
    if command in FINDINGS and code == 1:
        findings = FINDINGS[command]
        if not any(t.__name__ in findings for t in type(e).__mro__):
            return EXIT_INPUT
    return code


def _fleet_error(e: FleetError, debug: bool, command: str | None = None) -> int:
    if debug:
        traceback.print_exc()
    print(f"✗ {visible_text(e.message)}", file=sys.stderr)
    if e.hint:
        print(f"  hint: {visible_text(e.hint)}", file=sys.stderr)
    return exit_code_of(e, command)


def _internal_error(e: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"✗ internal error: {type(e).__name__}: {visible_text(str(e))}", file=sys.stderr)
    if not debug:
        print("  hint: this is a bug in fleet; rerun with --debug for the traceback and report it", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fleet`` console script: runs one command, returns its exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or debug_from_env()
    # fleet uses no pydantic plugin: spare every command the scan of all installed packages' entry points
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if is_root_help(args):  # names and help lines only: drawn without loading typer
        print_root_help(COMMANDS)
        return EXIT_OK
    try:  # `fleet render CLUSTER` of a commit whose render is kept: printed without loading typer
        from fleet.cli.kept import print_kept

        if print_kept(args):
            return EXIT_OK
    except FleetError as e:
        return _fleet_error(e, debug, command_of(args))
    except KeyboardInterrupt:
        print("✗ interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        return _internal_error(e, debug)

    import typer

    try:  # typer >= 0.20 vendors click
        from typer._click import exceptions as _cx
    except ImportError:  # pragma: no cover
        from click import exceptions as _cx  # type: ignore[no-redef]

    from fleet.cli.app import app

    try:
        command = typer.main.get_command(app)
        rv = command.main(args=args, prog_name="fleet", standalone_mode=False)
    except FleetError as e:
        return _fleet_error(e, debug, command_of(args))
    except typer.Abort:
        print("✗ aborted", file=sys.stderr)
        return EXIT_FAILED
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except _cx.NoArgsIsHelpError as e:
        print(e.format_message(), file=sys.stderr)
        return EXIT_OK if not args or args == ["--debug"] else EXIT_INPUT
    except _cx.ClickException as e:
        # Usage errors: one line, exit 2.
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        print(f"✗ {where}{e.format_message()}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("✗ interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        return _internal_error(e, debug)
    return int(rv or 0) if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
