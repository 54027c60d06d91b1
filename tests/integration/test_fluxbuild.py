"""fleet-build, through its adapter: builds isolated from each other, kustomize's order, and Helm's
template confined to its root (for the HelmRelease expansion to come)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleet.adapters import fluxbuild
from fleet.errors import RenderError
from tests.helpers import need_tool

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def builder() -> Iterator[None]:
    need_tool("fleet-build")
    yield
    fluxbuild.close()


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


MYKIND = """apiVersion: example.com/v1
kind: MyKind
metadata:
  name: x
spec:
  items:
  - name: one
    value: 1
  - name: two
    value: 2
"""
PATCH = MYKIND.split("spec:")[0] + "spec:\n  items:\n  - name: two\n    value: 22\n"
SCHEMA = {"definitions": {"v1.MyKind": {
    "type": "object",
    "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "MyKind", "version": "v1"}],
    "properties": {"spec": {"type": "object", "properties": {"items": {
        "type": "array", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
        "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "integer"}}}}}}}}}}


def test_a_custom_openapi_schema_does_not_leak_into_the_next_build(tmp_path: Path) -> None:
    """A kustomization's openapi schema (here: merge a list by name) applies to its own build only, as
    Flux resets the schema around every build; the builder keeps one process for many builds."""
    root = write(tmp_path, {
        "common/r.yaml": MYKIND, "common/patch.yaml": PATCH,
        "a/schema.json": json.dumps(SCHEMA),
        "a/kustomization.yaml": "openapi:\n  path: schema.json\nresources: [../common/r.yaml]\n"
                                "patches:\n- path: ../common/patch.yaml\n",
        "b/kustomization.yaml": "resources: [../common/r.yaml]\npatches:\n- path: ../common/patch.yaml\n",
    })

    def items(directory: str) -> list[str]:
        return [i["name"] for i in yaml.safe_load(fluxbuild.build(root, directory))["spec"]["items"]]

    assert items("b") == ["two"]  # no schema: the patch's list replaces the list
    assert items("a") == ["two", "one"]  # merged by name
    assert items("b") == ["two"]
    fluxbuild.close()
    assert items("b") == ["two"]  # as a fresh process builds it


def test_objects_come_in_kustomize_order_unless_the_kustomization_sets_one(tmp_path: Path) -> None:
    objs = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n"
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n")
    root = write(tmp_path, {
        "legacy/all.yaml": objs, "legacy/kustomization.yaml": "resources: [all.yaml]\n",
        "fifo/all.yaml": objs, "fifo/kustomization.yaml": "resources: [all.yaml]\nsortOptions:\n  order: fifo\n",
    })
    kinds = [[d["kind"] for d in yaml.safe_load_all(fluxbuild.build(root, k))] for k in ("legacy", "fifo")]
    assert kinds == [["Namespace", "Service", "Deployment"], ["Deployment", "Service", "Namespace"]]


CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n",
    "chart/values.yaml": "replicas: 1\n",
    "chart/values.schema.json": json.dumps({"type": "object", "properties": {"replicas": {"type": "integer"}}}),
    "chart/crds/crd.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                           "metadata:\n  name: things.example.com\n",
    "chart/templates/cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
  namespace: {{ .Release.Namespace }}
data:
  replicas: "{{ .Values.replicas }}"
  kube: "{{ .Capabilities.KubeVersion.Version }}"
  outside: {{ .Files.Get "../../outside.txt" | quote }}
  lookup: {{ lookup "v1" "Secret" "default" "x" | toJson | quote }}
""",
}


def test_helm_template_renders_a_chart_inside_its_root(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("HOST-FILE\n")
    root = write(tmp_path / "root", CHART)
    text = fluxbuild.template(root, "chart", release="web", namespace="apps", values={"replicas": 3},
                              include_crds=True, kube_version="v1.36.3")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in docs] == ["CustomResourceDefinition", "ConfigMap"]
    cm = docs[1]
    assert cm["metadata"] == {"name": "web-cm", "namespace": "apps"}
    assert cm["data"] == {"replicas": "3", "kube": "v1.36.3", "outside": "", "lookup": "{}"}
    assert "HOST-FILE" not in text
    without_crds = fluxbuild.template(root, "chart", release="web", namespace="apps")
    assert "CustomResourceDefinition" not in without_crds


def test_helm_template_refuses_what_leaves_the_root_and_bad_values(tmp_path: Path) -> None:
    root = write(tmp_path / "root", CHART)
    with pytest.raises(RenderError, match="outside the repository"):
        fluxbuild.template(root, "../", release="r", namespace="n")
    with pytest.raises(RenderError, match="replicas"):
        fluxbuild.template(root, "chart", release="r", namespace="n", values={"replicas": "many"})
    with pytest.raises(RenderError, match="kubeVersion"):
        fluxbuild.template(root, "chart", release="r", namespace="n", kube_version="v1.20.0")
    (root / "chart" / "templates" / "leak.yaml").symlink_to("/etc/passwd")
    with pytest.raises(RenderError, match="symlink leaves the repository"):
        fluxbuild.template(root, "chart", release="r", namespace="n")


def test_helm_template_refuses_what_helm_template_refuses(tmp_path: Path) -> None:
    """A library chart is not installable; a dependency not vendored in charts/ is never fetched."""
    root = write(tmp_path, {
        "lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
        "app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n"
                          "  - name: redis\n    version: 1.0.0\n    repository: https://charts.example.com\n",
        "app/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    })
    with pytest.raises(RenderError, match="library charts are not installable"):
        fluxbuild.template(root, "lib", release="r", namespace="n")
    with pytest.raises(RenderError, match=r"dependencies missing.*redis"):
        fluxbuild.template(root, "app", release="r", namespace="n")
