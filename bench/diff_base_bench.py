"""``fleet diff --base`` of a one-overlay change on a 1,000-cluster fleet, against what a CI script does
without fleet: check out both revisions and run ``kustomize build`` + substitution per cluster at each.

    python -m bench.diff_base_bench [--clusters 1000] [--environments 5] [--baseline-sample N]

fleet compares input keys (the cluster's entry and the object ids of what its overlay reads) and renders
only the clusters whose keys differ (one overlay's: clusters / environments of them), each overlay built
once per revision. Cold: an empty FLEET_HOME (no build cached); warm: a new process whose FLEET_HOME
holds the builds (the in-process caches cleared), and the whole ``fleet diff --base`` CLI process.
Goal: >= 20x faster than the baseline, warm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS
from bench.render_bench import build_registry, timed
from fleet import toolchain
from fleet.adapters import proc
from fleet.adapters.git import GitRepo
from fleet.registry import ClusterSpec
from fleet.rendering import build
from fleet.rendering.build import cluster_vars, overlay_dir
from fleet.rendering.revdiff import diff_revisions
from fleet.rendering.substitute import substitute

CHANGED_ENV = "prod"


def change_one_overlay(root: Path) -> tuple[str, str]:
    """Commit a change to the prod overlay only; (base, head) commit ids."""
    with GitRepo.open(root) as g, g.lock():
        base = g.resolve("HEAD")
        hello = g.read_file(base, f"environments/{CHANGED_ENV}/hello.yaml") or ""
        head = g.commit({f"environments/{CHANGED_ENV}/hello.yaml": hello.replace("name: hello\n",
                                                                                 "name: hello\n  labels:\n"
                                                                                 "    release: canary\n", 1)},
                        f"{CHANGED_ENV}: label the Deployment")
    return base, head


def baseline(root: Path, base: str, head: str, specs: list[ClusterSpec]) -> float:
    """Both revisions checked out (``git archive``), then per cluster: ``kustomize build`` of its overlay at
    each, substitution, and a comparison of the two texts."""
    kustomize = toolchain.find("kustomize")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-trees-") as tmp:
        trees = {}
        for name, rev in (("base", base), ("head", head)):
            dest = Path(tmp) / name
            dest.mkdir()
            archive = proc.run(["git", "-C", str(root), "archive", "--format=tar", "-o", f"{tmp}/{name}.tar", rev],
                               check=True, timeout=120)
            assert archive.ok
            proc.run(["tar", "-xf", f"{tmp}/{name}.tar", "-C", str(dest)], check=True, timeout=120)
            trees[name] = dest
        changed = 0
        for spec in specs:
            texts = []
            for tree in trees.values():
                done = proc.run([kustomize, "build", "--load-restrictor", "LoadRestrictionsNone",
                                 tree / overlay_dir(spec.environment)], check=True, timeout=120)
                texts.append(substitute(done.stdout, cluster_vars(spec)))
            changed += texts[0] != texts[1]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--environments", type=int, default=5)
    ap.add_argument("--baseline-sample", type=int, default=100,
                    help="time the baseline on N clusters and scale up (0: all of them)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        os.environ["FLEET_HOME"] = str(Path(tmp) / "home")  # a cold, private cache
        root = Path(tmp) / "fleet"
        specs = build_registry(root, args.clusters, args.environments)
        base, head = change_one_overlay(root)

        build.clear_cache(disk=True)
        t_cold, result = timed(lambda: diff_revisions(root, base, head))
        runs_cold = build.stats()["kustomize_runs"]
        build.clear_cache()  # a new process: the on-disk cache only
        t_warm, _ = timed(lambda: diff_revisions(root, base, head))
        build.clear_cache()
        t_warm_median, _ = timed(lambda: (build.clear_cache(), diff_revisions(root, base, head)), repeat=3)
        runs_warm = build.stats()["kustomize_runs"]
        fleet_bin = Path(sys.executable).with_name("fleet")
        cli = [str(fleet_bin), "diff", "--base", base, "--head", head, "--repo", str(root), "-o", "json"]
        t_cli, done = timed(lambda: proc.run(cli, timeout=600), repeat=3)
        assert done.returncode == 1, done.stderr  # changes
        sample = specs if not args.baseline_sample else specs[: args.baseline_sample]
        t_base = baseline(root, base, head, sample) * (len(specs) / len(sample))

    changed = [c for c in result.clusters if c.status != "unchanged"]
    results = {
        "clusters": len(specs),
        "environments": args.environments,
        "clusters_changed": len(changed),
        "clusters_rendered": result.rendered,
        "diff_base_cold_s": round(t_cold, 3),
        "diff_base_cold_kustomize_runs": runs_cold,
        "diff_base_warm_s": round(t_warm_median, 3),
        "diff_base_warm_first_s": round(t_warm, 3),
        "diff_base_warm_kustomize_runs": runs_warm,
        "fleet_diff_base_cli_warm_s": round(t_cli, 3),
        "baseline_kustomize_per_cluster_both_revisions_s": round(t_base, 3),
        "baseline_sampled_clusters": len(sample),
        "speedup_cold": round(t_base / t_cold, 1),
        "speedup_warm": round(t_base / t_warm_median, 1),
        "speedup_cli_warm": round(t_base / t_cli, 1),
        "goals": {"speedup_warm >= 20": t_base / t_warm_median >= 20},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    rows = [
        ("diff --base, cold cache (in-process)", f"{t_cold:.2f} s", f"{runs_cold} kustomize runs, "
                                                                     f"{result.rendered} clusters rendered"),
        ("diff --base, warm (disk cache, new process's state)", f"{t_warm_median:.2f} s",
         f"{runs_warm} kustomize runs"),
        ("fleet diff --base -o json (CLI process, warm)", f"{t_cli:.2f} s", ""),
        ("kustomize build + substitute per cluster, both revisions", f"{t_base:.2f} s",
         f"{2 * len(specs)} runs" if len(sample) == len(specs) else f"scaled from {len(sample)} clusters"),
        ("speedup (cold / warm / CLI)", f"{t_base / t_cold:.1f}x / {t_base / t_warm_median:.1f}x / "
                                        f"{t_base / t_cli:.1f}x", "goal >= 20x warm"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"diff_base_bench: {len(specs)} clusters, {args.environments} environments, one overlay changed "
          f"({len(changed)} clusters change)")
    for name, value, note in rows:
        print(f"  {name.ljust(width)}  {value:>22}  {note}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diff_base_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
