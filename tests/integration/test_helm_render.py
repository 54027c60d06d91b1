"""HelmReleases expanded by `fleet render` and `fleet diff --base` (fleet/rendering/helm.py), with fleet-build
(Helm v4's client-only install) and charts served on loopback by a tiny HTTP Helm repository (index.yaml and
.tgz files from a folder, a Python http.server thread): values, valuesFrom, targetNamespace, post-renderers,
CRDs, version ranges, the chart cache, a chart of the fleet repo; bad input (exit 2, one line naming the
HelmRelease); an unreachable source listed unresolved; a chart that reaches for host files; valuesFiles (of a
chart of a repository, of a chart of the fleet repo). OCI sources: test_helm_oci.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from helpers import commit_file, need_tool, new_fleet_repo, run_cli

from fleet.adapters import fluxbuild
from fleet.rendering import build, helm

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]

APP_TEMPLATES = {
    "templates/configmap.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  colour: {{ .Values.colour | quote }}
  chart: {{ .Chart.Version | quote }}
""",
    "templates/deployment.yaml": """apiVersion: apps/v1
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
          image: "example/app:{{ .Values.tag }}"
""",
    "crds/widgets.yaml": """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object}
""",
    "values.schema.json": json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"replicas": {"type": "integer", "minimum": 1}},
        "required": ["replicas"],
    }),
    "values.yaml": "greeting: hello\ncolour: grey\nreplicas: 1\ntag: latest\n",
    "values-prod.yaml": "greeting: hola\ntag: prod\n",
    "ci/replicas.yaml": "replicas: 5\n",
}

EVIL_TEMPLATES = {
    "templates/cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: evil
data:
  passwd: {{ .Files.Get "../../etc/passwd" | quote }}
  hostname: {{ .Files.Get "/etc/hostname" | quote }}
  looked: {{ lookup "v1" "Namespace" "" "kube-system" | toJson | quote }}
""",
}

BROKEN_TEMPLATES = {
    "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ .Values.a.b.c }}\n",
}


def _chart(name: str, version: str, files: dict[str, str]) -> bytes:
    """A chart archive as `helm package` lays it out: one top folder named after the chart."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        all_files = {"Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n", **files}
        for rel, text in all_files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Handler(SimpleHTTPRequestHandler):
    hits: list[str]

    def log_message(self, format: str, *args: object) -> None:
        type(self).hits.append(self.path)


@pytest.fixture
def charts(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Helm repository on loopback: (its URL, the paths asked of it)."""
    folder = tmp_path / "charts"
    folder.mkdir()
    entries: dict[str, list[dict[str, object]]] = {}
    for name, version, files in (("app", "1.0.0", APP_TEMPLATES), ("app", "1.2.0", APP_TEMPLATES),
                                 ("app", "2.0.0", APP_TEMPLATES), ("evil", "0.1.0", EVIL_TEMPLATES),
                                 ("broken", "0.1.0", BROKEN_TEMPLATES)):
        data = _chart(name, version, files)
        (folder / f"{name}-{version}.tgz").write_bytes(data)
        entries.setdefault(name, []).append({"name": name, "version": version, "apiVersion": "v2",
                                             "urls": [f"{name}-{version}.tgz"],
                                             "digest": hashlib.sha256(data).hexdigest()})
    entries["ghost"] = [{"name": "ghost", "version": "1.0.0", "urls": ["ghost-1.0.0.tgz"]}]  # listed, not served
    (folder / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries}))
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"hits": hits})

    def make(*args: object, **kw: object) -> _Handler:
        return handler(*args, directory=str(folder), **kw)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def tools() -> None:
    need_tool("fleet-build")
    build.clear_cache()
    helm.clear_cache()


def _release(chart: str = "app", version: str = "^1.0", extra: str = "") -> str:
    return f"""apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: apps
spec:
  interval: 10m
  targetNamespace: web
  chart:
    spec:
      chart: {chart}
      version: "{version}"
      sourceRef:
        kind: HelmRepository
        name: charts
        namespace: apps
  valuesFrom:
    - kind: ConfigMap
      name: web-values
    - kind: Secret
      name: web-secret
      valuesKey: colour
      targetPath: colour
    - kind: ConfigMap
      name: not-there
      optional: true
  values:
    replicas: 3
{extra}"""


VALUES_CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: web-values
  namespace: apps
data:
  values.yaml: |
    greeting: bonjour
    replicas: 2
    tag: "1.4"
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: apps
stringData:
  colour: blue
"""

POST = """  postRenderers:
    - kustomize:
        patches:
          - target: {kind: Deployment}
            patch: |
              - op: add
                path: /metadata/labels
                value: {patched: "yes"}
"""


def _repo(tmp_path: Path, url: str, release: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_fleet_repo(tmp_path, clusters={"dev-1": "dev"})
    monkeypatch.chdir(root)
    source = f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: apps
spec:
  interval: 1h
  url: {url}
"""
    commit_file(root, "environments/dev/helm/source.yaml", source)
    commit_file(root, "environments/dev/helm/values.yaml", VALUES_CM)
    commit_file(root, "environments/dev/helm/release.yaml", release)
    commit_file(root, "environments/dev/helm/kustomization.yaml",
                "resources: [source.yaml, values.yaml, release.yaml]\n")
    kus = (root / "environments/dev/kustomization.yaml").read_text()
    kus = kus.replace("namespace: hello-dev\n", "").replace("  - ../../base\n", "  - ../../base\n  - helm\n")
    commit_file(root, "environments/dev/kustomization.yaml", kus)
    return root


def _render(capsys: Capsys, *args: str) -> tuple[int, list[dict[str, object]], str]:
    code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json", *args)
    return code, (json.loads(out)["objects"] if code == 0 else []), err


def _find(objs: list[dict[str, object]], kind: str, name: str) -> dict[str, object]:
    found = [o for o in objs if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name]  # type: ignore[union-attr]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_a_release_renders_as_helm_template_does(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, hits = charts
    _repo(tmp_path, url, _release(extra=POST), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    # the release name and namespace helm-controller gives: [targetNamespace-]name, targetNamespace
    cm = _find(objs, "ConfigMap", "web-web-settings")
    # values: valuesFrom in order (the ConfigMap's values.yaml, a Secret's key at targetPath), then spec.values
    assert cm["data"] == {"greeting": "bonjour", "colour": "blue", "chart": "1.2.0"}  # ^1.0: the highest 1.x
    dep = _find(objs, "Deployment", "web-web")
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["namespace"] == "web"  # type: ignore[index]
    assert dep["metadata"]["labels"] == {"patched": "yes"}  # type: ignore[index]  # the post-renderer's patch
    assert _find(objs, "CustomResourceDefinition", "widgets.example.com")  # install.crds: Create by default
    assert _find(objs, "HelmRelease", "web")  # the HelmRelease itself stays
    # the same as helm template of that chart and values (the post-renderer's patch aside)
    digest = next(e["digest"] for e in yaml.safe_load(Path(tmp_path / "charts/index.yaml").read_text())
                  ["entries"]["app"] if e["version"] == "1.2.0")
    from fleet.paths import fleet_home

    kept = fleet_home() / "cache/helm/charts" / digest / "chart.tgz"
    assert kept.is_file()  # cached by its digest
    text = fluxbuild.template(kept.parent, kept.name, release="web-web", namespace="web", include_crds=True,
                              values={"greeting": "bonjour", "replicas": 3, "tag": "1.4", "colour": "blue"})
    expected = [d for d in yaml.safe_load_all(text) if d]
    for d in expected:
        if d["kind"] == "Deployment":
            d["metadata"]["labels"] = {"patched": "yes"}
    chart_objs = [o for o in objs if o.get("kind") in ("ConfigMap", "Deployment", "CustomResourceDefinition")
                  and str((o.get("metadata") or {}).get("name", "")).startswith(("web-web", "widgets"))]  # type: ignore[union-attr]
    def canon(o: object) -> str:
        return json.dumps(o, sort_keys=True)

    assert sorted(map(canon, chart_objs)) == sorted(map(canon, expected))
    # fetched once: a second render (a new process's memory, the disk cache) asks for no chart again
    downloads = [h for h in hits if h.endswith(".tgz")]
    assert downloads == ["/app-1.2.0.tgz"]
    helm.clear_cache()
    build.clear_cache()
    code, again, err = _render(capsys)
    assert code == 0 and again == objs
    assert [h for h in hits if h.endswith(".tgz")] == downloads


def test_no_helm_keeps_the_release_objects_only(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, hits = charts
    _repo(tmp_path, url, _release(), monkeypatch)
    code, objs, err = _render(capsys, "--no-helm")
    assert code == 0, err
    assert _find(objs, "HelmRelease", "web")
    assert not [o for o in objs if str((o.get("metadata") or {}).get("name", "")).startswith("web-web")]  # type: ignore[union-attr]
    assert hits == []  # nothing fetched
    code, full, _ = _render(capsys)
    assert code == 0 and full[: len(objs)] == objs and len(full) > len(objs)


@pytest.mark.parametrize(("release", "expected"), [
    (_release(chart="nope"), 'HelmRelease apps/web: chart "nope" does not exist in http://127.0.0.1'),
    (_release(version=">=3.0.0"), 'HelmRelease apps/web: no version of chart "app" in http://127.0.0.1'),
    (_release().replace("replicas: 3", "replicas: many"), "HelmRelease apps/web: "),
    (_release().replace("name: not-there\n      optional: true", "name: not-there"),
     "HelmRelease apps/web: spec.valuesFrom[2]: ConfigMap apps/not-there is not part of this render"),
    (_release(chart="broken", version="*"), "HelmRelease apps/web: "),
], ids=["no-such-chart", "no-version-meets", "schema", "missing-valuesFrom", "template-error"])
def test_bad_input_is_one_line_naming_the_release(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                  monkeypatch: pytest.MonkeyPatch, release: str,
                                                  expected: str) -> None:
    url, _ = charts
    _repo(tmp_path, url, release, monkeypatch)
    code, out, err = run_cli(capsys, "render", "dev-1")
    assert code == 2, err
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert expected in lines[0], err
    assert "Traceback" not in err
    if "many" in release:
        assert "replicas" in lines[0]  # the schema's key is named
    if "broken" in release:
        assert "nil pointer" in lines[0] or "a.b" in lines[0] or ".Values.a" in lines[0], err


def test_an_unreachable_source_is_listed_unresolved(tmp_path: Path, charts: tuple[str, list[str]],
                                                    capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTP repository that is down: a warning, the release unresolved (an OCI registry that is down is an
    error: test_helm_oci.py)."""
    from fleet.adapters import net

    port = net.free_ports(1)[0]  # nothing listens there
    _repo(tmp_path, f"http://127.0.0.1:{port}/charts", _release(), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "HelmRelease", "web")  # never dropped
    warn = [line for line in err.splitlines() if "HelmRelease apps/web" in line]
    assert len(warn) == 1 and f"http://127.0.0.1:{port}/charts/index.yaml" in warn[0], err


def test_an_archive_the_index_lists_but_the_server_lacks(tmp_path: Path, charts: tuple[str, list[str]],
                                                        capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = charts
    _repo(tmp_path, url, _release(chart="ghost", version="*"), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "HelmRelease", "web")
    warn = [line for line in err.splitlines() if "HelmRelease apps/web" in line]
    assert len(warn) == 1 and f"cannot reach {url}/ghost-1.0.0.tgz (HTTP 404)" in warn[0], err
    # the same through an http mirror that lists it
    commit_file(tmp_path / "fleet", "fleet.yaml", (tmp_path / "fleet" / "fleet.yaml").read_text()
                + f"helm:\n  mirror: {url}\n")
    helm.clear_cache()
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert len([line for line in err.splitlines() if "ghost-1.0.0.tgz (HTTP 404)" in line]) == 1, err


def test_a_chart_cannot_read_host_files(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = charts
    _repo(tmp_path, url, _release(chart="evil", version="*"), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    cm = _find(objs, "ConfigMap", "evil")
    assert cm["data"] == {"passwd": "", "hostname": "", "looked": "{}"}  # .Files stays in the chart; no cluster


def test_a_chart_of_the_fleet_repo(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = charts
    release = _release().replace("""      chart: app
      version: "^1.0"
      sourceRef:
        kind: HelmRepository
        name: charts
        namespace: apps""", """      chart: ./charts/local
      sourceRef:
        kind: GitRepository
        name: flux-system
        namespace: flux-system""")
    root = _repo(tmp_path, url, release, monkeypatch)
    for rel, text in {"Chart.yaml": "apiVersion: v2\nname: local\nversion: 0.3.0\n", **APP_TEMPLATES}.items():
        commit_file(root, f"charts/local/{rel}", text)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-web-settings")["data"]["chart"] == "0.3.0"  # type: ignore[index]
    # a change of the chart alone (outside the overlay) is seen by diff --base
    commit_file(root, "charts/local/templates/deployment.yaml",
                APP_TEMPLATES["templates/deployment.yaml"].replace("example/app:", "example/app2:"))
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 1, err
    cluster = next(c for c in json.loads(out)["items"] if c["cluster"] == "dev-1")
    assert [o["object"] for o in cluster["objects"]] == ["Deployment/web/web-web"]


def test_diff_base_lists_a_failing_release_as_failed(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = charts
    root = _repo(tmp_path, url, _release(), monkeypatch)
    commit_file(root, "environments/dev/helm/release.yaml", _release().replace("replicas: 3", "replicas: 4"))
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 1, err
    data = json.loads(out)
    cluster = next(c for c in data["items"] if c["cluster"] == "dev-1")
    assert cluster["status"] == "changed"
    assert any(o["object"] == "Deployment/web/web-web" and o["change"] == "changed" for o in cluster["objects"])
    commit_file(root, "environments/dev/helm/release.yaml", _release(version=">=9"))
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 2, err
    cluster = next(c for c in json.loads(out)["items"] if c["cluster"] == "dev-1")
    assert cluster["status"] == "failed" and "HelmRelease apps/web" in cluster["error"]


def test_a_flux_directory_expands_its_releases(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys) -> None:
    from adopt_fixtures import flux_repo
    from helpers import git

    from fleet.adopt import adopt_repo

    url, _ = charts
    root = flux_repo(tmp_path)
    adopt_repo(root)
    path = root / "infrastructure/controllers/ingress-nginx.yaml"
    text = (path.read_text().replace("https://kubernetes.github.io/ingress-nginx", url)
            .replace("chart: ingress-nginx", "chart: app").replace('"4.x"', '"1.x"'))
    # as Flux's example: values, a valuesFrom ConfigMap, a kustomize post-renderer; the chart's CRDs
    text += """  values:
    replicas: 2
  valuesFrom:
    - kind: ConfigMap
      name: ingress-values
""" + POST + """---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ingress-values
  namespace: ingress-nginx
data:
  values.yaml: "greeting: hola"
"""
    path.write_text(text)
    git(root, "commit", "-q", "-am", "charts on loopback")
    code, out, err = run_cli(capsys, "render", "production", "-o", "json", "--repo", str(root))
    assert code == 0, err
    objs = json.loads(out)["objects"]
    cm = _find(objs, "ConfigMap", "ingress-nginx-settings")  # release name: the HelmRelease's, no targetNamespace
    assert cm["metadata"]["namespace"] == "ingress-nginx" and cm["data"]["chart"] == "1.2.0"  # type: ignore[index]
    assert cm["data"]["greeting"] == "hola"  # type: ignore[index]
    dep = _find(objs, "Deployment", "ingress-nginx")
    assert dep["spec"]["replicas"] == 2 and dep["metadata"]["labels"] == {"patched": "yes"}  # type: ignore[index]
    assert _find(objs, "CustomResourceDefinition", "widgets.example.com")
    assert "HelmRelease ingress-nginx/ingress-nginx" not in err
    code, out, err = run_cli(capsys, "render", "production", "--tree", "-o", "json", "--repo", str(root))
    assert code == 0, err
    assert [u["kind"] for u in json.loads(out)["unresolved"]] == ["Kustomization"]  # the OCI one only
    code, out, err = run_cli(capsys, "render", "production", "-o", "json", "--no-helm", "--repo", str(root))
    assert code == 0 and "ingress-nginx-settings" not in out
    assert "unresolved HelmRelease ingress-nginx/ingress-nginx" in err  # listed, as before


def test_a_mirror_in_the_repo_serves_charts_offline(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.adapters import net

    _, hits = charts
    port = net.free_ports(1)[0]  # the HelmRepository's own URL: nothing listens there
    root = _repo(tmp_path, f"http://127.0.0.1:{port}/charts", _release(), monkeypatch)
    for name in ("app-1.0.0.tgz", "app-1.2.0.tgz", "index.yaml"):
        target = root / "charts-mirror" / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes((tmp_path / "charts" / name).read_bytes())
    fleet_yaml = (root / "fleet.yaml").read_text() + "helm:\n  mirror: charts-mirror\n"
    commit_file(root, "fleet.yaml", fleet_yaml)
    from helpers import git

    git(root, "add", "charts-mirror")
    git(root, "commit", "-q", "-m", "mirror")
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-web-settings")["data"]["chart"] == "1.2.0"  # type: ignore[index]
    assert "unresolved" not in err and hits == []  # neither the source nor the served repository was asked
    # a mirror at an http(s) URL: the charts fixture's repository stands in for an internal mirror
    fleet_yaml = (root / "fleet.yaml").read_text().replace("mirror: charts-mirror", f"mirror: {charts[0]}")
    commit_file(root, "fleet.yaml", fleet_yaml)
    helm.clear_cache(disk=True)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-web-settings")["data"]["chart"] == "1.2.0"  # type: ignore[index]
    assert "unresolved" not in err and hits == ["/index.yaml", "/app-1.2.0.tgz"]


def test_sops_encrypted_values_only_with_decrypt(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet import sops

    key_file = Path(__file__).resolve().parents[1] / "fixtures" / "sops" / "TEST-ONLY-age.agekey"
    key = sops.parse_key(key_file.read_text(), str(key_file))
    monkeypatch.setenv("FLEET_SOPS_AGE_KEY_FILE", str(key_file))
    planted = "planted-colour-never-printed"
    url, _ = charts
    root = _repo(tmp_path, url, _release(), monkeypatch)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secret", "namespace": "apps"},
              "stringData": {"colour": planted}}
    values = VALUES_CM.split("---\n")[0] + "---\n" + yaml.safe_dump(sops.encrypt_object(secret, [key.recipient],
                                                                                       encrypted_regex="^(data|stringData)$"))
    commit_file(root, "environments/dev/helm/values.yaml", values)
    fleet_yaml = (root / "fleet.yaml").read_text() + f"secrets:\n  sops:\n    ageRecipients: [{key.recipient}]\n"
    commit_file(root, "fleet.yaml", fleet_yaml)
    code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json")
    assert code == 0, err
    assert planted not in out + err and "web-web-settings" not in out
    warn = [line for line in err.splitlines() if "HelmRelease apps/web" in line]
    assert len(warn) == 1 and "Secret apps/web-secret, which is SOPS-encrypted" in warn[0], err
    code, out, err = run_cli(capsys, "render", "dev-1", "-o", "json", "--decrypt")
    assert code == 0, err
    assert _find(json.loads(out)["objects"], "ConfigMap", "web-web-settings")["data"]["colour"] == planted  # type: ignore[index]
    from fleet.paths import fleet_home

    for f in (fleet_home() / "cache").rglob("*"):  # decrypted in memory only: no cache holds the value
        assert not f.is_file() or planted.encode() not in f.read_bytes(), f


PODINFO = ("github.com/stefanprodan/podinfo", "v1.8.1-0.20250910200901-e86405a8674e")  # its chart: podinfo 6.9.2


def _podinfo_chart() -> Path:
    """podinfo's chart folder from its Go module (downloaded into the module cache when absent)."""
    import shutil
    import subprocess

    go = shutil.which("go")
    if go is None:
        need_tool("go")  # skips, or fails in CI, naming it
    done = subprocess.run([str(go), "mod", "download", "-json", "@".join(PODINFO)], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"})
    if done.returncode != 0:
        pytest.fail(f"go mod download {'@'.join(PODINFO)}: {done.stdout[-500:]}{done.stderr[-500:]}")
    return Path(json.loads(done.stdout)["Dir"]) / "charts" / "podinfo"


def test_podinfo_renders_as_helm_template_does(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    chart = _podinfo_chart()
    folder = tmp_path / "podinfo-repo"
    folder.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(chart, arcname="podinfo")
    data = buf.getvalue()
    (folder / "podinfo-6.9.2.tgz").write_bytes(data)
    (folder / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {"podinfo": [
        {"name": "podinfo", "version": "6.9.2", "urls": ["podinfo-6.9.2.tgz"],
         "digest": hashlib.sha256(data).hexdigest()}]}}))

    def make(*args: object, **kw: object) -> SimpleHTTPRequestHandler:
        return type("Q", (_Handler,), {"hits": []})(*args, directory=str(folder), **kw)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        release = """apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: podinfo
  namespace: apps
spec:
  interval: 10m
  chart:
    spec:
      chart: podinfo
      version: ">=6.0.0 <7.0.0"
      sourceRef:
        kind: HelmRepository
        name: charts
  values:
    replicaCount: 2
    redis:
      enabled: true
"""
        _repo(tmp_path, f"http://127.0.0.1:{server.server_address[1]}", release, monkeypatch)
        code, objs, err = _render(capsys)
        _, plain, _ = _render(capsys, "--no-helm")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 0, err
    assert _find(objs, "Deployment", "podinfo")["spec"]["replicas"] == 2  # type: ignore[index]
    assert _find(objs, "Deployment", "podinfo-redis")
    from fleet.paths import fleet_home

    kept = fleet_home() / "cache/helm/charts" / hashlib.sha256(data).hexdigest() / "chart.tgz"
    text = fluxbuild.template(kept.parent, kept.name, release="podinfo", namespace="apps", include_crds=True,
                              values={"replicaCount": 2, "redis": {"enabled": True}})

    def canon(docs: list[dict[str, object]]) -> tuple[list[str], int]:
        """The objects, and how many test hooks (helm template prints them too; their names are random)."""
        tests = [d for d in docs if str((d.get("metadata") or {}).get("annotations", {}).get(  # type: ignore[union-attr]
            "helm.sh/hook", "")).startswith("test")]
        return sorted(json.dumps(d, sort_keys=True) for d in docs if d not in tests), len(tests)

    expected = canon([d for d in yaml.safe_load_all(text) if d])
    assert objs[: len(plain)] == plain  # the overlay's objects first, then the release's
    assert canon(objs[len(plain):]) == expected and expected[1] > 0


def test_a_chart_ref_to_a_helm_chart_and_crds_skipped(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = charts
    release = _release().replace("""  chart:
    spec:
      chart: app
      version: "^1.0"
      sourceRef:
        kind: HelmRepository
        name: charts
        namespace: apps
""", """  chartRef:
    kind: HelmChart
    name: app
  install:
    crds: Skip
""") + """---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata:
  name: app
  namespace: apps
spec:
  interval: 1h
  chart: app
  version: "1.0.x"
  sourceRef:
    kind: HelmRepository
    name: charts
"""
    _repo(tmp_path, url, release, monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-web-settings")["data"]["chart"] == "1.0.0"  # type: ignore[index]
    assert not [o for o in objs if o.get("kind") == "CustomResourceDefinition"]  # install.crds: Skip


def _files_release(files: str, extra: str = "", chart: str = """      chart: app
      version: "1.2.0"
      sourceRef:
        kind: HelmRepository
        name: charts
        namespace: apps""") -> str:
    return f"""apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: apps
spec:
  interval: 10m
  chart:
    spec:
{chart}
      valuesFiles: {files}
{extra}  values:
    colour: green
"""


def test_values_files_of_the_chart_replace_its_defaults_in_order(tmp_path: Path, charts: tuple[str, list[str]],
                                                                 capsys: Capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """spec.chart.spec.valuesFiles: files of the chart merged in order into its default values (values.yaml only
    when listed), as source-controller packages the chart; the release's values over them."""
    url, _ = charts
    root = _repo(tmp_path, url, _files_release("[values.yaml, values-prod.yaml, ci/replicas.yaml]"), monkeypatch)
    code, objs, err = _render(capsys)
    assert code == 0, err
    cm = _find(objs, "ConfigMap", "web-settings")
    assert cm["data"] == {"greeting": "hola", "colour": "green", "chart": "1.2.0"}
    dep = _find(objs, "Deployment", "web")
    assert dep["spec"]["replicas"] == 5  # type: ignore[index]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/app:prod"  # type: ignore[index]
    # without values.yaml in the list, its values are gone (replaced, not merged): replicas is missing, and
    # the chart's schema requires it
    commit_file(root, "environments/dev/helm/release.yaml", _files_release("[values-prod.yaml]"))
    code, out, err = run_cli(capsys, "render", "dev-1")
    assert code == 2 and out == "", err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("✗ HelmRelease apps/web: ") and "replicas" in lines[0], err
    commit_file(root, "environments/dev/helm/release.yaml", _files_release("[values-prod.yaml, ci/replicas.yaml]"))
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-settings")["data"] == {"greeting": "hola", "colour": "green",
                                                               "chart": "1.2.0"}
    assert _find(objs, "Deployment", "web")["spec"]["replicas"] == 5  # type: ignore[index]
    # a values file the chart lacks: one line naming the release and the path, unless it may be missing
    commit_file(root, "environments/dev/helm/release.yaml", _files_release("[values.yaml, values-eu.yaml]"))
    code, out, err = run_cli(capsys, "render", "dev-1")
    assert code == 2 and out == "", err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "HelmRelease apps/web" in lines[0] and "values-eu.yaml" in lines[0], err
    assert "Traceback" not in err
    commit_file(root, "environments/dev/helm/release.yaml",
                _files_release("[values.yaml, values-eu.yaml]", extra="      ignoreMissingValuesFiles: true\n"))
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-settings")["data"]["greeting"] == "hello"  # type: ignore[index]


def test_values_files_of_a_chart_of_the_fleet_repo(tmp_path: Path, charts: tuple[str, list[str]], capsys: Capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart of the fleet repo: valuesFiles are paths from the repo's root at the revision rendered (as
    source-controller's local builder reads them), kept inside the repo."""
    url, _ = charts
    git_chart = """      chart: ./charts/local
      sourceRef:
        kind: GitRepository
        name: flux-system
        namespace: flux-system"""
    root = _repo(tmp_path, url, _files_release("[charts/local/values.yaml, env/dev.yaml]", chart=git_chart),
                 monkeypatch)
    for rel, text in {"Chart.yaml": "apiVersion: v2\nname: local\nversion: 0.3.0\n", **APP_TEMPLATES}.items():
        commit_file(root, f"charts/local/{rel}", text)
    commit_file(root, "env/dev.yaml", "greeting: servus\nreplicas: 2\n")
    code, objs, err = _render(capsys)
    assert code == 0, err
    assert _find(objs, "ConfigMap", "web-settings")["data"] == {"greeting": "servus", "colour": "green",
                                                               "chart": "0.3.0"}
    assert _find(objs, "Deployment", "web")["spec"]["replicas"] == 2  # type: ignore[index]
    # a change of the values file alone is seen by diff --base
    commit_file(root, "env/dev.yaml", "greeting: servus\nreplicas: 4\n")
    code, out, err = run_cli(capsys, "diff", "--base", "HEAD~1", "-o", "json")
    assert code == 1, err
    cluster = next(c for c in json.loads(out)["items"] if c["cluster"] == "dev-1")
    assert [o["object"] for o in cluster["objects"]] == ["Deployment/apps/web"]
    # ../ cannot leave the repo (it stays at the root, as securejoin keeps it); missing is one line
    commit_file(root, "environments/dev/helm/release.yaml",
                _files_release("[../../../etc/hostname]", chart=git_chart))
    code, out, err = run_cli(capsys, "render", "dev-1")
    assert code == 2 and out == "", err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "HelmRelease apps/web" in lines[0] and "../../../etc/hostname" in lines[0], err
