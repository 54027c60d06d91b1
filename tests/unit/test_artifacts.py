"""ArtifactGenerator copy rules (fleet.rendering.artifacts) on real git repos, as source-watcher's builder
applies them, and the Flux tree expander (fleet.rendering.fluxtree) building Kustomizations from the
ExternalArtifacts a generator makes. The kustomize builds of those artifacts:
tests/integration/test_flux_artifacts.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.adapters.git import GitRepo
from fleet.errors import FluxTreeError
from fleet.rendering.artifacts import compose, doublestar_match, glob_match, ignored, source_ignore
from fleet.rendering.fluxtree import BuildRequest, Unsupported, expand
from tests.adopt_fixtures import flux_artifact_repo, write_tree
from tests.helpers import git


@pytest.fixture
def flagship(tmp_path: Path) -> GitRepo:
    return GitRepo.open(flux_artifact_repo(tmp_path))


@pytest.fixture
def small(tmp_path: Path) -> GitRepo:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_tree(root, {
        "apps/base/web/deploy.yaml": "kind: Deployment\n",
        "apps/base/web/README.md": "docs\n",
        "apps/base/web/logo.png": "not really a picture\n",
        "apps/base/web/testdata/fixture.yaml": "kind: Fixture\n",
        "apps/prod/kustomization.yaml": "resources: [../base/web]\n",
        "apps/prod/values.yaml": "image:\n  tag: '1.0'\n  pullPolicy: IfNotPresent\nreplicas: 2\nlist: [a, b]\n",
        "apps/prod/values-override.yaml": "image:\n  tag: '2.0'\nlist: [c]\n",
        "apps/dev/kustomization.yaml": "resources: [../base/web]\n",
        "charts/web-1.0.0.tgz": "not really a tarball\n",
        ".sops.yaml": "creation_rules: []\n",
        ".github/workflows/ci.yaml": "on: push\n",
    })
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "repo")
    return GitRepo.open(root)


def _files(g: GitRepo, copy: Sequence[dict[str, Any]], alias: str = "repo") -> list[str]:
    return sorted(compose(g, g.resolve("HEAD"), [alias], copy, "ArtifactGenerator flux-system/gen").files)


def test_the_flagship_layout_cuts_the_repo_into_two_artifacts(flagship: GitRepo) -> None:
    infra = _files(flagship, [{"from": "@monorepo/infrastructure/**", "to": "@artifact/", "exclude": ["*.md"]}],
                   "monorepo")
    assert infra == ["configs/cluster-issuers.yaml", "configs/kustomization.yaml", "controllers/cert-manager.yaml",
                     "controllers/kustomization.yaml"]  # the prefix stripped (/**), README.md excluded
    apps = _files(flagship, [{"from": "@monorepo/apps/base/**", "to": "@artifact/base/"},
                             {"from": "@monorepo/apps/production/**", "to": "@artifact/production/"}], "monorepo")
    assert apps == ["base/podinfo/kustomization.yaml", "base/podinfo/namespace.yaml", "base/podinfo/release.yaml",
                    "base/podinfo/repository.yaml", "production/kustomization.yaml", "production/podinfo-values.yaml"]


def test_the_sources_archive_leaves_out_what_source_controller_does(flagship: GitRepo, small: GitRepo) -> None:
    whole = _files(flagship, [{"from": "@monorepo/", "to": "@artifact/"}], "monorepo")
    assert not any(f.startswith("docs/") or f == ".sourceignore" for f in whole)  # .sourceignore: /* then !/apps/...
    assert "clusters/production/apps.yaml" in whole and "infrastructure/controllers/README.md" in whole
    everything = _files(small, [{"from": "@repo/", "to": "@artifact/"}])
    assert ".sops.yaml" not in everything and "apps/base/web/logo.png" not in everything  # the defaults
    assert not any(f.startswith(".github/") for f in everything)


def test_nested_sourceignore_files_and_the_sources_spec_ignore(small: GitRepo) -> None:
    root = Path(small.root)
    write_tree(root, {"apps/base/web/.sourceignore": "testdata/\n", "apps/dev/.sourceignore": "*.yaml\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ignores")
    sha = small.resolve("HEAD")
    copy = [{"from": "@repo/apps/**", "to": "@artifact/"}]
    files = sorted(compose(small, sha, ["repo"], copy, "gen").files)
    assert "base/web/testdata/fixture.yaml" not in files and "base/web/deploy.yaml" in files  # its directory
    assert [f for f in files if f.startswith("dev/")] == ["dev/.sourceignore"]  # *.yaml below apps/dev only
    assert "prod/kustomization.yaml" in files
    again = sorted(compose(small, sha, ["repo"], copy, "gen", ["!*.png\n!testdata/\n"]).files)
    assert "base/web/logo.png" in again and "base/web/testdata/fixture.yaml" in again  # spec.ignore comes last


def test_a_path_without_glob_copies_as_cp_does(small: GitRepo) -> None:
    assert _files(small, [{"from": "@repo/apps/prod", "to": "@artifact/x"}]) == [
        "x/prod/kustomization.yaml", "x/prod/values-override.yaml", "x/prod/values.yaml"]  # dir -> to/<dir>
    assert _files(small, [{"from": "@repo/apps/prod/values.yaml", "to": "@artifact/cfg/"}]) == ["cfg/values.yaml"]
    assert _files(small, [{"from": "@repo/apps/prod/values.yaml", "to": "@artifact/cfg/v.yaml"}]) == ["cfg/v.yaml"]
    into_dir = [{"from": "@repo/apps/dev", "to": "@artifact/"},
                {"from": "@repo/apps/prod/values.yaml", "to": "@artifact/dev"}]  # dev exists: a directory
    assert _files(small, into_dir) == ["dev/kustomization.yaml", "dev/values.yaml"]


def test_a_glob_keeps_the_matched_path_unless_it_ends_in_slash_star_star(small: GitRepo) -> None:
    assert _files(small, [{"from": "@repo/apps/*/kustomization.yaml", "to": "@artifact/k/"}]) == [
        "k/apps/dev/kustomization.yaml", "k/apps/prod/kustomization.yaml"]
    assert _files(small, [{"from": "@repo/apps/base/**", "to": "@artifact/"}]) == [
        "web/README.md", "web/deploy.yaml", "web/testdata/fixture.yaml"]
    # ** is no more than * for Go's fs.Glob: one path element
    with pytest.raises(FluxTreeError, match=re.escape("no files match pattern 'apps/**/deploy.yaml'")):
        _files(small, [{"from": "@repo/apps/**/deploy.yaml", "to": "@artifact/"}])


def test_excludes_match_the_path_its_part_below_the_selection_and_the_file_name(small: GitRepo) -> None:
    copy = [{"from": "@repo/apps/**", "to": "@artifact/", "exclude": ["*.md", "**/testdata/**", "prod/values-*"]}]
    assert _files(small, copy) == ["base/web/deploy.yaml", "dev/kustomization.yaml", "prod/kustomization.yaml",
                                   "prod/values.yaml"]
    single = [{"from": "@repo/apps/base/web/README.md", "to": "@artifact/", "exclude": ["README.md"]}]
    assert _files(small, single) == []


def test_merge_deep_merges_yaml_as_helm_merges_values(small: GitRepo) -> None:
    g = small
    made = compose(g, g.resolve("HEAD"), ["repo"], [
        {"from": "@repo/apps/prod/values.yaml", "to": "@artifact/values.yaml"},
        {"from": "@repo/apps/prod/values-override.yaml", "to": "@artifact/values.yaml", "strategy": "Merge"},
    ], "gen")
    merged = made.files["values.yaml"]
    assert isinstance(merged, bytes)
    assert yaml.safe_load(merged) == {"image": {"tag": "2.0", "pullPolicy": "IfNotPresent"}, "replicas": 2,
                                      "list": ["c"]}
    assert made.origins == {"apps/prod/values.yaml", "apps/prod/values-override.yaml"}
    rev = g.compose(made.files)
    assert yaml.safe_load(g.read_file(rev, "values.yaml") or "")["image"]["tag"] == "2.0"


@pytest.mark.parametrize(("op", "message"), [
    ({"from": "@repo/nothing/*.yaml", "to": "@artifact/"},
     "no files match pattern 'nothing/\\*.yaml' in source 'repo'"),
    ({"from": "@repo/apps/base/web/*.md", "to": "@artifact/", "exclude": ["*.md"]},
     "all files matching pattern 'apps/base/web/\\*.md' in source 'repo' were excluded"),
    ({"from": "@repo/missing", "to": "@artifact/"}, "source 'missing' does not exist"),
    ({"from": "@other/apps", "to": "@artifact/"}, "source alias 'other' not found"),
    ({"from": "@repo/apps", "to": "/tmp/x"}, "destination must start with '@artifact/'"),
    ({"from": "repo/apps", "to": "@artifact/"}, "source format must be '@alias/pattern'"),
    ({"from": "@repo/apps/prod/values.yaml", "to": "@artifact/../../etc/x"}, "leaves the artifact"),
])
def test_a_copy_that_source_watcher_fails_is_an_error_naming_the_generator(
    small: GitRepo, op: dict[str, Any], message: str
) -> None:
    with pytest.raises(FluxTreeError, match=message) as e:
        _files(small, [op])
    assert e.value.message.startswith("ArtifactGenerator flux-system/gen: failed to apply copy operation from")


def test_extracting_tarballs_is_not_rendered(small: GitRepo) -> None:
    with pytest.raises(Unsupported, match="strategy: Extract"):
        _files(small, [{"from": "@repo/charts/*.tgz", "to": "@artifact/", "strategy": "Extract"}])


def test_a_composed_tree_has_the_id_git_gives_it(small: GitRepo) -> None:
    g = small
    sha = g.resolve("HEAD")
    files = {e.name: e.oid for e in g.list_dir(sha, "apps/prod")}
    rev = g.compose({f"prod/{n}": oid for n, oid in files.items()})
    assert g.tree_id(rev, "prod") == g.tree_id(sha, "apps/prod")
    assert g.resolve(rev) == rev and [e.name for e in g.list_dir(rev, "")] == ["prod"]
    assert git(Path(g.root), "status", "--porcelain") == ""  # nothing written


def test_patterns() -> None:
    assert glob_match("apps/*", "apps/web") and not glob_match("apps/*", "apps/web/x")
    assert glob_match("a/[!b]c", "a/xc") and not glob_match("a/[!b]c", "a/bc")
    assert doublestar_match("**/testdata/**", "x/y/testdata/f.yaml") and doublestar_match("*.{md,txt}", "a.txt")
    assert doublestar_match("a/**", "a") and not doublestar_match("a/*", "a/b/c")
    rules = source_ignore("/*\n!/apps/\n*.png\n")
    assert ignored(rules, "docs", True) and not ignored(rules, "apps", True) and ignored(rules, "apps/x.png", False)


# ---- the Flux tree -----------------------------------------------------------------------------------


class _Doc:
    def __init__(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self.text = yaml.safe_dump(obj, sort_keys=True)
        self.ref = f"{obj['kind']}/{meta.get('namespace') or '-'}/{meta.get('name')}"
        self.substitute = True


class _Build:
    def __init__(self, tree: dict[str, list[dict[str, Any]]]) -> None:
        self.tree, self.requests = tree, []  # type: ignore[var-annotated]

    def __call__(self, req: BuildRequest) -> list[_Doc]:
        self.requests.append(req)
        where = f"{req.artifact.ref}:{req.path}" if req.artifact else req.path
        if where not in self.tree:
            raise Unsupported(f"no fake for {where}")
        return [_Doc(o) for o in self.tree[where]]


def _ks(name: str, path: str, kind: str, source: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"path": path, "sourceRef": {"kind": kind, "name": source}, **spec}}


def _gen(name: str, sources: list[dict[str, str]], artifacts: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "source.extensions.fluxcd.io/v1beta1", "kind": "ArtifactGenerator",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"sources": sources, "artifacts": artifacts, **spec}}


_FLEET = {"alias": "mono", "kind": "GitRepository", "name": "flux-system"}
_OCI = {"alias": "oci", "kind": "OCIRepository", "name": "charts"}
_CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}}


def test_a_kustomization_of_an_artifact_made_from_the_fleet_repo_builds_in_that_artifact() -> None:
    copy = [{"from": "@mono/apps/**", "to": "@artifact/"}]
    tree = {
        "clusters/prod": [_ks("apps", "./prod", "ExternalArtifact", "apps"),
                          _gen("flux-system", [_FLEET], [{"name": "apps", "copy": copy}])],
        "ExternalArtifact/flux-system/apps:prod": [_CM],
    }
    build = _Build(tree)
    exp = expand("clusters/prod", build)
    node = exp.node("flux-system/apps")
    assert node.status == "expanded" and node.objects == 1 and node.source == "ExternalArtifact/flux-system/apps"
    req = build.requests[-1]
    assert req.artifact is not None and req.artifact.aliases == ("mono",) and req.artifact.copy == tuple(copy)
    assert req.artifact.generator == "flux-system/flux-system" and not exp.unresolved


def test_a_generator_defined_later_in_the_tree_is_waited_for() -> None:
    tree = {
        "clusters/prod": [_ks("apps", "./prod", "ExternalArtifact", "apps"),
                          _ks("gens", "./gens", "GitRepository", "flux-system")],
        "gens": [_gen("g", [_FLEET], [{"name": "apps", "copy": [{"from": "@mono/apps/**", "to": "@artifact/"}]}])],
        "ExternalArtifact/flux-system/apps:prod": [_CM],
    }
    exp = expand("clusters/prod", _Build(tree))
    assert exp.node("flux-system/apps").status == "expanded"


@pytest.mark.parametrize(("objs", "note"), [
    ([_gen("g", [_OCI], [{"name": "apps", "copy": [{"from": "@oci/**", "to": "@artifact/"}]}])],
     "source ExternalArtifact/flux-system/apps is made by ArtifactGenerator flux-system/g from "
     "OCIRepository/flux-system/charts (@oci), which is not the fleet repo"),
    ([], "source ExternalArtifact/flux-system/apps is not the fleet repo"),
    ([_gen("g", [_FLEET], [{"name": "apps", "copy": [{"from": "@mono/x", "to": "@artifact/"}]}],
           pathPattern="@mono/apps/{app}")], "with a pathPattern, which fleet does not expand"),
])
def test_artifacts_not_made_from_the_fleet_repo_stay_unresolved(objs: list[dict[str, Any]], note: str) -> None:
    tree = {"clusters/prod": [_ks("apps", "./prod", "ExternalArtifact", "apps"), *objs]}
    build = _Build(tree)
    exp = expand("clusters/prod", build)
    assert [u.name for u in exp.unresolved] == ["flux-system/apps"]
    assert note in exp.unresolved[0].note
    assert len(build.requests) == 1  # only the cluster directory was built
