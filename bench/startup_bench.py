"""CLI start-up: the whole ``fleet`` process, from exec to exit, for the commands people type most, side by
side with what a process costs at all (``python -c pass``: the interpreter, ``git --version``: a native CLI).

    python -m bench.startup_bench [--runs 7] [--clusters 3]

Each command runs ``--runs`` times after one warm-up (which also writes the bytecode cache, as after
``pip install``), the commands taking turns so that a change in the machine's load hits them alike; the
figure is the median wall time, with the child's CPU time (user + system) beside it. Goals (issue 14):
``fleet --help`` < 0.25 s, ``fleet cluster list`` and ``fleet render CLUSTER`` of a cached cluster
< 0.3 s. The load average is recorded: on a busy machine wall times grow, CPU times much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS

GOALS_S = {"fleet --help": 0.25, "fleet cluster list": 0.3, "fleet render CLUSTER (cached)": 0.3}
BEFORE_S = {"fleet --help": 1.00, "fleet cluster list": 0.75}  # issue 14, median of 7, same machine


def timed_run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, child CPU seconds, exit code) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def build_repo(root: Path, clusters: int) -> tuple[Path, list[str]]:
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    repo = init_repo(root / "fleet", name="bench").root
    envs = ("prod", "staging", "dev")
    names = [f"{envs[i % 3]}-{i + 1}" for i in range(clusters)]
    for i, name in enumerate(names):
        add_cluster(repo, ClusterSpec(name=name, environment=envs[i % 3], region=("eu", "us")[i % 2], wave=i % 2,
                                      vars={"REPLICAS": str(1 + i % 4)}))
    return repo, names


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.startup_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--clusters", type=int, default=3)
    args = ap.parse_args(argv)

    from fleet import toolchain
    from fleet.errors import ToolMissing

    fleet = str(Path(sys.executable).with_name("fleet"))
    with tempfile.TemporaryDirectory(prefix="fleet-startup-") as tmp:
        work = Path(tmp)
        repo, names = build_repo(work, args.clusters)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "FLEET_DEBUG", "FLEET_REPO")}
        env.update({"FLEET_HOME": str(work / "home"), "COLUMNS": "100"})
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "git --version": [shutil.which("git") or "git", "--version"],
            "fleet --help": [fleet, "--help"],
            "fleet cluster list": [fleet, "cluster", "list"],
        }
        try:
            toolchain.find("kustomize")
            commands["fleet render CLUSTER (cached)"] = [fleet, "render", names[0]]
        except ToolMissing as e:
            print(f"⚠ fleet render is not timed: {e.message}", file=sys.stderr)
        load_before = os.getloadavg()
        for argv_ in commands.values():  # warm-up: bytecode cache written, render cache filled
            _, _, code = timed_run(argv_, env, repo)
            if code != 0:
                raise RuntimeError(f"{' '.join(argv_)} exited {code}")
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv_ in commands.items():  # in turn, so load changes hit every command alike
                wall, cpu, _ = timed_run(argv_, env, repo)
                samples[name].append((wall, cpu))
        load_after = os.getloadavg()

    floor = statistics.median(w for w, _ in samples["python -c pass"])
    floor_cpu = statistics.median(c for _, c in samples["python -c pass"])
    figures: dict[str, dict[str, Any]] = {}
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        goal = GOALS_S.get(name)
        figures[name] = {
            "wall_median_s": round(wall, 3),
            "wall_min_s": round(min(w for w, _ in runs), 3),
            "wall_max_s": round(max(w for w, _ in runs), 3),
            "cpu_median_s": round(cpu, 3),
            "x_python": round(wall / floor, 1),
            "x_python_cpu": round(cpu / floor_cpu, 1) if floor_cpu else None,
            **({"goal_s": goal, "of_goal": round(wall / goal, 2), "meets_goal": wall < goal} if goal else {}),
            **({"before_s": BEFORE_S[name], "speedup": round(BEFORE_S[name] / wall, 1)} if name in BEFORE_S else {}),
        }
    results = {
        "runs": args.runs,
        "clusters": args.clusters,
        "commands": figures,
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    print(f"startup_bench: whole process, median of {args.runs} (load average {load_before[0]:.1f} -> "
          f"{load_after[0]:.1f} on {os.cpu_count()} cpus)")
    print(f"  {'command':32}  {'wall':>7}  {'cpu':>7}  {'x python (wall, cpu)':>20}  goal (wall)")
    for name, f in figures.items():
        goal = (f"{f['of_goal']:.2f} of {f['goal_s']} s " + ("✔" if f["meets_goal"] else "✗")) if "goal_s" in f else ""
        ratio = f"{f['x_python']:.1f}x, {f['x_python_cpu'] or 0:.1f}x"
        print(f"  {name:32}  {f['wall_median_s']:6.3f}s  {f['cpu_median_s']:6.3f}s  {ratio:>20}  {goal}")
    goals = {name: f for name, f in figures.items() if "goal_s" in f}
    met = [name for name, f in goals.items() if f["meets_goal"]]
    results["goals_met"] = f"{len(met)} of {len(goals)}"
    print(f"goals (median wall < goal): {len(met)} of {len(goals)} met"
          + (f"; not met: {', '.join(n for n in goals if n not in met)}" if len(met) < len(goals) else ""))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
