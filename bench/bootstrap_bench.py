"""Recovery of a lost local cluster whose overlay has 300 objects, split into provision, operator
install, sync and gates; and fleet's own overhead: the time not spent waiting on the Pulumi engine
(which includes the control plane starting) or on the API server.

    python -m bench.bootstrap_bench [--objects 300]

Goals: whole recovery under 60 s on this machine; fleet's own overhead under 5 s.
How the overhead is measured: every call into the Pulumi engine (Engine.up/refresh), every API
request (Kube._once) and every watch wait (Watcher.wait) records its wall-clock interval; the union
of those intervals (parallel requests overlap) is "waiting"; overhead = recovery time - waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class Intervals:
    def __init__(self) -> None:
        self.spans: list[tuple[float, float, str]] = []
        self.lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.monotonic()
            try:
                return original(*a, **k)
            finally:
                with self.lock:
                    self.spans.append((t0, time.monotonic(), label))

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def union(self, start: float, end: float, labels: set[str] | None = None) -> float:
        spans = sorted((max(a, start), min(b, end)) for a, b, lab in self.spans
                       if b > start and a < end and (labels is None or lab in labels))
        total, cur_a, cur_b = 0.0, None, None
        for a, b in spans:
            if cur_b is None or a > cur_b:
                if cur_b is not None and cur_a is not None:
                    total += cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        if cur_a is not None and cur_b is not None:
            total += cur_b - cur_a
        return total


def big_overlay(objects: int) -> str:
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: big\n"]
    deployments = 10
    for i in range(deployments):
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: big\nspec:\n"
            f"  replicas: 2\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n"
            f"    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n"
            f"        - name: app\n          image: registry.fleet.local/app:{i}\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\n  namespace: big\nspec:\n"
            f"  selector: {{app: app-{i}}}\n  ports:\n    - port: 80\n"
        )
    for i in range(objects - 1 - 2 * deployments):
        docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03d}\n  namespace: big\n"
                    f"data:\n  index: \"{i}\"\n  cluster: ${{FLEET_CLUSTER}}\n")
    return "---\n".join(docs)


def run(objects: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fleet-bootstrap-bench-"))
    os.environ["FLEET_HOME"] = str(work / "home")
    os.environ.setdefault("PULUMI_BACKEND_URL", f"file://{work / 'backend'}")
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "bench")
    (work / "backend").mkdir(exist_ok=True)

    from bootstrap.pipeline import BootstrapRequest, run_bootstrap
    from bootstrap.services import RealServices
    from clusters import program
    from fleet import provision as prov
    from fleet.adapters.kube import Kube
    from fleet.adapters.pulumi_auto import Engine
    from fleet.live.watch import Watcher
    from fleet.local import LocalClusters
    from fleet.output import SilentReporter
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    repo = work / "repo"
    init_repo(repo, name="bench")
    env_dir = repo / "environments" / "big"
    env_dir.mkdir(parents=True)
    (env_dir / "objects.yaml").write_text(big_overlay(objects))
    (env_dir / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - objects.yaml\n")
    settings = (repo / "fleet.yaml").read_text()
    (repo / "fleet.yaml").write_text(settings.replace(
        "  # url: https://git.example.com/platform/fleet.git", "  url: https://git.example.com/bench/fleet.git", 1))
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"big overlay: {objects} objects"], check=True)
    add_cluster(repo, ClusterSpec(name="bench-dr", environment="big"))
    services = RealServices(repo)
    try:
        first = run_bootstrap(BootstrapRequest(repo, "bench-dr", to="HEAD"), services, SilentReporter())
        assert first.outcome == "recovered", first.error
        LocalClusters().delete("bench-dr")  # the cluster is lost

        iv = Intervals()
        undo = [iv.wrap(Engine, "up", "engine"), iv.wrap(Engine, "refresh", "engine"),
                iv.wrap(Kube, "_once", "api"), iv.wrap(Watcher, "wait", "api")]
        t0 = time.monotonic()
        res = run_bootstrap(BootstrapRequest(repo, "bench-dr"), services, SilentReporter())
        t1 = time.monotonic()
        for u in undo:
            u()
        assert res.outcome == "recovered" and res.report is not None, res.error
        steps = {s.name: s.duration_s for s in res.report.steps}
        total = t1 - t0
        engine = iv.union(t0, t1, {"engine"})
        api = iv.union(t0, t1, {"api"})
        waiting = iv.union(t0, t1)
        return {
            "objects": res.plan.objects,
            "recovery_s": round(total, 2),
            "steps_s": {k: round(v or 0.0, 2) for k, v in steps.items()},
            "engine_s": round(engine, 2),
            "api_s": round(api, 2),
            "fleet_overhead_s": round(total - waiting, 2),
            "goal_recovery_s": 60,
            "goal_overhead_s": 5,
        }
    finally:
        prov.destroy("bench-dr", program=program, reporter=SilentReporter())
        LocalClusters().delete("bench-dr")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bootstrap_bench")
    ap.add_argument("--objects", type=int, default=300)
    args = ap.parse_args(argv)
    r = run(args.objects)
    print(f"recovery of a lost local cluster, {r['objects']} objects")
    print(f"{'step':<12}{'seconds':>10}")
    for k, v in r["steps_s"].items():
        print(f"{k:<12}{v:>10.2f}")
    print(f"{'total':<12}{r['recovery_s']:>10.2f}   goal < {r['goal_recovery_s']} s "
          f"({'met' if r['recovery_s'] < r['goal_recovery_s'] else 'MISSED'})")
    print(f"waiting on the Pulumi engine {r['engine_s']:.2f} s, on the API server {r['api_s']:.2f} s")
    print(f"fleet's own overhead {r['fleet_overhead_s']:.2f} s   goal < {r['goal_overhead_s']} s "
          f"({'met' if r['fleet_overhead_s'] < r['goal_overhead_s'] else 'MISSED'})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bootstrap_bench.json").write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
