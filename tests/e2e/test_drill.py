"""e2e: the README's main job, the DR drill, end to end (three local clusters, the real engine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import need_local_clusters

pytestmark = pytest.mark.e2e


@pytest.mark.xdist_group("drill")
def test_the_drill_brings_the_lost_cluster_back_at_its_last_good_commit_not_the_bad_one(
    tmp_path: Path, pulumi_env: object
) -> None:
    need_local_clusters()
    p = subprocess.run([sys.executable, "-m", "drill", "--workdir", str(tmp_path / "drill")],
                       capture_output=True, text=True, timeout=900, env=dict(os.environ))
    out = p.stdout
    assert p.returncode == 0, (out + p.stderr)[-4000:]
    m = re.search(r"last good (\w{12}), bad commit (\w{12}), eu-1 now runs (\w{12})", out)
    assert m, out[-2000:]
    good, bad, runs = m.groups()
    assert runs == good != bad
    assert "(applied by flux)" in out  # the operator rebuilt it, not fleet
    # the bad commit was promoted through the operator, its gate failed and left last good where it was
    assert "$ fleet sync eu-1 --timeout 20s" in out
    assert "$ fleet gate eu-1 --timeout 10s --mark-good" in out
    # the report of the rebuild is printed: every step, the recovery time, the revision
    assert "# Recovery of cluster `eu-1`: ✔ recovered" in out
    for step in ("provision", "operator", "sync", "gates", "record"):
        assert re.search(rf"\| {step} \| done \|", out), step
    assert "Flux fetched" in out  # the sync step says when Flux fetched and applied the revision
    assert f"- revision: `{good}" in out
    # it ends with the rehearsal a schedule would run: eu-1 rebuilt again into a scratch cluster, passing
    assert "$ fleet drill eu-1 --report-dir" in out
    m = re.search(r"drill of eu-1: (\S+) in ([\d.]+)s against 5m", out)
    assert m and m.group(1) == "passed", out[-3000:]
    assert "$ fleet drill history eu-1" in out and re.search(r"\n\S+\s+passed\s+" + good, out)
    assert (tmp_path / "drill" / "drill-reports" / "drill.md").is_file()
    # the drill cleans up after itself
    from fleet.local.clusters import LocalClusters

    assert LocalClusters(tmp_path / "drill" / "home" / "local").list() == []  # the scratch eu-1-drill too
