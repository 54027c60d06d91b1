"""``fleet gate CLUSTER``: wait for the cluster to be healthy at a revision; ``--mark-good`` records it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleet.cli.common import OutputOpt, RepoOpt, repo_path, reporter
from fleet.errors import InputError
from fleet.output import OutputFormat, emit, to_plain

if TYPE_CHECKING:  # the live layer (and the kubernetes client) load when a command runs
    from fleet.live.gates import GateReport

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """'90', '90s', '5m', '1h30m' -> seconds."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise InputError(f'{flag}: "{text}" is not a duration (examples: 90s, 5m, 1h30m)')
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt or 0) * 60 + float(s or 0)


def _rows(rep: GateReport) -> list[tuple[object, ...]]:
    return [(x.gate, x.object, x.status, x.message) for x in rep.results]


def register(app: typer.Typer) -> None:
    @app.command("gate")
    def gate_cmd(
        name: str = typer.Argument(..., help="The cluster to check."),
        rev: str = typer.Option(None, "--rev", help="Expected revision (default: HEAD)."),
        timeout: str = typer.Option(None, "--timeout", help="Time all gates may take (e.g. 5m)."),
        mark_good: bool = typer.Option(False, "--mark-good", help="Record the revision as good if all pass."),
        operator_gate: str = typer.Option(None, "--operator-gate",
                                          help="auto | on | off: the Flux gate (default: gates.operator)."),
        repo: Path = RepoOpt,
        output: OutputFormat = OutputOpt,
    ) -> None:
        from fleet.access import kubeconfig_for
        from fleet.good import record_good
        from fleet.live.gates import gate_timeout, run_gates
        from fleet.operator import gate_config
        from fleet.registry.load import load_registry
        from fleet.rendering.cluster import render_cluster

        if operator_gate not in (None, "auto", "on", "off"):
            raise InputError(f'--operator-gate must be auto, on or off (got "{operator_gate}")')
        r = reporter()
        path = repo_path(repo)
        registry = load_registry(path)
        spec = registry.get(name)
        seconds = parse_duration(timeout) if timeout else float(gate_timeout(registry.settings, spec))
        rendered = render_cluster(path, name, rev)
        cfg = gate_config(registry.settings, spec, operator_gate=operator_gate)
        report = run_gates(kubeconfig_for(spec), rendered.objects, rendered.revision, cfg, timeout=seconds,
                           reporter=r)
        # the failures' conditions and events went to stderr as they were found; -o json/yaml has them too
        emit(report, output, columns=["gate", "object", "status", "message"], rows=_rows)
        if report.passed and mark_good:
            rec = record_good(path, name, rendered.revision, reason="fleet gate: all gates passed",
                              gates=[to_plain(x) for x in report.results], duration_s=report.duration_s)
            r.ok(f'recorded {rec.revision[:12]} as last good of "{name}"')
        report.raise_for_failure()
