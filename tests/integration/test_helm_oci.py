"""HelmReleases whose charts come from an OCI registry (fleet/rendering/helm.py, fleet-build's oci_resolve and
oci_blob): a real registry (CNCF Distribution, the toolchain's `registry`) on a free loopback port, podinfo's
chart pushed to it with the ORAS CLI as `helm push` lays it out (a Helm config blob and the chart layer), then
rendered through a HelmRepository of type oci and through an OCIRepository chartRef (tag, semver, digest),
cached by digest, diffed across a version bump; bad input (a chart that is not there, a version no tag meets, a
registry served over plain HTTP without spec.insecure) is exit 2 with one line naming the HelmRelease, and a
registry that is down is a warning with the release listed unresolved, as for an HTTP repository."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import commit_file, need_tool, new_fleet_repo, run_cli
from test_helm_render import _podinfo_chart

from fleet.adapters import fluxbuild, net
from fleet.rendering import build, helm

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]

CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
CHART_CONFIG = "application/vnd.cncf.helm.config.v1+json"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    work: Path
    pushed: dict[str, bytes]  # version -> the chart archive pushed

    def push(self, repo: str, tag: str, archive: bytes, meta: dict[str, object]) -> None:
        """``oras push`` of a chart as `helm push` writes it: its Chart.yaml as the config, the archive as the
        one layer."""
        d = self.work / f"push-{repo.replace('/', '-')}-{tag}"
        d.mkdir()
        (d / "chart.tgz").write_bytes(archive)
        (d / "config.json").write_text(json.dumps(meta))
        env = {"PATH": "", "HOME": str(self.work), "DOCKER_CONFIG": str(self.work / "docker")}
        done = subprocess.run([str(need_tool("oras")), "push", "--plain-http", "--no-tty",
                               f"{self.host}/{repo}:{tag}", "--config", f"config.json:{CHART_CONFIG}",
                               f"chart.tgz:{CHART_LAYER}"], cwd=d, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        self.pushed[tag] = archive


def _podinfo(version: str) -> tuple[bytes, dict[str, object]]:
    """podinfo's chart as a `helm package` archive at ``version`` (its Chart.yaml's version set), and its
    metadata."""
    chart = _podinfo_chart()
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(chart.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(chart).as_posix()
            data = yaml.safe_dump(meta).encode() if rel == "Chart.yaml" else path.read_bytes()
            info = tarfile.TarInfo(f"podinfo/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), meta


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """The registry on a free loopback port, its storage in tmp_path, with podinfo 6.9.2 and 6.9.3 pushed to
    charts/podinfo; stopped at the end."""
    binary = need_tool("registry")
    need_tool("oras")
    port = net.free_ports(1)[0]
    work = tmp_path / "registry"
    work.mkdir()
    config = work / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "debug": {"addr": ""}},
    }))
    log = (work / "registry.log").open("wb")
    proc = subprocess.Popen([str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={"PATH": "", "HOME": str(work)})
    try:
        deadline = time.monotonic() + 30
        while not net.http_ok(f"http://127.0.0.1:{port}/v2/", timeout=1):  # its API answers: ready
            assert proc.poll() is None, (work / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not answer /v2/ within 30 s"
            time.sleep(0.05)
        reg = Registry(f"127.0.0.1:{port}", work, {})
        for version in ("6.9.2", "6.9.3"):
            archive, meta = _podinfo(version)
            reg.push("charts/podinfo", version, archive, meta)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(autouse=True)
def tools() -> None:
    need_tool("fleet-build")
    build.clear_cache()
    helm.clear_cache()


def _helm_repository(host: str, insecure: bool = True) -> str:
    return f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: apps
spec:
  interval: 1h
  type: oci
  url: oci://{host}/charts
{"  insecure: true" if insecure else ""}
"""


def _release(version: str = ">=6.0.0 <7.0.0", chart: str = "podinfo") -> str:
    return f"""apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 10m
  chart:
    spec:
      chart: {chart}
      version: "{version}"
      sourceRef:
        kind: HelmRepository
        name: charts
  values:
    replicaCount: 2
"""


def _oci_repository(host: str, ref: str) -> str:
    return f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 1h
  url: oci://{host}/charts/podinfo
  insecure: true
  ref:
    {ref}
  layerSelector:
    mediaType: {CHART_LAYER}
    operation: copy
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 10m
  chartRef:
    kind: OCIRepository
    name: podinfo
  values:
    replicaCount: 2
"""


def _repo(tmp_path: Path, source: str, release: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_fleet_repo(tmp_path, clusters={"dev-1": "dev"})
    monkeypatch.chdir(root)
    commit_file(root, "environments/dev/helm/source.yaml", source)
    commit_file(root, "environments/dev/helm/release.yaml", release)
    commit_file(root, "environments/dev/helm/kustomization.yaml", "resources: [source.yaml, release.yaml]\n")
    kus = (root / "environments/dev/kustomization.yaml").read_text()
    kus = kus.replace("namespace: hello-dev\n", "").replace("  - ../../base\n", "  - ../../base\n  - helm\n")
    commit_file(root, "environments/dev/kustomization.yaml", kus)
    return root


def _render(capsys: Capsys, *args: str) -> tuple[int, list[dict[str, object]], str]:
    code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json", *args)
    return code, (json.loads(out)["objects"] if code == 0 else []), err


def _deployment(objs: list[dict[str, object]]) -> dict[str, object]:
    found = [o for o in objs if o.get("kind") == "Deployment" and (o.get("metadata") or {}).get("name") == "podinfo"]  # type: ignore[union-attr]
    assert len(found) == 1, [o.get("kind") for o in objs]
    return found[0]


def _chart_label(objs: list[dict[str, object]]) -> str:
    return str(_deployment(objs)["metadata"]["labels"]["helm.sh/chart"])  # type: ignore[index]


def _canon(docs: list[dict[str, object]]) -> list[str]:
    """The objects but helm test hooks (helm template prints them too; their names are random)."""
    return sorted(json.dumps(d, sort_keys=True) for d in docs if not str(
        ((d.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")).startswith("test"))  # type: ignore[union-attr]


def test_an_oci_helm_repository_renders_as_helm_template_does(tmp_path: Path, registry: Registry, capsys: Capsys,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _repo(tmp_path, _helm_repository(registry.host), _release(), monkeypatch)
    code, objs, err = _render(capsys)
    _, plain, _ = _render(capsys, "--no-helm")
    assert code == 0, err
    assert _chart_label(objs) == "podinfo-6.9.3"  # the highest tag in the range
    assert _deployment(objs)["spec"]["replicas"] == 2  # type: ignore[index]
    # kept by the digest of the layer (the archive's sha256), the same as helm template of it and the values
    from fleet.paths import fleet_home

    kept = fleet_home() / "cache/helm/charts" / hashlib.sha256(registry.pushed["6.9.3"]).hexdigest() / "chart.tgz"
    assert kept.read_bytes() == registry.pushed["6.9.3"]
    text = fluxbuild.template(kept.parent, kept.name, release="podinfo", namespace="apps", include_crds=True,
                              values={"replicaCount": 2})
    assert _canon(objs[len(plain):]) == _canon([d for d in yaml.safe_load_all(text) if d])
    assert objs[: len(plain)] == plain
    assert helm.stats()["chart_downloads"] == 1 and helm.stats()["oci_resolves"] == 1
    # the same process asks the registry once per chart, however many renders (clusters, revisions) need it
    code, again, err = _render(capsys)
    assert code == 0 and again == objs, err
    assert helm.stats()["oci_resolves"] == 1 and helm.stats()["chart_downloads"] == 1
    # a second run (a new process's memory) asks the registry for the manifest, never for the archive again
    helm.clear_cache()
    build.clear_cache()
    code, again, err = _render(capsys)
    assert code == 0 and again == objs, err
    assert helm.stats()["chart_downloads"] == 0 and helm.stats()["oci_resolves"] == 1
    # an exact version
    commit_file(Path.cwd(), "environments/dev/helm/release.yaml", _release(version="6.9.2"))
    code, objs, err = _render(capsys)
    assert code == 0 and _chart_label(objs) == "podinfo-6.9.2", err


def test_values_files_of_an_oci_chart(tmp_path: Path, registry: Registry, capsys: Capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """valuesFiles of a chart from an OCI registry: podinfo's values-prod.yaml (Redis on) over its values.yaml."""
    release = _release(version="6.9.2").replace("        name: charts\n", "        name: charts\n"
                                                "      valuesFiles: [values.yaml, values-prod.yaml]\n")
    _repo(tmp_path, _helm_repository(registry.host), release, monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert [o for o in objs if o.get("kind") == "Deployment" and o["metadata"]["name"] == "podinfo-redis"]  # type: ignore[index]
    assert "replicas" not in _deployment(objs)["spec"]  # type: ignore[operator]  # values-prod.yaml's HPA scales it
    assert [o for o in objs if o.get("kind") == "HorizontalPodAutoscaler"]
    commit_file(Path.cwd(), "environments/dev/helm/release.yaml", _release(version="6.9.2"))
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert not [o for o in objs if o.get("kind") == "Deployment" and o["metadata"]["name"] == "podinfo-redis"]  # type: ignore[index]
    assert _deployment(objs)["spec"]["replicas"] == 2  # type: ignore[index]


@pytest.mark.parametrize(("ref", "version"), [
    ("tag: 6.9.2", "6.9.2"),
    ('semver: ">=6.9.0 <6.9.3"', "6.9.2"),
    ('semver: "6.x"', "6.9.3"),
    ("digest: DIGEST", "6.9.2"),
], ids=["tag", "semver-range", "semver-highest", "digest"])
def test_an_oci_repository_chart_ref(tmp_path: Path, registry: Registry, capsys: Capsys,
                                     monkeypatch: pytest.MonkeyPatch, ref: str, version: str) -> None:
    if "DIGEST" in ref:  # the manifest's digest of 6.9.2, as the registry names it
        ref = ref.replace("DIGEST", fluxbuild.oci_resolve(f"{registry.host}/charts/podinfo", tag="6.9.2",
                                                          plain_http=True).manifest)
    _repo(tmp_path, "", _oci_repository(registry.host, ref), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _chart_label(objs) == f"podinfo-{version}"


@pytest.mark.parametrize(("case", "expected"), [
    ("no-such-chart", "HelmRelease apps/podinfo: oci://{host}/charts/nope: not found"),
    ("no-version-meets", 'HelmRelease apps/podinfo: no version of oci://{host}/charts/podinfo meets ">=7.0.0"'),
    ("not-insecure", "HelmRelease apps/podinfo: oci://{host}/charts/podinfo serves plain HTTP"),
    ("no-such-tag", "HelmRelease apps/podinfo: oci://{host}/charts/podinfo: not found"),
    ("no-semver-meets", 'HelmRelease apps/podinfo: no tag of oci://{host}/charts/podinfo meets semver "9.x"'),
    ("not-an-oci-url", "HelmRelease apps/podinfo: OCIRepository/apps/podinfo: spec.url 'oci://{host}' is not"),
])
def test_bad_input_is_one_line_naming_the_release(tmp_path: Path, registry: Registry, capsys: Capsys,
                                                  monkeypatch: pytest.MonkeyPatch, case: str, expected: str) -> None:
    source, release = _helm_repository(registry.host), _release()
    if case == "no-such-chart":
        release = _release(chart="nope")
    elif case == "no-version-meets":
        release = _release(version=">=7.0.0")
    elif case == "not-insecure":
        source = _helm_repository(registry.host, insecure=False)
    elif case == "no-such-tag":
        source, release = "", _oci_repository(registry.host, "tag: 1.0.0")
    elif case == "no-semver-meets":
        source, release = "", _oci_repository(registry.host, 'semver: "9.x"')
    elif case == "not-an-oci-url":
        source, release = "", _oci_repository(registry.host, "tag: 6.9.2").replace("/charts/podinfo\n", "\n")
    _repo(tmp_path, source, release, monkeypatch)
    code, out, err = run_cli(capsys, "render", "dev-1")
    assert code == 2, err
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected.format(host=registry.host) in lines[0], err
    assert "Traceback" not in err


def test_a_registry_that_is_down_is_a_warning_and_the_release_unresolved(tmp_path: Path, capsys: Capsys,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{net.free_ports(1)[0]}"  # nothing listens there
    _repo(tmp_path, _helm_repository(host), _release(), monkeypatch)
    code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [o for o in data["objects"] if o["kind"] == "HelmRelease"]  # never dropped
    assert not [o for o in data["objects"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "podinfo"]
    warn = [line for line in err.splitlines() if "HelmRelease apps/podinfo" in line]
    assert len(warn) == 1 and f"cannot reach oci://{host}/charts/podinfo" in warn[0], err


def test_diff_base_across_a_chart_version_bump(tmp_path: Path, registry: Registry, capsys: Capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = _repo(tmp_path, _helm_repository(registry.host), _release(version="6.9.2"), monkeypatch)
    commit_file(root, "environments/dev/helm/release.yaml", _release(version="6.9.3"))
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 1, err
    cluster = next(c for c in json.loads(out)["items"] if c["cluster"] == "dev-1")
    assert cluster["status"] == "changed"
    changed = {o["object"]: o for o in cluster["objects"]}
    assert changed["Deployment/apps/podinfo"]["change"] == "changed"
    assert "podinfo-6.9.3" in json.dumps(changed["Deployment/apps/podinfo"])
    # and a bump to a version no tag has: the cluster is listed as failed, exit 2
    commit_file(root, "environments/dev/helm/release.yaml", _release(version="6.9.9"))
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 2, err
    cluster = next(c for c in json.loads(out)["items"] if c["cluster"] == "dev-1")
    assert cluster["status"] == "failed" and "HelmRelease apps/podinfo" in cluster["error"]



class _Recording:
    """A plain HTTP server on loopback that answers every request with ``status`` (and, for 401, a Basic
    challenge) and keeps each request's path and Authorization header: a registry that is failing, or one
    that asks for credentials."""

    def __init__(self, status: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []  # type: list[tuple[str, str | None]]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="fleet-test"')
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_registry_answering_5xx_or_429_is_a_warning_and_the_release_unresolved(
        status: int, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = _Recording(status)
    try:
        _repo(tmp_path, _helm_repository(failing.host), _release(), monkeypatch)
        code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json")
    finally:
        failing.close()
    assert code == 0, err
    assert failing.seen, "the registry was never asked"
    objs = json.loads(out)["objects"]
    assert [o for o in objs if o["kind"] == "HelmRelease"]  # never dropped
    assert not [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "podinfo"]
    warn = [line for line in err.splitlines() if "HelmRelease apps/podinfo" in line]
    assert len(warn) == 1 and f"oci://{failing.host}/charts" in warn[0], err


@pytest.mark.parametrize("kind", ["helm-repository", "oci-repository"])
def test_no_credentials_are_ever_sent_to_a_registry_the_repo_names(
        kind: str, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host comes from someone's pull request: a docker or Helm credential store of the user that holds a
    login for it is never read, and a registry that asks for credentials gets none (the release fails to
    resolve, one line)."""
    from fleet.toolchain import find

    toolchain = find("fleet-build").parent.parent  # <toolchain>/bin/fleet-build: kept when HOME moves
    asking = _Recording(401)
    login = base64.b64encode(b"alice:s3cret-token-4f2a").decode()
    config = json.dumps({"auths": {asking.host: {"auth": login}, f"http://{asking.host}": {"auth": login}}})
    for place in (tmp_path / "docker", tmp_path / "home" / ".docker"):
        place.mkdir(parents=True)
        (place / "config.json").write_text(config)
    helm_config = tmp_path / "home" / ".config" / "helm" / "registry"
    helm_config.mkdir(parents=True)
    (helm_config / "config.json").write_text(config)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("HELM_REGISTRY_CONFIG", str(helm_config / "config.json"))
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(toolchain))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    source, release = ((_helm_repository(asking.host), _release()) if kind == "helm-repository"
                       else ("", _oci_repository(asking.host, "tag: 6.9.2")))
    try:
        _repo(tmp_path / "repo", source, release, monkeypatch)
        code, _, err = run_cli(capsys, "render", "dev-1")
    finally:
        asking.close()
    assert asking.seen, f"the registry was never asked: {err}"
    assert all(auth is None for _, auth in asking.seen), asking.seen
    assert "s3cret" not in err and login not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err  # refused, one line: the registry wants a login fleet never gives
    assert "HelmRelease apps/podinfo" in lines[0] and "the registry asks for a login" in lines[0], err
