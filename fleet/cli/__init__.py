"""The composition root: wires the command modules to the services, and maps errors to exit codes.

Exit codes: 0 ok; 1 failed (or, for ``fleet diff``, drift); 2 bad input or configuration.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx  # type: ignore[no-redef]

from fleet.errors import FleetError
from fleet.paths import debug_from_env

__all__ = ["app", "main"]

app = typer.Typer(
    name="fleet",
    help="Multi-cluster fleet manager and disaster-recovery bootstrapper for Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One small module per verb (or group of verbs); each has ``register(app)``.
COMMAND_MODULES = (
    "doctor",
    "local",
    "init",
    "cluster",
    "render",
    "good",
    "remote",
    "schema",
    "sync",
    "diff",
    "gate",
    "status",
    "provision",
    "bootstrap",
    "region",
    "rollout",
)

@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug detail (or FLEET_DEBUG=1)."),
) -> None:
    """Declares ``--debug`` for the help text; :func:`main` reads it before any command runs."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"fleet.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fleet`` console script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or debug_from_env()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="fleet", standalone_mode=False)
    except FleetError as e:
        if debug:
            traceback.print_exc()
        print(f"✗ {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except typer.Abort:
        print("✗ aborted", file=sys.stderr)
        return 1
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except _cx.NoArgsIsHelpError as e:
        print(e.format_message(), file=sys.stderr)
        return 0 if not args or args == ["--debug"] else 2
    except _cx.ClickException as e:
        # Usage errors: one line, exit 2.
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        print(f"✗ {where}{e.format_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("✗ interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        else:
            print(f"✗ internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(rv or 0) if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
