"""Every bench of bench/ runs once, in a tiny size, so that none can rot unnoticed (a bench that crashed
before it started went unseen for a whole stop). Figures are not checked here (they are the bench's
business, side by side, in bench/results/); only that each runs to its end and writes its results, which
go to a temporary folder (``FLEET_BENCH_RESULTS``), never over the committed ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import need_tool

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("bench-smoke")]

ROOT = Path(__file__).resolve().parents[2]

# bench module -> (tiny arguments, the results file it writes, the toolchain binaries it needs)
TINY: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "render_bench": (("--clusters", "4", "--environments", "2"), "render_bench.json", ("kustomize",)),
    "diff_base_bench": (("--clusters", "10", "--environments", "5", "--baseline-sample", "2"), "diff_base_bench.json",
                        ("kustomize",)),
    "drill_bench": (("--objects", "25",), "drill_bench.json",
                    ("pulumi", "pulumi-resource-kubernetes", "kwokctl", "fleet-build", "source-controller")),
    "flux_expand_bench": (("--clusters", "2", "--apps", "1"), "flux_expand_bench.json", ("kustomize",)),
    "helm_bench": (("--releases", "3"), "helm_bench.json", ("fleet-build",)),
    "startup_bench": (("--runs", "1", "--clusters", "1"), "startup_bench.json", ("kustomize",)),
    "live_bench": (("--objects", "12", "--namespaces", "1", "--clusters", "1", "--rounds", "1",
                    "--gate-rounds", "1"), "live_bench.json", ("kwokctl", "kubectl", "kustomize")),
    "bootstrap_bench": (("--objects", "25",), "bootstrap_bench.json",
                        ("pulumi", "pulumi-resource-kubernetes", "kwokctl", "kustomize", "source-controller")),
    "rollout_bench": (("--clusters", "2", "--parallel", "2", "--rounds", "1"), "rollout_bench.json",
                      ("pulumi", "pulumi-resource-kubernetes", "kwokctl", "kustomize", "source-controller")),
}


def test_every_bench_module_has_a_tiny_run() -> None:
    benches = {p.stem for p in (ROOT / "bench").glob("*_bench.py")}
    assert benches == set(TINY), f"give each bench a tiny run here: {sorted(benches ^ set(TINY))}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_bench_runs_in_a_tiny_size(name: str, tmp_path: Path) -> None:
    args, results, tools = TINY[name]
    for tool in tools:
        need_tool(tool)
    committed = ROOT / "bench" / "results" / results
    before = committed.stat().st_mtime_ns if committed.exists() else None
    env = {**os.environ, "FLEET_BENCH_RESULTS": str(tmp_path / "results"), "FLEET_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"bench.{name} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    written = tmp_path / "results" / results
    assert written.is_file(), f"bench.{name} wrote no {results}"
    json.loads(written.read_text())
    assert (committed.stat().st_mtime_ns if committed.exists() else None) == before, "the committed figures changed"
