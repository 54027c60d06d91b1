"""Every command of ``fleet``, by name: the module of :mod:`fleet.cli` that declares it and its help line.

:mod:`fleet.cli` draws ``fleet --help`` from it without importing any command module (nor typer), and
the typer root group (:mod:`fleet.cli.app`) lists the commands from it and imports a command's module
only when that command runs. It imports nothing of fleet, so both can read it.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "FINDINGS"]

# Every command, in the order ``fleet --help`` lists them: name -> (module of fleet.cli whose
# ``register(app)`` declares it, its help line: written here only, and put at the head of the command's own
# help when its module loads, fleet.cli.app.with_help_line; its docstring holds only what follows).
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
    "diff": (
        "diff",
        "Show drift between a revision and the live cluster, or with --base what a change does to every\n"
        "cluster's render (offline). Exit 0 none, 1 drift or changes, 2 error.",
    ),
    "gate": ("gate", "Run the health gates of a cluster (watch-driven, one timeout). Exit 0 passed, 1 failed."),
    "status": ("status", "Show every cluster of the fleet: revisions, health, drift and reachability."),
    "metrics": ("metrics", "Print the fleet's recovery and health metrics in Prometheus text format."),
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
    "runs": (
        "runs",
        "List the DR runs in progress (holder, heartbeat, live or expired) and the last ones that ended,\n"
        "across the team on a shared backend.",
    ),
    "drill": (
        "drill",
        "Rehearse a cluster's rebuild into a scratch cluster, against its recovery objective; keep the evidence.",
    ),
    "rollout": (
        "rollout",
        "Roll a revision across the fleet wave by wave: a wave starts when the previous one passed its gates.",
    ),
    "local": ("local", "Local clusters: real control planes run by kwokctl."),
    "cluster": ("cluster", "The registry: which clusters exist and what they run."),
    "region": ("region", "Regions: add a new one modelled on an existing one."),
}

# The commands whose exit 1 is a finding, by name: the errors (class names in :mod:`fleet.errors`, a
# subclass counts) that are that finding; the command's own ``typer.Exit(1)`` (drift found) is one too.
# Any other error of theirs that would exit 1 exits 2 instead (an unreachable cluster, a missing stack, a
# cluster that does not exist: what stopped the check, not what it found); a bug exits 70. One place
# decides: :func:`fleet.cli.main`'s error handler, from this table; no command adjusts its exit code.
FINDINGS: dict[str, tuple[str, ...]] = {
    "diff": (),  # 1: drift found
    "drift": (),  # 1: infrastructure drift found
    "gate": ("GateFailed",),  # 1: a gate failed or timed out
    "status": (),  # never 1 for a finding today; an error is 2 (bad input) or 70
}
