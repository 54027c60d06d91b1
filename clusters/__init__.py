"""fleet's Pulumi program: one stack per cluster; provisions the cluster and installs the operator.

fleet runs it inline through the Automation API (``fleet provision``: :data:`program` is wired in by
``fleet.cli.provision``); with a full Pulumi install, ``pulumi up`` at the repo root runs the same
program through ``clusters/__main__.py``. See docs/provisioning.md.
"""

from clusters.program import FleetProgram, program, run

__all__ = ["FleetProgram", "program", "run"]
