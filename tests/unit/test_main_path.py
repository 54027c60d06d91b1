"""``python -m fleet`` run inside a fleet repo (whose registry is a ``clusters/`` folder) still finds fleet's
own ``clusters`` package, the Pulumi program, and not the registry folder as a namespace package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CODE = """
import runpy, sys
# python -c puts the working directory ("") first on sys.path, as python -m does
sys.argv = ["fleet", "--help"]
try:
    runpy.run_module("fleet", run_name="__main__")
except SystemExit:
    pass
from clusters import program
print(type(program).__name__)
"""


def test_python_m_fleet_in_a_fleet_repo_finds_its_own_clusters_package(tmp_path: Path) -> None:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "eu-1.yaml").write_text("name: eu-1\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as installed, not from a source tree
    out = subprocess.run([sys.executable, "-c", CODE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split()[-1] == "FleetProgram", out.stdout + out.stderr
