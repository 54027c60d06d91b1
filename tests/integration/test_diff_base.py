"""``fleet diff --base REV [--head REV]`` with the real kustomize: golden files of its table, JSON and
Markdown output, the exit codes, that only the clusters whose inputs changed are built (counted by
build.stats()), and a Flux repo whose Kustomizations build from ExternalArtifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import commit_file, git, need_tool, run_cli

from fleet.adopt import adopt_repo
from fleet.registry import ClusterSpec, add_clusters
from fleet.rendering import build
from fleet.rendering.revdiff import diff_revisions
from tests.adopt_fixtures import flux_artifact_repo
from tests.golden.harness import Case, build_fleet, check, check_case, fixed_date, normalize, run

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def kustomize() -> Path:
    path = need_tool("kustomize")
    build.clear_cache()
    return path


# ---- golden files -------------------------------------------------------------------------------------

_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: s3cr3t-${FLEET_CLUSTER}
"""


@pytest.fixture(scope="module")
def golden_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden fleet (tests/golden/harness.py), then two more commits: staging's overlay gets a Secret and
    three replicas unless a cluster says otherwise; a new dev cluster ap-1 in wave 0."""
    base = tmp_path_factory.mktemp("golden-diff")
    repo = build_fleet(base, base / "home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_HOME", str(base / "home"))
        staging = repo / "environments" / "staging"
        with fixed_date(6):
            (staging / "db-secret.yaml").write_text(_SECRET)
            (staging / "hello.yaml").write_text((staging / "hello.yaml").read_text().replace("${REPLICAS:=2}",
                                                                                             "${REPLICAS:=3}"))
            kus = staging / "kustomization.yaml"
            kus.write_text(kus.read_text().replace("  - namespace.yaml\n", "  - namespace.yaml\n  - db-secret.yaml\n"))
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "staging: a database secret, three replicas")
        with fixed_date(7):
            code, _, err = run("cluster", "add", "ap-1", "--env", "dev", "--region", "ap", "--repo", str(repo))
            assert code == 0, err
    return repo


CASES = [
    Case("diff-base", ("diff", "--base", "HEAD~2"), code=1),
    Case("diff-base-none", ("diff", "--base", "HEAD", "--head", "HEAD"), code=0),
    Case("diff-base-selector", ("diff", "--base", "HEAD~2", "-l", "region=us"), code=0),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: Case, golden_fleet: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    toolchain = Path(os.environ.get("FLEET_TOOLCHAIN_DIR", Path.home() / ".cache" / "fleet" / "toolchain"))
    check_case(case, golden_fleet, (golden_fleet, "<REPO>"), (fleet_home, "<HOME>"), (toolchain, "<TOOLCHAIN>"))


def test_golden_markdown(golden_fleet: Path) -> None:
    code, out, err = run("diff", "--base", "HEAD~2", "-o", "markdown", "--repo", str(golden_fleet))
    assert code == 1, err
    check("diff-base.md", normalize(out, (golden_fleet, "<REPO>")))
    assert "s3cr3t" not in out and "Secret/hello-staging/db" in out


def test_what_the_golden_diff_says(golden_fleet: Path) -> None:
    code, out, _ = run("diff", "--base", "HEAD~2", "-o", "json", "--repo", str(golden_fleet))
    data = json.loads(out)
    by = {i["cluster"]: i for i in data["items"]}
    assert code == 1 and data["kind"] == "ClusterDiffList" and data["metadata"]["rendered"] == 2
    assert [i["cluster"] for i in data["items"]] == ["ap-1", "eu-2", "eu-1", "us-1"]  # wave 0, 0, 1, 2
    assert by["ap-1"]["status"] == "added" and by["eu-1"]["status"] == "unchanged" and not by["eu-1"]["rendered"]
    eu2 = {o["object"]: o for o in by["eu-2"]["objects"]}
    assert eu2["Secret/hello-staging/db"] == {"object": "Secret/hello-staging/db", "change": "added", "secret": True,
                                              "diff": ""}
    assert "-  replicas: 2\n+  replicas: 3\n" in eu2["Deployment/hello-staging/hello"]["diff"]
    assert "s3cr3t" not in out


# ---- only what changed is built ------------------------------------------------------------------------


@pytest.fixture
def thirty(tmp_path: Path) -> Path:
    from helpers import new_fleet_repo

    root = new_fleet_repo(tmp_path)
    add_clusters(root, [ClusterSpec(name=f"c{i:02d}", environment=("dev", "staging", "prod")[i % 3], wave=i % 4,
                                    vars={"REPLICAS": str(1 + i % 3)}) for i in range(30)], "thirty clusters")
    return root


def test_a_change_to_one_overlay_builds_only_that_overlay_at_both_revisions(thirty: Path) -> None:
    base = git(thirty, "rev-parse", "HEAD").strip()
    hello = (thirty / "environments/prod/hello.yaml").read_text()
    commit_file(thirty, "environments/prod/hello.yaml", hello.replace("name: hello\n", "name: hello\n  labels:\n"
                                                                                          "    tier: gold\n", 1))
    build.clear_cache(disk=True)
    d = diff_revisions(thirty, base)
    assert build.stats()["kustomize_runs"] == 2  # prod at base and at head; dev and staging never built
    assert d.rendered == 10 and {c.cluster for c in d.clusters if c.rendered} == {f"c{i:02d}" for i in range(2, 30, 3)}
    assert all(c.status == "changed" and c.changed == 1 for c in d.clusters if c.rendered)
    build.clear_cache()  # a new process: the disk cache holds both builds
    again = diff_revisions(thirty, base)
    assert build.stats()["kustomize_runs"] == 0 and build.stats()["disk_hits"] == 2
    assert again.clusters == d.clusters


def test_exit_codes_and_a_failed_cluster_among_the_others(thirty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = git(thirty, "rev-parse", "HEAD").strip()
    code, out, _ = run_cli(capsys, "diff", "--base", base, "--repo", str(thirty))
    assert code == 0 and out.startswith("no change: 30 clusters render the same")
    commit_file(thirty, "environments/dev/kustomization.yaml", "resources: [missing.yaml]\n")
    hello = (thirty / "environments/prod/hello.yaml").read_text()
    commit_file(thirty, "environments/prod/hello.yaml", hello.replace("${REPLICAS:=3}", "${REPLICAS:=4}"))
    code, out, err = run_cli(capsys, "diff", "--base", base, "--repo", str(thirty), "-o", "json")
    assert code == 2, err
    data = json.loads(out)
    failed = [i for i in data["items"] if i["status"] == "failed"]
    assert len(failed) == 10 and all(i["environment"] == "dev" for i in failed)
    assert failed[0]["error"].startswith("at head ") and "missing.yaml" in failed[0]["error"]
    assert err.count("✗") == 10 and "Traceback" not in err
    assert data["metadata"]["changes"] and data["metadata"]["rendered"] == 20  # prod's compared all the same
    code, out, _ = run_cli(capsys, "diff", "--base", base, "--repo", str(thirty), "-l", "env!=dev")
    assert code == 0  # prod's clusters all set REPLICAS: the default changed, their render did not


def test_an_overlay_broken_at_both_revisions_is_failed_not_unchanged(thirty: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    commit_file(thirty, "environments/dev/kustomization.yaml", "resources: [../../../outside]\n")
    base = git(thirty, "rev-parse", "HEAD").strip()
    commit_file(thirty, "docs/notes.md", "nothing any overlay reads\n")
    code, out, err = run_cli(capsys, "diff", "--base", base, "--repo", str(thirty), "-o", "json")
    assert code == 2, err
    items = json.loads(out)["items"]
    assert {i["status"] for i in items if i["environment"] == "dev"} == {"failed"}
    assert {i["status"] for i in items if i["environment"] != "dev"} == {"unchanged"}
    assert "outside" in next(i["error"] for i in items if i["status"] == "failed")


# ---- a Flux repo with ExternalArtifacts --------------------------------------------------------------


@pytest.fixture
def artifacts_repo(tmp_path: Path) -> Path:
    root = flux_artifact_repo(tmp_path)
    adopt_repo(root)
    return root


def _by(objects: list[dict[str, object]], kind: str, name: str) -> dict[str, object]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)  # type: ignore[index]


def test_the_flagship_layout_renders_from_its_artifacts(artifacts_repo: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from fleet.rendering.cluster import render_cluster

    r = render_cluster(artifacts_repo, "production")
    objs = list(r.objects)
    issuer = _by(objs, "ClusterIssuer", "letsencrypt")
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"  # type: ignore[index]
    release = _by(objs, "HelmRelease", "podinfo")
    assert release["spec"]["values"] == {"replicaCount": 3, "hostname": "podinfo.production"}  # type: ignore[index]
    assert release["metadata"]["namespace"] == "podinfo"  # type: ignore[index]
    assert _by(objs, "HelmRelease", "cert-manager")["spec"]["chartRef"]["kind"] == "OCIRepository"  # type: ignore[index]
    notes = "\n".join(r.notes)
    assert "source ExternalArtifact/flux-system/infrastructure" not in notes  # rendered, not unresolved
    assert "source ExternalArtifact/flux-system/apps" not in notes
    assert "Kustomization flux-system/monitoring: source ExternalArtifact/flux-system/monitoring is made by " \
           "ArtifactGenerator flux-system/monitoring from OCIRepository/flux-system/monitoring-manifests" in notes
    code, out, _ = run_cli(capsys, "render", "production", "--tree", "--repo", str(artifacts_repo))
    assert code == 0
    apps = next(line for line in out.splitlines() if "── flux-system/apps " in line)
    assert apps.split()[2:4] == ["production", "3"] and "unresolved" not in apps  # path of the artifact, objects
    staging = render_cluster(artifacts_repo, "staging")
    assert _by(list(staging.objects), "HelmRelease", "podinfo")["spec"]["values"]["replicaCount"] == 1  # type: ignore[index]


def test_diff_base_follows_a_change_through_an_artifact(artifacts_repo: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = git(artifacts_repo, "rev-parse", "HEAD").strip()
    values = (artifacts_repo / "apps/production/podinfo-values.yaml").read_text()
    commit_file(artifacts_repo, "apps/production/podinfo-values.yaml", values.replace("replicaCount: 3",
                                                                                      "replicaCount: 4"))
    code, out, err = run_cli(capsys, "diff", "--base", base, "--repo", str(artifacts_repo), "-o", "json")
    assert code == 1, err
    by = {i["cluster"]: i for i in json.loads(out)["items"]}
    assert by["staging"]["status"] == "unchanged" and by["production"]["status"] == "changed"
    change = by["production"]["objects"]
    assert [(o["object"], o["change"]) for o in change] == [("HelmRelease/podinfo/podinfo", "changed")]
    assert "-    replicaCount: 3\n+    replicaCount: 4\n" in change[0]["diff"]


def test_a_copy_source_watcher_would_fail_fails_the_render_with_one_line(
    artifacts_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git(artifacts_repo, "rev-parse", "HEAD").strip()
    gen = (artifacts_repo / "clusters/production/artifacts.yaml").read_text()
    commit_file(artifacts_repo, "clusters/production/artifacts.yaml",
                gen.replace("@monorepo/apps/production/**", "@monorepo/apps/prod/**"))
    code, out, err = run_cli(capsys, "render", "production", "--repo", str(artifacts_repo))
    assert code == 2 and out == "" and "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("✗"))
    assert line == ("✗ ArtifactGenerator flux-system/flux-system: artifact apps: failed to apply copy operation from "
                    "'@monorepo/apps/prod/**' to '@artifact/production/': no files match pattern 'apps/prod/**' in "
                    "source 'monorepo'")
    code, out, err = run_cli(capsys, "diff", "--base", base, "--repo", str(artifacts_repo), "-o", "json")
    by = {i["cluster"]: i for i in json.loads(out)["items"]}
    assert code == 2 and by["production"]["status"] == "failed" and by["staging"]["status"] == "unchanged"
    assert by["production"]["error"].startswith("at head ") and "no files match pattern" in by["production"]["error"]


def test_parity_a_kustomization_of_an_artifact_equals_kustomize_build_of_the_artifact_on_disk(
    artifacts_repo: Path, kustomize: Path, tmp_path: Path
) -> None:
    import subprocess

    import yaml

    from fleet.registry import load_registry, open_repo
    from fleet.rendering.artifacts import compose
    from fleet.rendering.fluxrender import render_flux

    g = open_repo(artifacts_repo)
    sha = g.resolve("HEAD")
    done = render_flux(g, sha, load_registry(g, sha).get("production"))
    copy = [{"from": "@monorepo/apps/base/**", "to": "@artifact/base/"},
            {"from": "@monorepo/apps/production/**", "to": "@artifact/production/"}]
    g.extract(g.compose(compose(g, sha, ["monorepo"], copy, "gen").files), tmp_path / "apps")  # the artifact, unpacked
    built = subprocess.run([str(kustomize), "build", str(tmp_path / "apps" / "production")], capture_output=True,
                           text=True, check=True).stdout
    expected = [o for o in yaml.safe_load_all(built) if o]
    assert [o.object for o in done.expansion.objects if o.node == "flux-system/apps"] == expected
    assert sorted(p for p in done.inputs if p.startswith("apps/")) == [
        "apps/base/podinfo/kustomization.yaml", "apps/base/podinfo/namespace.yaml", "apps/base/podinfo/release.yaml",
        "apps/base/podinfo/repository.yaml", "apps/production/kustomization.yaml",
        "apps/production/podinfo-values.yaml"]  # what history and the uncommitted-edit warning watch
