"""The Flux tree expander (fleet.rendering.fluxtree) with a fake build: ordering, sources, substitution, collisions.

What kustomize itself builds (and parity with it) is tests/integration/test_flux_render.py.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from fleet.errors import MISSING_HINT, FluxTreeError, MissingVariables
from fleet.rendering.fluxtree import (
    BuildRequest,
    expand,
    flux_kustomization,
    normalize_url,
    operator_keys,
    operator_name,
    scan_resources,
    tree_lines,
)

FLEET_URL = "https://git.example.com/acme/fleet.git"


@dataclass(frozen=True)
class Doc:
    text: str
    ref: str
    substitute: bool


class FakeBuild:
    """Each path's objects; applies targetNamespace and namePrefix as kustomize would; records requests."""

    def __init__(self, tree: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        self.tree = tree
        self.requests: list[BuildRequest] = []

    def __call__(self, req: BuildRequest) -> list[Doc]:
        self.requests.append(req)
        out = []
        for obj in self.tree[req.path]:
            o = yaml.safe_load(yaml.safe_dump(obj))
            meta = o.setdefault("metadata", {})
            if req.spec.get("targetNamespace"):
                meta["namespace"] = req.spec["targetNamespace"]
            if req.spec.get("namePrefix"):
                meta["name"] = req.spec["namePrefix"] + meta["name"]
            off = any((meta.get(k) or {}).get("kustomize.toolkit.fluxcd.io/substitute") == "disabled"
                      for k in ("annotations", "labels"))
            ref = f"{o['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"
            out.append(Doc(yaml.safe_dump(o, sort_keys=True), ref, not off))
        return out


def ks(name: str, path: str, *, depends: Sequence[str] = (), source: str = "flux-system",
       kind: str = "GitRepository", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "path": path,
            "sourceRef": {"kind": kind, "name": source},
            **({"dependsOn": [{"name": d} for d in depends]} if depends else {}),
            **spec,
        },
    }


def cm(name: str, ns: str = "apps", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def run(tree: Mapping[str, Sequence[dict[str, Any]]], root: str = "clusters/prod", **kw: Any):  # type: ignore[no-untyped-def]
    build = FakeBuild(tree)
    return expand(root, build, fleet_urls=[FLEET_URL], **kw), build


def test_depends_on_order_not_name_order() -> None:
    tree = {
        "clusters/prod": [
            ks("a-apps", "./apps", depends=["m-configs"]),
            ks("m-configs", "./configs", depends=["z-controllers"]),
            ks("z-controllers", "./controllers"),
        ],
        "controllers": [cm("c", ns="infra")],
        "configs": [cm("cfg", ns="infra")],
        "apps": [cm("app")],
    }
    exp, build = run(tree)
    assert [n.id for n in exp.nodes] == ["", "flux-system/z-controllers", "flux-system/m-configs", "flux-system/a-apps"]
    assert [r.path for r in build.requests] == ["clusters/prod", "controllers", "configs", "apps"]
    assert exp.node("flux-system/a-apps").depends_on == ("flux-system/m-configs",)
    assert [o.node for o in exp.objects][-3:] == ["flux-system/z-controllers", "flux-system/m-configs",
                                                  "flux-system/a-apps"]
    assert exp.node("").objects == 3 and exp.node("flux-system/a-apps").objects == 1


def test_kustomizations_found_in_builds_are_expanded_recursively() -> None:
    tree = {
        "clusters/prod": [ks("infra", "./infra")],
        "infra": [ks("infra-sub", "./infra/sub", targetNamespace="sub"), cm("top", ns="infra")],
        "infra/sub": [cm("leaf")],
    }
    exp, _ = run(tree)
    sub = exp.node("flux-system/infra-sub")
    assert sub.parent == "flux-system/infra" and sub.objects == 1
    assert exp.objects[-1].object["metadata"] == {"name": "leaf", "namespace": "sub"}
    lines = tree_lines(exp)
    assert any("└── flux-system/infra-sub" in line and "infra/sub" in line for line in lines)


def test_a_kustomization_applying_the_cluster_directory_again_is_not_expanded_twice() -> None:
    tree = {"clusters/prod": [ks("flux-system", "./clusters/prod"), cm("x")]}
    exp, build = run(tree)
    assert exp.node("flux-system/flux-system").status == "self"
    assert len(build.requests) == 1 and len(exp.objects) == 2


def test_the_operators_own_objects_are_left_out_and_listed() -> None:
    sync = [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
             "metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {"url": FLEET_URL}},
            ks("flux-system", "./clusters/prod")]
    tree = {"clusters/prod": [*sync, ks("apps", "./apps")], "apps": [cm("app")]}
    exp, _ = run(tree, operator=operator_keys(operator_name(True)))
    assert [o.object["metadata"]["name"] for o in exp.objects] == ["apps", "app"]
    assert exp.replaced == ("GitRepository/flux-system/flux-system", "Kustomization/flux-system/flux-system")
    assert exp.node("flux-system/apps").status == "expanded"  # built from fleet's flux-system source
    assert any("the operator's own (2)" in line for line in tree_lines(exp))
    kept, _ = run(tree)  # without an operator (operator.kind none), the tree's copies are objects
    assert len(kept.objects) == 4 and kept.replaced == ()


def test_substitution_from_inline_configmaps_and_secrets_in_flux_order() -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vars-secret", "namespace": "flux-system"},
        "data": {"TOKEN": base64.b64encode(b"s3cr3t\n").decode(), "REGION": base64.b64encode(b"from-secret").decode()},
    }
    tree = {
        "clusters/prod": [
            cm("vars", ns="flux-system", REGION="eu-west-1", TIER="gold"),
            secret,
            ks("apps", "./apps", postBuild={
                "substitute": {"TIER": "platinum"},
                "substituteFrom": [
                    {"kind": "ConfigMap", "name": "vars"},
                    {"kind": "Secret", "name": "vars-secret"},
                    {"kind": "ConfigMap", "name": "absent", "optional": True},
                ],
            }),
        ],
        "apps": [cm("app", REGION="${REGION}", TIER="${TIER}", TOKEN="${TOKEN}", DEF="${UNSET:=dflt}",
                    SHELL="$${HOME}")],
    }
    exp, _ = run(tree)
    data = exp.objects[-1].object["data"]
    # later substituteFrom entries win over earlier ones, inline substitute over both; newlines are dropped
    assert data == {"REGION": "from-secret", "TIER": "platinum", "TOKEN": "s3cr3t", "DEF": "dflt",
                    "SHELL": "${HOME}"}


def test_substitute_from_a_configmap_another_kustomization_defines_waits_for_it() -> None:
    tree = {
        "clusters/prod": [
            ks("a-apps", "./apps", postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "late"}]}),
            ks("b-vars", "./vars"),
        ],
        "vars": [cm("late", ns="flux-system", X="1")],
        "apps": [cm("app", X="v${X}")],
    }
    exp, _ = run(tree)
    assert [n.id for n in exp.nodes][1:] == ["flux-system/b-vars", "flux-system/a-apps"]
    assert exp.objects[-1].object["data"] == {"X": "v1"}


def test_a_substitute_from_the_tree_lacks_is_an_error_naming_it() -> None:
    tree = {
        "clusters/prod": [ks("apps", "./apps", postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "nope"}]})],
        "apps": [cm("app")],
    }
    with pytest.raises(FluxTreeError, match=r"Kustomization flux-system/apps: spec.postBuild.substituteFrom\[0\]: "
                                            r"ConfigMap flux-system/nope is not defined in the tree") as e:
        run(tree)
    assert e.value.exit_code == 2 and e.value.hint and "optional: true" in e.value.hint


def test_without_post_build_nothing_is_substituted_and_a_missing_variable_names_the_escapes() -> None:
    tree = {
        "clusters/prod": [
            ks("plain", "./plain"),
            ks("vars", "./vars", postBuild={"substitute": {"A": "1"}}),
        ],
        "plain": [cm("script", run="echo ${HOME}")],  # no postBuild: Flux leaves it alone
        "vars": [cm("script", ns="other", run="echo ${HOME}")],
    }
    with pytest.raises(MissingVariables) as e:
        run(tree)
    assert e.value.names == ("HOME",)
    assert "ConfigMap/other/script (Kustomization flux-system/vars, path vars)" in e.value.message
    assert e.value.hint and "$${VAR}" in e.value.hint
    assert "kustomize.toolkit.fluxcd.io/substitute: disabled" in e.value.hint
    assert "postBuild.substitute" in e.value.hint
    tree["vars"] = [{**cm("script", ns="other", run="echo ${HOME}"),
                     "metadata": {"name": "script", "namespace": "other",
                                  "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}}]
    exp, _ = run(tree)
    assert [o.object["data"]["run"] for o in exp.objects[-2:]] == ["echo ${HOME}", "echo ${HOME}"]


def test_the_cluster_directory_is_substituted_with_the_root_variables() -> None:
    tree = {"clusters/prod": [cm("c", NAME="${FLEET_CLUSTER}")]}
    exp, _ = run(tree, root_vars={"FLEET_CLUSTER": "eu-1"})
    assert exp.objects[0].object["data"] == {"NAME": "eu-1"}
    tree = {"clusters/prod": [cm("c", NAME="${NOPE}")]}
    with pytest.raises(MissingVariables) as e:
        run(tree, root_vars={"FLEET_CLUSTER": "eu-1"})
    assert e.value.hint == MISSING_HINT


def test_missing_variables_hint_names_flux_opt_out_and_escape() -> None:
    assert "--var" in MISSING_HINT
    assert "kustomize.toolkit.fluxcd.io/substitute: disabled" in MISSING_HINT and "$${VAR}" in MISSING_HINT


def test_common_metadata_is_set_on_every_object() -> None:
    tree = {
        "clusters/prod": [ks("apps", "./apps", commonMetadata={"labels": {"team": "web"},
                                                               "annotations": {"owner": "ops"}})],
        "apps": [cm("a"), {**cm("b"), "metadata": {"name": "b", "namespace": "apps", "labels": {"x": "1"}}}],
    }
    exp, _ = run(tree)
    metas = [o.object["metadata"] for o in exp.objects[-2:]]
    assert metas[0]["labels"] == {"team": "web"} and metas[1]["labels"] == {"x": "1", "team": "web"}
    assert all(m["annotations"] == {"owner": "ops"} for m in metas)
    assert "team: web" in exp.objects[-1].text


def test_two_kustomizations_producing_one_object_differently_is_an_error() -> None:
    tree = {
        "clusters/prod": [ks("one", "./one"), ks("two", "./two")],
        "one": [cm("shared", V="1")],
        "two": [cm("shared", V="2")],
    }
    with pytest.raises(FluxTreeError) as e:
        run(tree)
    assert "ConfigMap/apps/shared is produced by Kustomization flux-system/one and by Kustomization " \
           "flux-system/two, differently" in e.value.message
    tree["two"] = [cm("shared", V="1")]
    exp, _ = run(tree)
    assert [o.object["metadata"]["name"] for o in exp.objects].count("shared") == 1
    assert exp.node("flux-system/two").objects == 0
    assert any("kept once" in n for n in exp.notes)


def test_other_sources_are_unresolved_never_dropped() -> None:
    oci = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
           "metadata": {"name": "charts", "namespace": "flux-system"}, "spec": {"url": "oci://ghcr.io/x"}}
    other_git = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                 "metadata": {"name": "other", "namespace": "flux-system"},
                 "spec": {"url": "https://github.com/acme/other"}}
    same_git = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "mirror", "namespace": "flux-system"},
                "spec": {"url": "ssh://git@git.example.com/acme/fleet", "ref": {"tag": "v1"}}}
    tree = {
        "clusters/prod": [
            oci, other_git, same_git,
            ks("from-oci", "./", source="charts", kind="OCIRepository"),
            ks("from-other", "./deploy", source="other"),
            ks("from-undefined", "./deploy", source="nowhere"),
            ks("from-mirror", "./apps", source="mirror"),
            ks("paused", "./apps", suspend=True),
            ks("remote", "./apps", kubeConfig={"secretRef": {"name": "kc"}}),
            ks("after-oci", "./after", depends=["from-oci"]),
        ],
        "apps": [cm("app")],
        "after": [cm("after")],
    }
    exp, build = run(tree)
    assert [r.path for r in build.requests] == ["clusters/prod", "apps", "after"]
    status = {n.id: n.status for n in exp.nodes}
    assert status["flux-system/from-oci"] == "unresolved" and status["flux-system/from-mirror"] == "expanded"
    assert status["flux-system/paused"] == "suspended" and status["flux-system/remote"] == "unresolved"
    notes = {u.name: u.note for u in exp.unresolved}
    assert "OCIRepository/flux-system/charts is not the fleet repo" in notes["flux-system/from-oci"]
    assert "another Git repository (https://github.com/acme/other)" in notes["flux-system/from-other"]
    assert "not defined in the tree" in notes["flux-system/from-undefined"]
    assert "suspended" in notes["flux-system/paused"] and "another cluster" in notes["flux-system/remote"]
    assert any("pins {'tag': 'v1'}" in n for n in exp.notes)
    assert exp.node("flux-system/after-oci").status == "expanded"


def test_a_helm_release_stays_an_object_and_its_chart_is_unresolved() -> None:
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "nginx", "namespace": "ingress"},
          "spec": {"chart": {"spec": {"chart": "ingress-nginx", "sourceRef": {"kind": "HelmRepository",
                                                                               "name": "nginx"}}}}}
    exp, _ = run({"clusters/prod": [hr]})
    assert exp.objects[0].object["kind"] == "HelmRelease"
    (u,) = exp.unresolved
    assert (u.kind, u.name, u.source) == ("HelmRelease", "ingress/nginx", "HelmRepository/ingress/nginx")
    assert 'chart "ingress-nginx"' in u.note and "kept as an object" in u.note


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"clusters/prod": [ks("a", "./a", depends=["ghost"])], "a": []},
         "Kustomization flux-system/a depends on flux-system/ghost, which the tree does not define"),
        ({"clusters/prod": [ks("a", "./a", depends=["b"]), ks("b", "./b", depends=["a"])], "a": [], "b": []},
         "dependsOn cycle: flux-system/a -> flux-system/b -> flux-system/a"),
        ({"clusters/prod": [ks("a", "../../etc")]}, 'Kustomization flux-system/a: spec.path: "../../etc" leaves'),
    ],
)
def test_a_tree_flux_would_not_apply_is_refused(tree: dict[str, list[dict[str, Any]]], message: str) -> None:
    with pytest.raises(FluxTreeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(tree)


def test_the_generated_kustomization_follows_flux() -> None:
    where = "Kustomization flux-system/x"
    always = lambda rel: True  # noqa: E731
    # no kustomization file: Flux lists the files; no options and a kustomization file: built as it is
    assert flux_kustomization(None, ["./a.yaml"], {}, always, where) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["./a.yaml"]}
    assert flux_kustomization(None, [], {}, always, where)["namespace"] == "_placeholder"  # type: ignore[index]
    assert flux_kustomization({"resources": ["a.yaml"]}, [], {}, always, where) is None
    assert flux_kustomization({"components": ["c"]}, [], {}, always, where) == {
        "components": ["c"], "buildMetadata": ["originAnnotations"]}
    spec = {
        "targetNamespace": "apps", "namePrefix": "p-", "nameSuffix": "-s",
        "patches": [{"patch": "- op: add", "target": {"kind": "Deployment"}}],
        "images": [{"name": "web", "newTag": "2"}, {"name": "db", "newName": "pg"}],
        "components": ["../c1", "../missing"], "ignoreMissingComponents": True,
    }
    existing = {"resources": ["a.yaml"], "images": [{"name": "web", "newName": "r/web", "digest": "sha256:1"}]}
    out = flux_kustomization(existing, [], spec, lambda rel: rel == "../c1", where)
    assert out == {
        "resources": ["a.yaml"],
        "images": [{"name": "web", "newName": "r/web", "newTag": "2"}, {"name": "db", "newName": "pg"}],
        "namespace": "apps", "namePrefix": "p-", "nameSuffix": "-s",
        "patches": [{"patch": "- op: add", "target": {"kind": "Deployment"}}],
        "components": ["../c1"],
    }
    with pytest.raises(FluxTreeError, match=r"spec.components\[0\]: component path .* must be local and relative"):
        flux_kustomization(None, [], {"components": ["https://github.com/x/y"]}, always, where)


def test_scan_lists_yaml_files_and_kustomization_directories_as_flux_walks() -> None:
    listing = {
        "apps": [("b.yaml", "file"), ("a.yml", "file"), ("README.md", "file"), ("sub", "dir"),
                 ("kust", "dir"), (".sops.yaml", "file"), (".github", "dir")],
        "apps/sub": [("x.yaml", "file")],
        "apps/kust": [("kustomization.yaml", "file"), ("y.yaml", "file")],
        "apps/.github": [("ci.yaml", "file")],
    }
    assert scan_resources("apps", lambda d: listing.get(d, [])) == ["./a.yml", "./b.yaml", "./kust", "./sub/x.yaml"]


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/acme/fleet.git",
        "ssh://git@git.example.com/acme/fleet",
        "git@git.example.com:acme/fleet.git",
        "https://git.example.com/Acme/Fleet/",
        "ssh://git@git.example.com:22/acme/fleet.git",
    ],
)
def test_urls_of_one_repository_compare_equal(url: str) -> None:
    assert normalize_url(url) == "git.example.com/acme/fleet"
