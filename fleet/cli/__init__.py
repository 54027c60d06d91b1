"""The composition root: wires the command modules to the services, and maps errors to exit codes.

Exit codes (one handler, :func:`main`, maps every outcome to one of them):

    0   ok
    1   failed: a gate, a rebuild, a rollout, a provisioning run (for ``fleet diff``: drift found)
    2   bad input or configuration (a flag, a file of the fleet repo, a name), or a missing tool;
        one line naming file, line and key, and nothing changed
    70  internal error: an unexpected exception, a bug in fleet (EX_SOFTWARE of sysexits.h); one line
        ``✗ internal error: ...``, the traceback only with ``--debug`` (or ``FLEET_DEBUG=1``)
    130 interrupted (Ctrl-C)

Start-up: this module knows every command's name, module and help text (:data:`COMMANDS`), so
``fleet --help`` lists them all without importing any of them; a command's module (and the
libraries it needs: pydantic, GitPython, kubernetes, pulumi, rich) is imported only when that
command runs or its own help is asked for.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

from fleet.cli.help import is_root_help, print_root_help
from fleet.errors import FleetError
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

# Every command, in the order ``fleet --help`` lists them: name -> (module of fleet.cli whose
# ``register(app)`` declares it, the first paragraph of its docstring, which the list shows). A unit test
# (tests/unit/test_golden_cli.py) fails when a docstring and its line here differ: change both.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("doctor", "Check the local toolchain: each tool with the version found and where."),
    "init": ("init", "Create a fleet repo: fleet.yaml, base/, environments/{dev,staging,prod}/, clusters/."),
    "adopt": (
        "adopt",
        "Adopt an existing Git repo (kustomize overlays or Flux cluster directories): fleet.yaml and the\n"
        "registry in one commit, no existing file moved or changed.",
    ),
    "render": (
        "render",
        "Render what a cluster should run at a revision: its overlay built by kustomize from Git (never\n"
        "the working tree), with its variables substituted as Flux postBuild does.",
    ),
    "good": ("good", "Show a cluster's last known good revision, or record one with --set REV."),
    "history": ("good", "Commits that changed what a cluster renders (its overlay, base, its file), newest first."),
    "push": ("remote", "Push the branch, refs/fleet/* (last good) and refs/notes/fleet (audit), atomically."),
    "pull": (
        "remote",
        "Fetch last-good refs and audit notes from the remote and merge them (the branch is left alone).",
    ),
    "schema": ("schema", "Print the JSON Schema of cluster files and fleet.yaml (table: the top-level fields)."),
    "sync": (
        "sync",
        "Bring a cluster to a revision: through its operator (move the pin, reconcile, wait until\n"
        'applied), or applied by fleet (server-side apply, field manager "fleet", prune).',
    ),
    "diff": ("diff", "Show drift between a revision and the live cluster. Exit 0 none, 1 drift, 2 error."),
    "gate": ("gate", "Run the health gates of a cluster (watch-driven, one timeout). Exit 0 passed, 1 failed."),
    "status": ("status", "Show every cluster of the fleet: revisions, health, drift and reachability."),
    "provision": (
        "provision",
        "Create or update clusters and their GitOps operator (pulumi up), or --preview the changes.",
    ),
    "drift": ("provision", "Infrastructure drift of what Pulumi manages (a dry-run refresh): exit 0 none, 1 drift."),
    "destroy": ("provision", "Destroy a cluster and everything its stack created, then remove the stack."),
    "bootstrap": (
        "bootstrap",
        "Rebuild a lost cluster from the repo at its last good commit: resumable, gated, reported.",
    ),
    "rollout": (
        "rollout",
        "Roll a revision across the fleet wave by wave: a wave starts when the previous one passed its gates.",
    ),
    "local": ("local", "Local clusters: real control planes run by kwokctl."),
    "cluster": ("cluster", "The registry: which clusters exist and what they run."),
    "region": ("region", "Regions: add a new one modelled on an existing one."),
}


def __getattr__(name: str) -> Any:
    """``app``, ``LazyGroup`` and ``load_module`` live in :mod:`fleet.cli.app` (typer loads with them)."""
    if name in ("app", "LazyGroup", "load_module"):
        from fleet.cli import app as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fleet_error(e: FleetError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"✗ {e.message}", file=sys.stderr)
    if e.hint:
        print(f"  hint: {e.hint}", file=sys.stderr)
    return e.exit_code


def _internal_error(e: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"✗ internal error: {type(e).__name__}: {e}", file=sys.stderr)
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
        return _fleet_error(e, debug)
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
        return _fleet_error(e, debug)
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
