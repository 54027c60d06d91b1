"""fleet render with the real kustomize: a revision read from Git, Flux substitution, the content cache.
(What render refuses before kustomize runs is a unit test: tests/unit/test_render.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import commit_file, git, git_state, need_tool, new_fleet_repo

from fleet.errors import MissingVariables, RenderError
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, set_cluster
from fleet.rendering import build
from fleet.rendering.build import build_overlay, inputs
from fleet.rendering.cluster import render_all, render_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def kustomize() -> Path:
    need_tool("fleet-build")  # renders run the builder
    path = need_tool("kustomize")
    build.clear_cache()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    add_cluster(
        root, ClusterSpec(name="eu-1", environment="prod", region="eu-west-1", vars={"REPLICAS": "5"})
    )
    add_cluster(root, ClusterSpec(name="eu-2", environment="prod", region="eu-west-2"))
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev"))
    return root


def by_kind(r: build.Rendered) -> dict[str, dict]:  # type: ignore[type-arg]
    return {o["kind"]: o for o in r.objects}


def test_render_a_cluster(repo: Path) -> None:
    r = render_cluster(repo, "eu-1")
    assert r.revision == git(repo, "rev-parse", "HEAD").strip()
    assert [o["kind"] for o in r.objects] == ["Namespace", "ConfigMap", "Service", "Deployment"]
    objs = by_kind(r)
    assert objs["Deployment"]["spec"]["replicas"] == 5  # the cluster's variable, an int after substitution
    assert objs["Deployment"]["metadata"]["namespace"] == "hello-prod"
    assert objs["ConfigMap"]["data"]["GREETING"] == "hello from eu-1 in eu-west-1"  # built-in variables
    assert objs["ConfigMap"]["data"]["LOG_LEVEL"] == "warn"  # the overlay's default
    assert list(yaml.safe_load_all(r.text)) == list(r.objects)
    assert "${" not in r.text
    assert len(r.digest) == 64
    assert by_kind(render_cluster(repo, "eu-2"))["Deployment"]["spec"]["replicas"] == 3  # ${REPLICAS:=3}


def test_render_at_a_revision_without_touching_the_working_tree(repo: Path) -> None:
    old = git(repo, "rev-parse", "HEAD").strip()
    set_cluster(repo, "eu-1", ClusterUpdate(vars={"REPLICAS": "7"}))
    (repo / "base" / "deployment.yaml").write_text("broken: [\n")  # an uncommitted edit is never read
    state = git_state(repo)
    assert by_kind(render_cluster(repo, "eu-1"))["Deployment"]["spec"]["replicas"] == 7
    assert by_kind(render_cluster(repo, "eu-1", old))["Deployment"]["spec"]["replicas"] == 5
    assert git_state(repo) == state


def test_one_kustomize_run_per_overlay(repo: Path) -> None:
    results = render_all(repo)
    assert [r.cluster for r in results] == ["dev-1", "eu-1", "eu-2"]
    assert build.stats()["kustomize_runs"] == 2  # dev and prod
    render_cluster(repo, "eu-2")
    assert build.stats()["kustomize_runs"] == 2
    # a commit that only touches clusters/ changes no overlay input: no new build
    set_cluster(repo, "eu-2", ClusterUpdate(wave=4))
    render_all(repo)
    assert build.stats()["kustomize_runs"] == 2
    # the on-disk cache serves a new process (simulated by clearing the in-process memo)
    build.clear_cache()
    render_all(repo)
    assert build.stats() == {"kustomize_runs": 0, "memo_hits": 1, "disk_hits": 2}
    # a change to base invalidates every overlay that reads it
    commit_file(repo, "base/service.yaml", (repo / "base/service.yaml").read_text().replace("80", "8080"))
    build.clear_cache()
    assert by_kind(render_cluster(repo, "eu-1"))["Service"]["spec"]["ports"][0]["port"] == 8080
    assert build.stats()["kustomize_runs"] == 1


def test_inputs_follow_the_kustomizations(repo: Path) -> None:
    assert inputs(repo, "prod") == ("base", "environments/prod")
    commit_file(
        repo,
        "components/monitoring/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "commonAnnotations:\n  monitored: 'yes'\n",
        "component",
    )
    text = (
        repo / "environments/prod/kustomization.yaml"
    ).read_text() + "components:\n  - ../../components/monitoring\n"
    commit_file(repo, "environments/prod/kustomization.yaml", text, "use component")
    assert inputs(repo, "prod") == ("base", "components/monitoring", "environments/prod")
    assert by_kind(render_cluster(repo, "eu-1"))["Service"]["metadata"]["annotations"] == {"monitored": "yes"}
    runs = build.stats()["kustomize_runs"]
    commit_file(repo, "components/monitoring/extra.yaml", "# unused\n", "touch component")
    render_cluster(repo, "eu-1")
    assert build.stats()["kustomize_runs"] == runs + 1  # the component is an input


def test_a_missing_variable_is_named(repo: Path) -> None:
    text = (repo / "base/configmap.yaml").read_text() + "  OWNER: ${TEAM_OWNER}\n"
    commit_file(repo, "base/configmap.yaml", text)
    with pytest.raises(MissingVariables) as e:
        render_cluster(repo, "eu-1")
    assert e.value.names == ("TEAM_OWNER",)
    assert (
        'variable "TEAM_OWNER" not set in ConfigMap/hello-prod/hello-config (cluster "eu-1"'
        in e.value.message
    )
    assert e.value.exit_code == 2
    set_cluster(repo, "eu-1", ClusterUpdate(vars={"TEAM_OWNER": "web"}))
    assert by_kind(render_cluster(repo, "eu-1"))["ConfigMap"]["data"]["OWNER"] == "web"
    with pytest.raises(RenderError, match=r"TEAM_OWNER.*\(2 clusters failed: dev-1, eu-2\)"):
        render_all(repo)


def test_escapes_and_the_disable_annotation(repo: Path) -> None:
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n"
        "data:\n  run.sh: echo $${HOME} ${FLEET_CLUSTER}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\n"
        "  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n"
        "data:\n  x: ${NOT_A_FLEET_VAR}\n"
    )
    commit_file(repo, "base/extra.yaml", cm)
    kust = (repo / "base/kustomization.yaml").read_text() + "  - extra.yaml\n"
    commit_file(repo, "base/kustomization.yaml", kust)
    objs = {o["metadata"]["name"]: o for o in render_cluster(repo, "eu-1").objects}
    assert objs["script"]["data"]["run.sh"] == "echo ${HOME} eu-1"
    assert objs["raw"]["data"]["x"] == "${NOT_A_FLEET_VAR}"


def test_kustomize_errors_are_passed_on(repo: Path) -> None:
    commit_file(repo, "environments/prod/kustomization.yaml", "resources:\n  - missing.yaml\n", "break prod")
    with pytest.raises(RenderError) as e:
        render_cluster(repo, "eu-1")
    msg = e.value.message
    assert msg.startswith("kustomize build environments/prod at ")
    assert "missing.yaml" in msg and "fleet-render-" not in msg  # the temp dir is not shown
    assert e.value.exit_code == 2



def test_build_overlay_is_kustomize_output_before_substitution(repo: Path) -> None:
    text = build_overlay(repo, "prod")
    assert "${REPLICAS:=3}" in text and "${FLEET_CLUSTER}" in text
