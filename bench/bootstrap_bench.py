"""Recovery of a lost local cluster whose overlay has 300 objects, in operator mode (Flux's
controllers, running beside the cluster, fetch the repo and apply it) beside direct mode (fleet
applies), in one run, each split into provision, operator install, sync and gates; fleet's own
overhead (the time not spent waiting on the Pulumi engine, which includes the control plane
starting, or on the API server); and Flux's self-heal time after a requested reconcile.

    python -m bench.bootstrap_bench [--objects 300]

Goals: operator-mode recovery under 60 s on this machine; fleet's own overhead under 5 s.
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

from bench import RESULTS


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
    from fleet.adapters.pulumi_auto import Engine, default_settings
    from fleet.live.watch import Watcher
    from fleet.local.clusters import LocalClusters
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
    add_cluster(repo, ClusterSpec(name="bench-dr", environment="big"))
    engine = default_settings()  # the bench is its own composition root
    services = RealServices(repo, engine=engine)  # no remote: fleet serves the repo itself to the cluster's operator
    try:
        first = run_bootstrap(BootstrapRequest(repo, "bench-dr", to="HEAD"), services, SilentReporter())
        assert first.outcome == "recovered", first.error
        out: dict[str, Any] = {"goal_recovery_s": 60, "goal_overhead_s": 5}
        for mode in ("direct", "operator"):
            LocalClusters().delete("bench-dr")  # the cluster is lost
            iv = Intervals()
            undo = [iv.wrap(Engine, "up", "engine"), iv.wrap(Engine, "refresh", "engine"),
                    iv.wrap(Kube, "_once", "api"), iv.wrap(Watcher, "wait", "api")]
            t0 = time.monotonic()
            res = run_bootstrap(BootstrapRequest(repo, "bench-dr", sync=mode), services, SilentReporter())  # type: ignore[arg-type]
            t1 = time.monotonic()
            for u in undo:
                u()
            assert res.outcome == "recovered" and res.report is not None, res.error
            steps = {s.name: s.duration_s for s in res.report.steps}
            total = t1 - t0
            out["objects"] = res.plan.objects
            out[mode] = {
                "recovery_s": round(total, 2),
                "steps_s": {k: round(v or 0.0, 2) for k, v in steps.items()},
                "engine_s": round(iv.union(t0, t1, {"engine"}), 2),
                "api_s": round(iv.union(t0, t1, {"api"}), 2),
                "fleet_overhead_s": round(total - iv.union(t0, t1), 2),
            }
        out["self_heal_s"] = self_heal(LocalClusters().kubeconfig_path("bench-dr"))
        return out
    finally:
        prov.destroy("bench-dr", program=program, reporter=SilentReporter(), engine=engine)
        LocalClusters().delete("bench-dr")


def self_heal(kubeconfig: Path) -> float:
    """Delete a managed ConfigMap, request a reconcile, and time until Flux handled it and the
    ConfigMap is back (Flux alone; fleet applies nothing)."""
    from fleet.adapters.kube import Kube, KubeTarget
    from fleet.operator.flux import status as flux

    kube = Kube.connect(KubeTarget("bench-dr", kubeconfig, source="bench"))
    try:
        kube.delete("v1", "ConfigMap", "cm-000", "big")
        t0 = time.monotonic()
        token = flux.request_reconcile(kube)
        while True:  # polling Flux's own status for the request it handled: the explicit state
            ks = kube.get(flux.KUSTOMIZE_API, "Kustomization", flux.OBJECT_NAME, flux.FLUX_NAMESPACE) or {}
            handled = (ks.get("status") or {}).get("lastHandledReconcileAt") == token
            if handled and kube.get("v1", "ConfigMap", "cm-000", "big") is not None:
                return round(time.monotonic() - t0, 2)
            if time.monotonic() - t0 > 120:
                raise SystemExit("self-heal: Flux did not bring cm-000 back within 120 s")
            time.sleep(0.05)
    finally:
        kube.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bootstrap_bench")
    ap.add_argument("--objects", type=int, default=300)
    args = ap.parse_args(argv)
    if args.objects < 22:  # the self-heal check deletes cm-000, the first ConfigMap after 21 other objects
        ap.error("--objects: at least 22 (a namespace, 10 Deployments, 10 Services and a ConfigMap)")
    r = run(args.objects)
    print(f"recovery of a lost local cluster, {r['objects']} objects: operator mode beside direct mode")
    print(f"{'step':<12}{'direct s':>10}{'operator s':>12}")
    for k in r["operator"]["steps_s"]:
        print(f"{k:<12}{r['direct']['steps_s'].get(k, 0):>10.2f}{r['operator']['steps_s'][k]:>12.2f}")
    d, o = r["direct"], r["operator"]
    print(f"{'total':<12}{d['recovery_s']:>10.2f}{o['recovery_s']:>12.2f}   operator/direct "
          f"{o['recovery_s'] / d['recovery_s']:.2f}; goal (operator) < {r['goal_recovery_s']} s "
          f"({'met' if o['recovery_s'] < r['goal_recovery_s'] else 'MISSED'})")
    for mode in ("direct", "operator"):
        m = r[mode]
        print(f"{mode}: waiting on the Pulumi engine {m['engine_s']:.2f} s, on the API server {m['api_s']:.2f} s, "
              f"fleet's own overhead {m['fleet_overhead_s']:.2f} s (goal < {r['goal_overhead_s']} s)")
    print(f"self-heal after a requested reconcile (a deleted ConfigMap back, by Flux): {r['self_heal_s']:.2f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bootstrap_bench.json").write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
