"""One DR rehearsal (`fleet drill`) of a cluster whose overlay has 300 objects, end to end, beside its
floor, the bare local cluster's own creation (and the same bare cluster made through the Pulumi engine, the
floor of any recovery through Pulumi), in one run: the recovery time, each phase's share
(provision, operator, sync, gates), the scratch cluster's removal, and fleet's own overhead (the recovery
time not spent waiting on the Pulumi engine or the API server, measured as in bootstrap_bench).

    python -m bench.drill_bench [--objects 300]

Goals: recovery within 1.3x of creating the bare cluster; fleet's own overhead under 2 s.
A drill needs no live cluster, only the last good it rebuilds at: the bench records one and drills it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS
from bench.bootstrap_bench import Intervals, big_overlay


def run(objects: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fleet-drill-bench-"))
    os.environ["FLEET_HOME"] = str(work / "home")
    os.environ.setdefault("PULUMI_BACKEND_URL", f"file://{work / 'backend'}")
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "bench")
    (work / "backend").mkdir(exist_ok=True)

    from pulumi.automation._cmd import PulumiCommand

    from bootstrap.rehearsal import DrillRequest, run_drill
    from fleet.adapters.kube import Kube
    from fleet.adapters.pulumi_auto import Engine, default_settings
    from fleet.good import record_good
    from fleet.live.watch import Watcher
    from fleet.local.clusters import LocalClusters
    from fleet.local.flux import LocalOperator
    from fleet.output import SilentReporter
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    repo = work / "repo"
    init_repo(repo, name="bench")
    env_dir = repo / "environments" / "big"
    env_dir.mkdir(parents=True)
    (env_dir / "objects.yaml").write_text(big_overlay(objects))
    (env_dir / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - objects.yaml\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"big overlay: {objects} objects"], check=True)
    add_cluster(repo, ClusterSpec(name="bench-live", environment="big"))
    record_good(repo, "bench-live", "HEAD", reason="bench")
    engine = default_settings()

    lc = LocalClusters()

    def bare_cluster() -> float:
        """The floor: the bare local cluster the drill's provision step makes, created and deleted."""
        t0 = time.monotonic()
        lc.create("bench-floor")
        took = time.monotonic() - t0
        lc.delete("bench-floor")
        return took

    from clusters import program as cluster_program
    from fleet.provision import destroy, provision

    add_cluster(repo, ClusterSpec(name="bench-engine-floor", environment="big"))

    def engine_cluster() -> float:
        """The floor of any recovery through Pulumi: the same bare cluster made by the Pulumi engine (a new
        stack, the cluster alone, no operator), then destroyed."""
        t0 = time.monotonic()
        provision(repo, "bench-engine-floor", program=cluster_program, reporter=SilentReporter(),
                  phase="cluster", engine=engine)
        took = time.monotonic() - t0
        destroy("bench-engine-floor", program=cluster_program, reporter=SilentReporter(), engine=engine)
        return took

    floors = [bare_cluster()]  # once before the drill and once after it: the load moves in between
    engine_floors = [engine_cluster()]

    iv = Intervals()
    # every run of the pulumi CLI (updates, and the stack ls/select/output/export around them) is a wait on
    # the engine; so are kwokctl's delete, Flux's controllers getting ready and the API server's answers
    undo = [iv.wrap(Engine, op, "engine") for op in ("up", "refresh", "destroy", "exists", "remove")]
    undo += [iv.wrap(PulumiCommand, "run", "engine")]
    undo += [iv.wrap(LocalClusters, "delete", "local"), iv.wrap(Kube, "_once", "api"), iv.wrap(Watcher, "wait", "api")]
    undo += [iv.wrap(LocalOperator, "start_controllers", "controllers")]
    load = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    res = run_drill(DrillRequest(repo, "bench-live", report_dir=work / "report"), engine=engine,
                    reporter=SilentReporter())
    t1 = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for u in undo:
        u()
    assert res.result == "passed" and res.recovery is not None, res.failure
    floors.append(bare_cluster())
    engine_floors.append(engine_cluster())
    floor = sum(floors) / len(floors)
    engine_floor = sum(engine_floors) / len(engine_floors)
    rebuild_s = res.recovery_s or 0.0
    waiting = iv.union(t0, t1)
    return {
        "objects": objects,
        "floor_cluster_create_s": round(floor, 2),
        "floor_each_s": [round(f, 2) for f in floors],
        "recovery_s": round(rebuild_s, 2),
        "recovery_over_floor": round(rebuild_s / floor, 2),
        "floor_engine_cluster_s": round(engine_floor, 2),
        "floor_engine_each_s": [round(f, 2) for f in engine_floors],
        "recovery_over_engine_floor": round(rebuild_s / engine_floor, 2),
        "phases_s": {k: round(v, 2) for k, v in res.phases.items()},
        "phase_share": res.phase_share,
        "drill_wall_s": round(t1 - t0, 2),  # clean-up check, proofs, rebuild, removal, report, note
        "removal": res.removed,
        "engine_s": round(iv.union(t0, t1, {"engine"}), 2),
        "local_delete_s": round(iv.union(t0, t1, {"local"}), 2),
        "api_s": round(iv.union(t0, t1, {"api"}), 2),
        "controllers_s": round(iv.union(t0, t1, {"controllers"}), 2),
        "fleet_overhead_s": round((t1 - t0) - waiting, 2),
        # this process's CPU time over the drill: fleet, and the inline Pulumi program the engine runs in it
        "fleet_cpu_s": round((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), 2),
        "loadavg_before": [round(x, 2) for x in load],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "goal_ratio": 1.3,
        "goal_overhead_s": 2,
    }


def _mem_used_mb() -> float:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) / 1024


def _cpu_ticks() -> tuple[int, int]:
    """The machine's CPU time so far (busy, total), in ticks of /proc/stat: what the cores did meanwhile."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def parallel(clusters: int, max_parallel: int) -> dict[str, Any]:
    """``clusters`` drills one after the other, then ``max_parallel`` at once: wall clock, and the machine's
    peak memory in use above what it used before (sampled every 0.5 s by a thread; other work on the
    machine counts too)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    work = Path(tempfile.mkdtemp(prefix="fleet-drill-par-"))
    os.environ["FLEET_HOME"] = str(work / "home")
    os.environ.setdefault("PULUMI_BACKEND_URL", f"file://{work / 'backend'}")
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "bench")
    (work / "backend").mkdir(exist_ok=True)
    from bootstrap.rehearsal import DrillRequest, run_drill
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.good import record_good
    from fleet.output import SilentReporter
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    repo = work / "repo"
    init_repo(repo, name="bench")
    names = [f"par-{i}" for i in range(clusters)]
    for n in names:
        add_cluster(repo, ClusterSpec(name=n, environment="prod"))
        record_good(repo, n, "HEAD", reason="bench")
    engine = default_settings()
    out: dict[str, Any] = {"clusters": clusters, "max_parallel": max_parallel}
    for label, workers in (("sequential", 1), ("parallel", max_parallel)):
        base, peak, stop = _mem_used_mb(), [0.0], threading.Event()

        def sample(base: float = base, peak: list[float] = peak, stop: threading.Event = stop) -> None:
            while not stop.wait(0.5):
                peak[0] = max(peak[0], _mem_used_mb() - base)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        load = os.getloadavg()
        busy0, total0 = _cpu_ticks()
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda n: run_drill(DrillRequest(repo, n), engine=engine,
                                                        reporter=SilentReporter()), names))
        wall = time.monotonic() - t0
        busy1, total1 = _cpu_ticks()
        stop.set()
        t.join()
        out[label] = {"wall_s": round(wall, 1), "peak_extra_mem_mb": round(peak[0]),
                      "mem_used_before_mb": round(base), "peak_mem_used_mb": round(base + peak[0]),
                      "loadavg_before": [round(x, 2) for x in load],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                      # the machine's cores busy over the run (every process: this one, the engines, control
                      # planes, controllers and the other work on the machine)
                      "cpu_busy": round((busy1 - busy0) / max(total1 - total0, 1), 2),
                      "results": [r.result for r in results],
                      "recovery_s": [round(r.recovery_s or 0, 1) for r in results]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.drill_bench")
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--parallel", type=int, metavar="N", help="instead: drills of --clusters clusters, one after "
                                                             "the other and N at once")
    ap.add_argument("--clusters", type=int, default=6)
    args = ap.parse_args(argv)
    if args.parallel:
        p = parallel(args.clusters, args.parallel)
        for label in ("sequential", "parallel"):
            m = p[label]
            print(f"{p['clusters']} drills {label} ({p['max_parallel'] if label == 'parallel' else 1} at once): "
                  f"{m['wall_s']:.1f} s, peak memory +{m['peak_extra_mem_mb']} MB (machine {m['peak_mem_used_mb']} MB "
                  f"used), cores busy {m['cpu_busy'] * 100:.0f}%, {m['results']}, recovery {m['recovery_s']}, "
                  f"load {m['loadavg_before']} -> "
                  f"{m['loadavg_after']}")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "drill_parallel_bench.json").write_text(json.dumps(p, indent=2) + "\n")
        return 0
    r = run(args.objects)
    print(f"one drill of a {r['objects']}-object cluster, beside the bare local cluster's creation")
    print(f"{'phase':<12}{'s':>8}{'share':>8}")
    for k, v in r["phases_s"].items():
        print(f"{k:<12}{v:>8.2f}{r['phase_share'].get(k, 0) * 100:>7.0f}%")
    print(f"recovery {r['recovery_s']:.2f} s; the bare cluster's creation {r['floor_cluster_create_s']:.2f} s "
          f"(mean of {r['floor_each_s']}, before and after): "
          f"{r['recovery_over_floor']:.2f}x (goal {r['goal_ratio']}x)")
    print(f"the same bare cluster through the Pulumi engine (a new stack, no operator) "
          f"{r['floor_engine_cluster_s']:.2f} s (mean of {r['floor_engine_each_s']}): "
          f"recovery {r['recovery_over_engine_floor']:.2f}x")
    print(f"the whole drill {r['drill_wall_s']:.2f} s (scratch {r['removal']})")
    print(f"waiting on the engine {r['engine_s']:.2f} s, on kwokctl delete {r['local_delete_s']:.2f} s, "
          f"on the API server {r['api_s']:.2f} s, on Flux's controllers starting {r['controllers_s']:.2f} s; "
          f"fleet's own time {r['fleet_overhead_s']:.2f} s (goal {r['goal_overhead_s']} s); "
          f"this process's CPU {r['fleet_cpu_s']:.2f} s")
    print(f"load average before {r['loadavg_before']}, after {r['loadavg_after']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drill_bench.json").write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
