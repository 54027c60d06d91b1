"""Expanding HelmReleases: one cluster whose overlay holds 100 HelmReleases of one chart (each its own values:
replicas, a greeting from a valuesFrom ConfigMap, a targetNamespace), the chart served on loopback by an HTTP
Helm repository, rendered by fleet (``fleet render``'s path: ``render_cluster(helm=True)``) cold (empty caches:
the index fetched, the chart downloaded once, every release templated), warm (in-process) and from the disk
cache only, beside ``helm template`` of each release through fleet-build (the same Helm v4 install action, one
request a release, the chart already on disk: what a script running ``helm template`` per release does, less
the process start of each ``helm`` run; a ``helm`` binary is not in the toolchain).

    python -m bench.helm_bench [--releases 100]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import tarfile
import tempfile
import textwrap
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import RESULTS

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.4.0\n",
    "values.yaml": "replicas: 1\ngreeting: hello\n",
    "templates/deployment.yaml": textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
        spec:
          replicas: {{ .Values.replicas }}
          selector:
            matchLabels: {app: {{ .Release.Name }}}
          template:
            metadata:
              labels: {app: {{ .Release.Name }}}
            spec:
              containers:
                - name: app
                  image: example/app:1.4.0
                  env:
                    - {name: GREETING, value: {{ .Values.greeting | quote }}}
        """),
    "templates/service.yaml": textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
        spec:
          selector: {app: {{ .Release.Name }}}
          ports: [{port: 80}]
        """),
}


def _package() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, text in CHART.items():
            data = text.encode()
            info = tarfile.TarInfo(f"app/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(folder: Path) -> tuple[ThreadingHTTPServer, threading.Thread]:
    def make(*args: Any, **kw: Any) -> _Quiet:
        return _Quiet(*args, directory=str(folder), **kw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _repo(root: Path, url: str, releases: int) -> None:
    from fleet.adapters import proc
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    init_repo(root)
    add_cluster(root, ClusterSpec(name="eu-1", environment="dev"))
    d = root / "environments" / "dev" / "helm"
    d.mkdir(parents=True)
    docs = [textwrap.dedent(f"""\
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata: {{name: charts, namespace: apps}}
        spec: {{interval: 1h, url: "{url}"}}
        """)]
    for i in range(releases):
        docs.append(textwrap.dedent(f"""\
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: app-{i}-values, namespace: apps}}
            data:
              values.yaml: "greeting: hello-{i}"
            """))
        docs.append(textwrap.dedent(f"""\
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata: {{name: app-{i}, namespace: apps}}
            spec:
              interval: 10m
              targetNamespace: team-{i % 10}
              chart:
                spec:
                  chart: app
                  version: ">=1.0.0 <2.0.0"
                  sourceRef: {{kind: HelmRepository, name: charts}}
              valuesFrom:
                - {{kind: ConfigMap, name: app-{i}-values}}
              values:
                replicas: {1 + i % 3}
            """))
    (d / "releases.yaml").write_text("---\n".join(docs))
    (d / "kustomization.yaml").write_text("resources: [releases.yaml]\n")
    kus = root / "environments" / "dev" / "kustomization.yaml"
    kus.write_text(kus.read_text().replace("namespace: hello-dev\n", "").replace(
        "  - ../../base\n", "  - ../../base\n  - helm\n"))
    proc.run(["git", "-C", str(root), "add", "-A"], check=True)
    proc.run(["git", "-C", str(root), "commit", "-q", "-m", "helm releases"], check=True)


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--releases", type=int, default=100)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-helm-bench-") as tmp:
        os.environ["FLEET_HOME"] = str(Path(tmp) / "home")  # cold means cold: a home of its own
        from fleet.adapters import fluxbuild
        from fleet.rendering import build, helm
        from fleet.rendering.cluster import render_cluster

        charts = Path(tmp) / "charts"
        charts.mkdir()
        data = _package()
        (charts / "app-1.4.0.tgz").write_bytes(data)
        index = {"apiVersion": "v1", "entries": {"app": [{"name": "app", "version": "1.4.0", "apiVersion": "v2",
                                                           "urls": ["app-1.4.0.tgz"],
                                                           "digest": hashlib.sha256(data).hexdigest()}]}}
        (charts / "index.yaml").write_text(json.dumps(index))
        server, thread = _serve(charts)
        try:
            root = Path(tmp) / "fleet"
            _repo(root, f"http://127.0.0.1:{server.server_address[1]}", args.releases)
            def render() -> Any:
                return render_cluster(root, "eu-1", helm=True)

            build.clear_cache(disk=True)
            helm.clear_cache(disk=True)
            t_cold, rendered = timed(render)
            cold_stats = helm.stats()
            t_warm, _ = timed(render, repeat=3)
            helm.clear_cache()
            build.clear_cache()
            t_disk, _ = timed(render)
            disk_stats = helm.stats()
            objects = len(rendered.objects)
            # the baseline: helm template of each release, the chart already downloaded, values already merged
            kept = next((Path(os.environ["FLEET_HOME"]) / "cache" / "helm" / "charts").iterdir()) / "chart.tgz"

            def per_release() -> int:
                n = 0
                for i in range(args.releases):
                    text = fluxbuild.template(kept.parent, kept.name, release=f"team-{i % 10}-app-{i}",
                                              namespace=f"team-{i % 10}",
                                              values={"greeting": f"hello-{i}", "replicas": 1 + i % 3})
                    n += text.count("\nkind: ")
                return n

            t_base, _ = timed(per_release)
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
            fluxbuild.close()
    results = {
        "releases": args.releases,
        "objects": objects,
        "cold_s": round(t_cold, 3),
        "cold": cold_stats,
        "warm_s": round(t_warm, 4),
        "disk_cache_s": round(t_disk, 3),
        "disk_cache": disk_stats,
        "helm_template_per_release_s": round(t_base, 3),
        "warm_speedup_vs_per_release": round(t_base / t_warm, 1) if t_warm else None,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "helm_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
