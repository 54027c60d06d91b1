"""fleet render of a Flux cluster directory, with the real kustomize: the fixture Flux repo expanded as
Flux would apply it, and parity: each expanded Kustomization equals `kustomize build` of its path (with the
kustomization Flux's controller writes there, spelled out here by hand) plus Flux's substitution."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import git, need_tool, run_cli

from fleet.adopt import adopt_repo
from fleet.errors import FluxTreeError, MissingVariables
from fleet.registry import load_registry, open_repo
from fleet.rendering import build
from fleet.rendering.cluster import render_all, render_cluster
from fleet.rendering.fluxrender import render_flux
from fleet.rendering.substitute import substitute
from tests.adopt_fixtures import flux_repo, write_tree

pytestmark = pytest.mark.integration

@pytest.fixture(autouse=True)
def kustomize() -> Path:
    need_tool("fleet-build")  # renders run the builder
    path = need_tool("kustomize")
    build.clear_cache()
    return path


def _commit(root: Path, files: dict[str, str], message: str = "edit") -> None:
    write_tree(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The Flux repo, adopted: fleet.yaml and fleet/clusters/{production,staging}.yaml, nothing moved."""
    root = flux_repo(tmp_path)
    adopt_repo(root)
    return root


def _by(objects: Any, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_a_flux_directory_renders_as_flux_would_apply_it(repo: Path) -> None:
    r = render_cluster(repo, "production")
    objs = r.objects
    deploy = _by(objs, "Deployment", "podinfo")
    assert deploy["metadata"]["namespace"] == "podinfo"  # targetNamespace
    assert deploy["spec"]["replicas"] == 3  # the Kustomization's patch
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.7.1"
    assert deploy["metadata"]["labels"] == {"env": "production", "app.kubernetes.io/part-of": "podinfo"}
    env = {e["name"]: e["value"] for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"REGION": "us-east-1", "TIER": "web"}  # substituteFrom the tree's ConfigMap; a default
    assert _by(objs, "ConfigMap", "podinfo-monitoring")["data"]["cluster"] == "production"  # the component
    assert _by(objs, "ConfigMap", "podinfo-scripts")["data"]["start.sh"].endswith('echo "starting in ${HOME}"\n')
    assert "${HOSTNAME}" in _by(objs, "ConfigMap", "backup-script")["data"]["backup.sh"]  # opted out
    assert _by(objs, "HelmRelease", "ingress-nginx")["spec"]["chart"]["spec"]["chart"] == "ingress-nginx"
    assert _by(objs, "Kustomization", "monitoring")["spec"]["sourceRef"]["kind"] == "OCIRepository"
    assert not any(o["kind"] == "Namespace" and o["metadata"]["name"] == "_placeholder" for o in objs)
    assert len(r.notes) == 2 and any("OCIRepository/flux-system/monitoring" in n for n in r.notes)
    staging = render_cluster(repo, "staging")
    assert _by(staging.objects, "Deployment", "podinfo")["spec"]["replicas"] == 1
    assert [x.cluster for x in render_all(repo)] == ["production", "staging"]


def _checkout(repo: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True)
    return dest


def _kbuild(kustomize: Path, path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(kustomize), "build", "--load-restrictor", "LoadRestrictionsNone", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _flux_subst(objects: list[dict[str, Any]], values: dict[str, str] | None) -> list[dict[str, Any]]:
    out = []
    for o in objects:
        off = (o["metadata"].get("annotations") or {}).get("kustomize.toolkit.fluxcd.io/substitute") == "disabled"
        text = yaml.safe_dump(o)
        out.append(yaml.safe_load(substitute(text, values)) if values is not None and not off else o)
    return out


def test_parity_each_kustomization_equals_kustomize_build_plus_flux_substitution(
    repo: Path, tmp_path: Path, kustomize: Path
) -> None:
    g = open_repo(repo)
    sha = g.resolve("HEAD")
    spec = load_registry(g, sha).get("staging")
    exp = render_flux(g, sha, spec).expansion
    mine = {n.id: [o.object for o in exp.objects if o.node == n.id] for n in exp.nodes}
    co = _checkout(repo, tmp_path / "checkout")
    # what kustomize-controller writes where a path has no kustomization (the YAML files it finds) ...
    (co / "infrastructure/controllers/kustomization.yaml").write_text("resources:\n- ./ingress-nginx.yaml\n")
    (co / "clusters/staging/kustomization.yaml").write_text(
        "resources: [./apps.yaml, ./cluster-vars.yaml, ./flux-system, ./infrastructure.yaml]\n"
    )
    # ... and into apps/staging: its own kustomization with the Kustomization's options merged in
    (co / "apps/staging/kustomization.yaml").write_text("""
resources: [../base/podinfo]
namespace: podinfo
patches:
- target: {kind: Deployment, name: podinfo}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 1
components: [../../components/monitoring]
images:
- {name: ghcr.io/stefanprodan/podinfo, newTag: 6.7.1}
""")
    cluster_vars = build.cluster_vars(spec)
    # fleet's operator owns flux-system/flux-system on the cluster: the tree's copies are left out
    root = [o for o in _flux_subst(_kbuild(kustomize, co / "clusters/staging"), cluster_vars)
            if not (o["metadata"]["name"] == "flux-system" and o["kind"] in ("GitRepository", "Kustomization"))]
    assert sorted(exp.replaced) == ["GitRepository/flux-system/flux-system", "Kustomization/flux-system/flux-system"]
    expected = {
        "": root,
        "flux-system/infra-controllers": _kbuild(kustomize, co / "infrastructure/controllers"),
        "flux-system/infra-configs": _kbuild(kustomize, co / "infrastructure/configs"),
        "flux-system/apps": [
            {**o, "metadata": {**o["metadata"], "labels": {**(o["metadata"].get("labels") or {}),
                                                            "app.kubernetes.io/part-of": "podinfo"}}}
            for o in _flux_subst(_kbuild(kustomize, co / "apps/staging"),
                                 {"CLUSTER_NAME": "staging", "CLUSTER_REGION": "eu-west-1", "ENVIRONMENT": "staging"})
        ],
    }
    for node, objects in expected.items():
        assert mine[node] == objects, node
    assert {n.id for n in exp.nodes if n.status == "expanded"} | {""} == set(expected)


def test_tree_shows_the_graph_with_object_counts(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "render", "staging", "--tree", "--repo", str(repo))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["KUSTOMIZATION", "PATH", "OBJECTS", "NOTE"]
    assert lines[1].split()[:3] == ["clusters/staging", "clusters/staging", "4"]
    row = next(line for line in lines if "flux-system/apps" in line)
    assert row.split()[:4] == ["└──", "flux-system/apps", "apps/staging", "4"]
    assert "after flux-system/infra-configs" in row
    assert "15 objects from 4 builds" in out and "unresolved (2)" in out
    assert "the operator's own (2)" in out and "  Kustomization/flux-system/flux-system" in out
    code, out, _ = run_cli(capsys, "render", "staging", "--tree", "-o", "json", "--repo", str(repo))
    import json

    data = json.loads(out)
    assert data["objects"] == 15 and len(data["replaced"]) == 2
    assert [u["kind"] for u in data["unresolved"]] == ["HelmRelease", "Kustomization"]
    code, out, err = run_cli(capsys, "render", "staging", "-o", "table", "--repo", str(repo))
    assert code == 0 and "unresolved HelmRelease ingress-nginx/ingress-nginx" in err


def test_a_shell_variable_nothing_sets_names_flux_opt_out(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _commit(repo, {"apps/base/podinfo/scripts.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: podinfo-scripts
        data:
          start.sh: echo ${HOME}
    """})
    with pytest.raises(MissingVariables) as e:
        render_cluster(repo, "staging")
    where = 'ConfigMap/podinfo/podinfo-scripts (Kustomization flux-system/apps, path apps/staging, cluster "staging"'
    assert f'variable "HOME" not set in {where}' in e.value.message
    code, _, err = run_cli(capsys, "render", "staging", "--repo", str(repo))
    assert code == 2 and "kustomize.toolkit.fluxcd.io/substitute: disabled" in err and "$${VAR}" in err
    assert "Traceback" not in err


def test_what_flux_adds_is_confined_too(repo: Path) -> None:
    apps = (repo / "clusters/staging/apps.yaml").read_text()
    _commit(repo, {"clusters/staging/apps.yaml": apps.replace("../../components/monitoring", "../../../../etc")})
    with pytest.raises(FluxTreeError, match=r'^clusters/staging/apps.yaml:17: Kustomization flux-system/apps: '
                                            r'spec.components\[0\]: "../../../../etc" leaves the repository'):
        render_cluster(repo, "staging")
    _commit(repo, {"clusters/staging/apps.yaml": apps.replace("./apps/staging", "./apps/nowhere")})
    with pytest.raises(FluxTreeError, match=r'^clusters/staging/apps.yaml:10: Kustomization flux-system/apps: '
                                            r'spec.path: "./apps/nowhere" is not a directory of the repository'):
        render_cluster(repo, "staging")


def test_a_tree_error_names_the_file_and_line_of_the_field(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = (repo / "clusters/production/apps.yaml").read_text()
    _commit(repo, {"clusters/production/apps.yaml": apps.replace("name: cluster-vars", "name: no-such-vars")})
    code, _, err = run_cli(capsys, "render", "production", "--repo", str(repo))
    assert code == 2
    assert err.startswith("✗ clusters/production/apps.yaml:31: Kustomization flux-system/apps: "
                          "spec.postBuild.substituteFrom[0]: ConfigMap flux-system/no-such-vars is not defined"), err
    _commit(repo, {"clusters/production/apps.yaml": apps.replace("- name: infra-configs", "- name: infra-ghost")})
    code, _, err = run_cli(capsys, "render", "production", "--repo", str(repo))
    assert code == 2
    assert err.startswith("✗ clusters/production/apps.yaml:7: Kustomization flux-system/apps depends on "
                          "flux-system/infra-ghost, which the tree does not define"), err


def test_history_follows_what_the_expanded_tree_reads(repo: Path) -> None:
    from fleet.good import history

    _commit(repo, {"apps/production/extra.yaml": "# production only\n"}, "production only")
    _commit(repo, {"apps/base/podinfo/service.yaml": (repo / "apps/base/podinfo/service.yaml").read_text()
                   + "# a comment\n"}, "base change")
    _commit(repo, {"README.md": "docs\n"}, "docs only")
    subjects = [e.subject for e in history(repo, "staging")]
    assert subjects[0] == "base change"
    assert "production only" not in subjects and "docs only" not in subjects
