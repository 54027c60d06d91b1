"""A 2-wave rollout of 6 local clusters, end to end on this machine (real Pulumi engine, real control planes):

1. bring-up: a new region of 6 clusters (``--waves 2``: waves of 3) from nothing, ``--max-parallel 3``; then the
   same six destroyed and brought up again one by one (``--max-parallel 1``);
2. update: a new revision rolled across the six running clusters, ``--max-parallel 3`` and one by one,
   in alternating rounds (medians).

Goal: a rollout's wall time at most 1.5x the slowest wave member per wave, summed over waves (the waves
run in sequence by design; inside a wave, parallel clusters should cost about the slowest one). Reported
as ratios to that goal (<= 1 meets it) and to the one-by-one run, in one run.

    python -m bench.rollout_bench [--clusters 6] [--waves 2] [--parallel 3] [--rounds 3] [--skip-bring-up]

Every revision reaches the clusters through the real operator (Flux's controllers beside each local
cluster, cloning the bench's remote over loopback): it is pushed before its rollout. Also recorded per
rollout: fleet's own CPU time per cluster (this process only: not the engine, control planes or
controllers it waits on) and the machine's peak used memory.

Prints a table and writes JSON to ``bench/results/rollout_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import RESULTS


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _setup(work: Path, names: list[str], waves: int) -> Path:
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    remote = work / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    # the remote is a local path: fleet serves it over smart HTTP on loopback beside each local cluster and
    # the operator (Flux's controllers) clones it from there, so every revision is pushed before its rollout
    root = init_repo(work / "fleet", remote_url=str(remote)).root
    for i, name in enumerate(names):  # consecutive, equal waves: 6 in 2 -> 3 + 3, 20 in 4 -> 5 each
        add_cluster(root, ClusterSpec(name=name, environment="dev" if i % 2 else "staging", region="bench",
                                      wave=i * waves // len(names) + 1, settings={"nodes": 1}))
    _git(root, "push", "-q", "origin", "HEAD")
    return root


def _rollout(repo: Path, parallel: int) -> dict[str, Any]:
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.output import StderrReporter
    from rollout.engine import run_rollout
    from rollout.model import RolloutRequest
    from rollout.progress import PlainView
    from rollout.services import RealRolloutServices

    load = round(os.getloadavg()[0], 1)
    busy0, total0 = _cpu_ticks()
    memory = _MemoryPeak()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    with memory:
        res = run_rollout(RolloutRequest(repo=repo, selector="region=bench", max_parallel=parallel),
                          RealRolloutServices(repo, engine=default_settings()), PlainView(StderrReporter(quiet=True)))
    wall = time.monotonic() - t0
    busy1, total1 = _cpu_ticks()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    own = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    rep = res.report
    if rep is None or res.outcome != "succeeded":
        raise SystemExit(f"rollout did not succeed: {res.outcome} ({rep.files if rep else ''})")
    waves = []
    for w in rep.waves:
        members = {c.name: c.duration_s for c in rep.clusters if c.wave == w.wave}
        steps = {c.name: {s.name: s.duration_s for s in c.steps if s.duration_s} for c in rep.clusters
                 if c.wave == w.wave}
        waves.append({"wave": w.wave, "wall_s": w.duration_s, "slowest_s": w.slowest_s, "members_s": members,
                      "steps_s": steps})
    goal = sum(1.5 * (w["slowest_s"] or 0.0) for w in waves)
    return {
        "max_parallel": parallel,
        "load_1m_before": load,
        "load_1m_after": round(os.getloadavg()[0], 1),
        "wall_s": round(wall, 2),
        "report_wall_s": rep.wall_s,
        "waves": waves,
        "goal_s": round(goal, 2),
        "ratio_to_goal": round(wall / goal, 2) if goal else None,
        "actions": sorted({c.action for c in rep.clusters}),
        # fleet's own work: the CPU time of this process (not of the Pulumi engine, the control planes or the
        # controllers it waits on), per cluster
        "fleet_cpu_s": round(own, 2),
        "fleet_cpu_per_cluster_s": round(own / max(len(rep.clusters), 1), 3),
        "machine_memory_used_peak_gib": memory.peak_gib,
        "machine_memory_used_before_gib": memory.before_gib,
        # the machine's cores busy over the rollout (every process, the other work on the machine included)
        "machine_cpu_busy": round((busy1 - busy0) / max(total1 - total0, 1), 2),
        "report": rep.files.get("markdown"),
    }


def _cpu_ticks() -> tuple[int, int]:
    """The machine's CPU time so far (busy, total), in ticks of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class _MemoryPeak:
    """The machine's used memory (MemTotal - MemAvailable of /proc/meminfo), sampled twice a second."""

    def __init__(self) -> None:
        self.before_gib = self.peak_gib = self._used()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _used() -> float:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0])
        return round((info["MemTotal"] - info["MemAvailable"]) / 2**20, 2)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_gib = max(self.peak_gib, self._used())

    def __enter__(self) -> _MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_gib = max(self.peak_gib, self._used())


def _destroy(names: list[str]) -> None:
    import shutil

    from clusters import program
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.local.clusters import LocalClusters
    from fleet.output import SilentReporter
    from fleet.paths import fleet_home
    from fleet.provision import destroy

    engine = default_settings()
    for name in names:
        destroy(name, program=program, reporter=SilentReporter(), engine=engine)
        LocalClusters()._delete_quietly(name)
        shutil.rmtree(fleet_home() / "bootstrap" / name, ignore_errors=True)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (its waves and steps as they were), and every round's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    return {**ordered[len(ordered) // 2], "rounds_wall_s": [r["wall_s"] for r in runs]}


def _compare(parallel: dict[str, Any], serial: dict[str, Any]) -> dict[str, Any]:
    return {
        "parallel": parallel,
        "one_by_one": serial,
        "speedup_vs_one_by_one": round(serial["wall_s"] / parallel["wall_s"], 2),
        "meets_goal": bool(parallel["ratio_to_goal"] is not None and parallel["ratio_to_goal"] <= 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rollout_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--clusters", type=int, default=6)
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--waves", type=int, default=2)
    p.add_argument("--skip-bring-up", action="store_true",
                   help="bring the clusters up once (parallel) and measure only the update rollouts")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the update rollouts")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    names = [f"rb-{i}" for i in range(1, a.clusters + 1)]
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "clusters": a.clusters, "waves": a.waves}
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="fleet-rollout-bench-") as tmp:
        work = Path(tmp)
        os.environ.update({"FLEET_HOME": str(work / "home"), "PULUMI_BACKEND_URL": f"file://{work / 'pulumi'}"})
        for k, v in (("GIT_AUTHOR_NAME", "fleet bench"), ("GIT_AUTHOR_EMAIL", "bench@fleet.test"),
                     ("GIT_COMMITTER_NAME", "fleet bench"), ("GIT_COMMITTER_EMAIL", "bench@fleet.test")):
            os.environ.setdefault(k, v)
        os.environ.pop("PULUMI_ACCESS_TOKEN", None)
        try:
            repo = _setup(work, names, a.waves)
            print(f"► bring-up: {a.clusters} new clusters, {a.waves} waves, --max-parallel {a.parallel}",
                  file=sys.stderr)
            par = _rollout(repo, a.parallel)
            if not a.skip_bring_up:
                print("► destroying them, then bringing them up one by one", file=sys.stderr)
                _destroy(names)
                ser = _rollout(repo, 1)
                results["bring_up"] = _compare(par, ser)
            else:
                results["bring_up_parallel"] = par  # measured once, not compared with one by one
            # updates are short: a warm-up, then rounds alternating parallel and one by one; medians reported
            runs: dict[int, list[dict[str, Any]]] = {a.parallel: [], 1: []}
            for i, parallel in enumerate([a.parallel] + [a.parallel, 1] * a.rounds):
                print(f"► update {i}: a new revision across the running clusters, --max-parallel {parallel}",
                      file=sys.stderr)
                for env in ("dev", "staging"):
                    f = repo / "environments" / env / "hello.yaml"
                    f.write_text(f.read_text().replace("${LOG_LEVEL:=", "${LOG_LEVEL:=x"))
                _git(repo, "commit", "-qam", f"bench: update {i}")
                _git(repo, "push", "-q", "origin", "HEAD")
                run = _rollout(repo, parallel)
                if i:
                    runs[parallel].append(run)
            results["update"] = _compare(_median(runs[a.parallel]), _median(runs[1]))
            results["update"]["rounds"] = a.rounds
        finally:
            from fleet.local.clusters import LocalClusters

            for name in names:
                LocalClusters()._delete_quietly(name)
            os.environ.clear()
            os.environ.update(saved)
    results["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rollout_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = []
    for key in ("bring_up", "update"):
        if key not in results:
            continue
        r = results[key]
        pw, sw = r["parallel"], r["one_by_one"]
        per_wave = ", ".join(f"w{w['wave']} {w['wall_s']:.1f}s (slowest {w['slowest_s']:.1f}s)" for w in pw["waves"])
        rows.append((f"{key}: --max-parallel {pw['max_parallel']}", f"{pw['wall_s']:.1f} s",
                     f"goal {pw['goal_s']:.1f} s -> ratio {pw['ratio_to_goal']} ({per_wave})"))
        rows.append((f"{key}: one by one", f"{sw['wall_s']:.1f} s",
                     f"ratio to its goal {sw['ratio_to_goal']}; parallel is {r['speedup_vs_one_by_one']}x faster"))
        rows.append((f"{key}: fleet's own CPU per cluster", f"{pw['fleet_cpu_per_cluster_s']:.2f} s",
                     f"one by one {sw['fleet_cpu_per_cluster_s']:.2f} s; machine memory peak "
                     f"{pw['machine_memory_used_peak_gib']:.1f} GiB "
                     f"(before {pw['machine_memory_used_before_gib']:.1f}); cores busy "
                     f"{pw['machine_cpu_busy'] * 100:.0f}% (one by one {sw['machine_cpu_busy'] * 100:.0f}%); "
                     f"load {pw['load_1m_before']} -> {pw['load_1m_after']}"))
    width = max(len(r[0]) for r in rows) if rows else 0
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>9}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
