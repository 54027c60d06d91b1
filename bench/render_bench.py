"""Rendering a 1,000-cluster registry: ``fleet render --all`` (in-process, one kustomize build per
overlay, cached by content) against running ``kustomize build`` + substitution once per cluster, and
``fleet cluster list`` on that registry.

    python -m bench.render_bench [--clusters 1000] [--environments 5] [--baseline-sample N]

Goals: render --all >= 20x faster than the per-cluster baseline; cluster list < 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS
from fleet import toolchain
from fleet.adapters import proc
from fleet.adapters.git import GitRepo
from fleet.registry import ClusterSpec, dump_cluster, init_repo, load_registry
from fleet.rendering import build
from fleet.rendering.build import cluster_vars, overlay_dir
from fleet.rendering.cluster import render_all
from fleet.rendering.substitute import substitute

ENVIRONMENTS = ("dev", "staging", "prod", "qa", "perf", "canary", "sandbox")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")


def build_registry(root: Path, clusters: int, environments: int) -> list[ClusterSpec]:
    """A fleet repo with ``environments`` overlays and ``clusters`` clusters, in two commits."""
    init_repo(root, name="bench")
    envs = ENVIRONMENTS[:environments]
    files: dict[str, str | None] = {}
    for env in envs[3:]:  # more overlays, like staging with their own namespace
        src = root / "environments" / "staging"
        for f in src.iterdir():
            files[f"environments/{env}/{f.name}"] = f.read_text().replace("staging", env)
    specs = []
    for i in range(clusters):
        env = envs[i % len(envs)]
        spec = ClusterSpec(
            name=f"{env}-{i:04d}",
            environment=env,
            region=REGIONS[i % len(REGIONS)],
            wave=i % 4,
            labels={"team": ("web", "data", "ml")[i % 3], "tier": ("gold", "silver")[i % 2]},
            vars={"REPLICAS": str(1 + i % 5), "LOG_LEVEL": ("info", "debug")[i % 2]},
        )
        specs.append(spec)
        files[f"clusters/{spec.name}.yaml"] = dump_cluster(spec)
    with GitRepo.open(root) as g, g.lock():
        g.commit(files, f"Add {clusters} clusters over {environments} environments")
    return specs


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def baseline(root: Path, specs: list[ClusterSpec]) -> float:
    """What a script does without fleet: kustomize build + substitution, once per cluster."""
    kustomize = toolchain.find("kustomize")
    start = time.perf_counter()
    for spec in specs:
        done = proc.run(
            [
                kustomize,
                "build",
                "--load-restrictor",
                "LoadRestrictionsNone",
                root / overlay_dir(spec.environment),
            ],
            check=True,
            timeout=120,
        )
        substitute(done.stdout, cluster_vars(spec))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--environments", type=int, default=5)
    ap.add_argument(
        "--baseline-sample",
        type=int,
        default=0,
        help="time the baseline on N clusters and scale up (default: all of them)",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        os.environ["FLEET_HOME"] = str(Path(tmp) / "home")  # a cold, private cache
        root = Path(tmp) / "fleet"
        t_setup, specs = timed(lambda: build_registry(root, args.clusters, args.environments))

        build.clear_cache(disk=True)
        t_cold, rendered = timed(lambda: render_all(root))
        runs_cold = build.stats()["kustomize_runs"]
        t_warm, _ = timed(lambda: render_all(root), repeat=3)
        build.clear_cache()  # a new process: the on-disk cache only
        t_disk, _ = timed(lambda: render_all(root))

        sample = specs if not args.baseline_sample else specs[: args.baseline_sample]
        t_base = baseline(root, sample) * (len(specs) / len(sample))

        t_list_api, listed = timed(lambda: load_registry(root).select(None), repeat=5)
        fleet_bin = Path(sys.executable).with_name("fleet")
        cli = [str(fleet_bin), "cluster", "list", "--repo", str(root)]
        t_list_cli, _ = timed(lambda: proc.run(cli, check=True, timeout=60), repeat=5)
        selected = [*cli, "-l", "env=prod,tier=gold", "-o", "json"]
        t_sel_cli, _ = timed(lambda: proc.run(selected, check=True), repeat=3)
        # where a CLI process spends its time before any work: importing every command module
        py = [sys.executable, "-c"]
        t_import_cli, _ = timed(lambda: proc.run([*py, "import fleet.cli"], check=True), repeat=3)
        registry_only = [*py, "import typer, fleet.registry, fleet.output"]
        t_import_reg, _ = timed(lambda: proc.run(registry_only, check=True), repeat=3)

    results = {
        "clusters": len(specs),
        "environments": args.environments,
        "objects_rendered": sum(len(r.objects) for r in rendered),
        "setup_s": round(t_setup, 3),
        "render_all_cold_s": round(t_cold, 3),
        "render_all_cold_kustomize_runs": runs_cold,
        "render_all_warm_s": round(t_warm, 3),
        "render_all_disk_cache_s": round(t_disk, 3),
        "baseline_per_cluster_kustomize_s": round(t_base, 3),
        "baseline_sampled_clusters": len(sample),
        "speedup_cold": round(t_base / t_cold, 1),
        "speedup_warm": round(t_base / t_warm, 1),
        "cluster_list_api_s": round(t_list_api, 4),
        "cluster_list_cli_s": round(t_list_cli, 3),
        "cluster_list_cli_selector_json_s": round(t_sel_cli, 3),
        "listed": len(listed),
        "python_import_fleet_cli_s": round(t_import_cli, 3),
        "python_import_registry_only_s": round(t_import_reg, 3),
        "goals": {"speedup_cold >= 20": t_base / t_cold >= 20, "cluster_list_cli_s < 0.5": t_list_cli < 0.5},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    rows = [
        ("render --all, cold cache (in-process)", f"{t_cold:.2f} s", f"{runs_cold} kustomize runs"),
        ("render --all, warm (in-process memo)", f"{t_warm:.2f} s", ""),
        ("render --all, on-disk cache only", f"{t_disk:.2f} s", ""),
        (
            "kustomize build + substitute per cluster",
            f"{t_base:.2f} s",
            f"{len(specs)} runs" if len(sample) == len(specs) else f"scaled from {len(sample)}",
        ),
        ("speedup (cold / warm)", f"{t_base / t_cold:.1f}x / {t_base / t_warm:.1f}x", "goal >= 20x"),
        ("cluster list, in-process", f"{t_list_api * 1000:.0f} ms", f"{len(listed)} clusters"),
        ("fleet cluster list (CLI process)", f"{t_list_cli * 1000:.0f} ms", "goal < 500 ms"),
        ("fleet cluster list -l ... -o json", f"{t_sel_cli * 1000:.0f} ms", ""),
        ("  of which: python -c 'import fleet.cli'", f"{t_import_cli * 1000:.0f} ms", "every command module"),
        ("  vs python -c 'import typer, fleet.registry'", f"{t_import_reg * 1000:.0f} ms", "what list needs"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"render_bench: {len(specs)} clusters, {args.environments} environments")
    for name, value, note in rows:
        print(f"  {name.ljust(width)}  {value:>16}  {note}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "render_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
