"""Expanding a Flux repo: 20 cluster directories and 200 Flux Kustomizations (10 per cluster: shared
infrastructure, then 8 apps with a per-cluster targetNamespace, postBuild.substitute and substituteFrom),
rendered by fleet (``fleet.rendering.fluxrender``: every build through render's confined, content-cached kustomize)
cold, warm (in-process memo) and from the on-disk cache only, beside running ``kustomize build`` once per
Kustomization and cluster directory (what a script without fleet does; it does not even apply the
Kustomizations' options or substitute).

    python -m bench.flux_expand_bench [--clusters 20] [--apps 8]

Goal: warm >= 10x faster than the per-Kustomization kustomize baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench import RESULTS
from fleet import toolchain
from fleet.adapters import proc
from fleet.adapters.git import GitRepo
from fleet.registry import load_registry
from fleet.rendering import build, fluxrender
from fleet.rendering.fluxrender import render_flux

ENVS = ("dev", "staging", "prod", "canary")


def _ks(name: str, path: str, depends: list[str], extra: str = "") -> str:
    deps = "".join(f"\n    - name: {d}" for d in depends)
    return textwrap.dedent(f"""\
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: {name}
          namespace: flux-system
        spec:
          interval: 10m
          path: {path}
          prune: true
          sourceRef:
            kind: GitRepository
            name: flux-system
        """) + (f"  dependsOn:{deps}\n" if depends else "") + extra


def _app_files(env: str, k: int) -> dict[str, str]:
    d = f"apps/{env}/app-{k}"
    return {
        f"{d}/kustomization.yaml": "resources: [deployment.yaml, service.yaml, config.yaml]\n",
        f"{d}/deployment.yaml": textwrap.dedent(f"""\
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: app-{k}
              labels: {{env: {env}}}
            spec:
              replicas: ${{REPLICAS:=1}}
              selector: {{matchLabels: {{app: app-{k}}}}}
              template:
                metadata: {{labels: {{app: app-{k}}}}}
                spec:
                  containers:
                    - name: app
                      image: ghcr.io/acme/app-{k}:1.{k}.0
                      env:
                        - {{name: REGION, value: "${{CLUSTER_REGION}}"}}
                        - {{name: CLUSTER, value: "${{CLUSTER_NAME}}"}}
            """),
        f"{d}/service.yaml": f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{k}\nspec:\n"
                             f"  selector: {{app: app-{k}}}\n  ports: [{{port: 80}}]\n",
        f"{d}/config.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{k}\ndata:\n"
                            f"  LOG_LEVEL: ${{LOG_LEVEL:=info}}\n  ENV: {env}\n",
    }


def build_repo(root: Path, clusters: int, apps: int) -> list[str]:
    """A Flux repo with ``clusters`` cluster directories of ``apps + 2`` Kustomizations each, adopted."""
    files: dict[str, str | None] = {
        "fleet.yaml": "apiVersion: fleet.dev/v1\nkind: Fleet\nname: bench\nregistry:\n  path: fleet/clusters\n"
                      "environments:\n  path: apps/{env}\n",
        "infrastructure/controllers/controllers.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                                       "  name: ingress\n",
        "infrastructure/configs/kustomization.yaml": "resources: [issuer.yaml]\n",
        "infrastructure/configs/issuer.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: issuer\n"
                                              "  namespace: ingress\ndata: {email: ops@acme.example}\n",
    }
    for env in ENVS:
        for k in range(apps):
            files.update(_app_files(env, k))
    names = []
    for i in range(clusters):
        name, env = f"c{i:02d}", ENVS[i % len(ENVS)]
        names.append(name)
        d = f"clusters/{name}"
        files[f"{d}/cluster-vars.yaml"] = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-vars\n  namespace: flux-system\n"
            f"data:\n  CLUSTER_NAME: {name}\n  CLUSTER_REGION: region-{i % 5}\n"
        )
        docs = [_ks("infra-controllers", "./infrastructure/controllers", []),
                _ks("infra-configs", "./infrastructure/configs", ["infra-controllers"])]
        for k in range(apps):
            post = (f"  targetNamespace: app-{k}-{name}\n  postBuild:\n    substitute:\n"
                    f"      REPLICAS: \"{1 + (i + k) % 4}\"\n    substituteFrom:\n"
                    "      - kind: ConfigMap\n        name: cluster-vars\n")
            docs.append(_ks(f"app-{k}", f"./apps/{env}/app-{k}", ["infra-configs"], post))
        files[f"{d}/kustomizations.yaml"] = "---\n".join(docs)
        files[f"fleet/clusters/{name}.yaml"] = f"name: {name}\nenvironment: {env}\nsource:\n  flux: {d}\n"
    root.mkdir(parents=True)
    g = GitRepo.init(root)
    with g, g.lock():
        g.commit(dict(sorted(files.items())), f"A Flux repo: {clusters} clusters")
    return names


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def expand_all(root: Path, names: list[str]) -> list[Any]:
    g = GitRepo.open(root)
    sha = g.resolve("HEAD")
    reg = load_registry(g, sha)
    return [render_flux(g, sha, reg.get(n), reg.settings) for n in names]


def baseline(root: Path, paths: list[str]) -> float:
    """``kustomize build`` once per Kustomization path (and cluster directory), in a checkout."""
    kustomize = toolchain.find("kustomize")
    with tempfile.TemporaryDirectory(prefix="fleet-flux-base-") as tmp:
        GitRepo.open(root).extract("HEAD", Path(tmp))
        for d in {p for p in paths if p.startswith("clusters/")}:  # Flux generates these
            (Path(tmp) / d / "kustomization.yaml").write_text(
                "resources: [" + ", ".join(sorted(f.name for f in (Path(tmp) / d).iterdir())) + "]\n")
        (Path(tmp) / "infrastructure/controllers/kustomization.yaml").write_text("resources: [controllers.yaml]\n")
        start = time.perf_counter()
        for p in paths:
            proc.run([kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", str(Path(tmp) / p)],
                     check=True, timeout=120)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--apps", type=int, default=8, help="app Kustomizations per cluster (plus 2 infrastructure)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        os.environ["FLEET_HOME"] = str(Path(tmp) / "home")  # a cold, private cache
        root = Path(tmp) / "fleet-infra"
        t_setup, names = timed(lambda: build_repo(root, args.clusters, args.apps))

        build.clear_cache(disk=True)
        fluxrender.clear_cache()
        t_cold, done = timed(lambda: expand_all(root, names))
        runs_cold = build.stats()["kustomize_runs"]
        t_warm, _ = timed(lambda: expand_all(root, names), repeat=3)
        build.clear_cache()  # a new process: the on-disk cache only
        fluxrender.clear_cache()
        t_disk, _ = timed(lambda: expand_all(root, names))
        disk_hits = build.stats()["disk_hits"]

        nodes = [n for d in done for n in d.expansion.nodes if n.status in ("root", "expanded")]
        kustomizations = [n for n in nodes if n.id]
        t_base = baseline(root, [n.path for n in nodes])

    objects = sum(len(d.expansion.objects) for d in done)
    results = {
        "clusters": len(names),
        "kustomizations": len(kustomizations),
        "builds_per_expansion": len(nodes),
        "objects_rendered": objects,
        "setup_s": round(t_setup, 3),
        "expand_cold_s": round(t_cold, 3),
        "expand_cold_kustomize_runs": runs_cold,
        "expand_warm_s": round(t_warm, 3),
        "expand_disk_cache_s": round(t_disk, 3),
        "expand_disk_cache_hits": disk_hits,
        "baseline_kustomize_per_kustomization_s": round(t_base, 3),
        "baseline_kustomize_runs": len(nodes),
        "speedup_cold": round(t_base / t_cold, 1),
        "speedup_warm": round(t_base / t_warm, 1),
        "speedup_disk_cache": round(t_base / t_disk, 1),
        "goals": {"speedup_warm >= 10": t_base / t_warm >= 10},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_1m": round(os.getloadavg()[0], 1)},
    }
    rows = [
        ("expand all clusters, cold cache", f"{t_cold:.2f} s", f"{runs_cold} kustomize runs"),
        ("expand all clusters, warm (in-process)", f"{t_warm:.2f} s", "0 kustomize runs"),
        ("expand all clusters, on-disk cache only", f"{t_disk:.2f} s", f"{disk_hits} disk hits"),
        ("kustomize build once per Kustomization", f"{t_base:.2f} s", f"{len(nodes)} runs, no substitution"),
        ("speedup (cold / warm / disk)",
         f"{t_base / t_cold:.1f}x / {t_base / t_warm:.1f}x / {t_base / t_disk:.1f}x", "goal warm >= 10x"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"flux_expand_bench: {len(names)} cluster directories, {len(kustomizations)} Kustomizations, "
          f"{objects} objects")
    for name, value, note in rows:
        print(f"  {name.ljust(width)}  {value:>20}  {note}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flux_expand_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
