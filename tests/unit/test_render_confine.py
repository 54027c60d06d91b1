"""Render confinement: an overlay reads only what the repository holds at the revision (no absolute path,
no escape above the root, no symlink out, no remote source), in every field kustomize loads files from;
`render -o` never writes into the repository; the disk cache serves only what it sealed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.adapters.git import GitRepo
from fleet.errors import ConfigError, InputError
from fleet.registry import ClusterSpec, add_cluster
from fleet.rendering import build
from fleet.rendering import cluster as render
from tests.helpers import commit_file, git, git_state, new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]
OVERLAY = "environments/prod/kustomization.yaml"
HEAD = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: hello-prod
"""
SAFE = HEAD + "resources:\n  - namespace.yaml\n  - ../../base\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name="eu-1", environment="prod", vars={"REPLICAS": "4"}))
    build.clear_cache()
    return root


def symlink(repo: Path, path: str, target: str) -> str:
    link = repo / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"link {path}")
    return git(repo, "rev-parse", "HEAD").strip()


# (id, kustomization body, the offending value the message must name)
FIELDS = [
    ("resources-absolute", "resources:\n  - /etc/hostname\n", "/etc/hostname"),
    ("resources-escape", "resources:\n  - ../../../../../../etc/hostname\n", "../../../../../../etc/hostname"),
    ("resources-escape-just-above", "resources:\n  - ../../../x.yaml\n", "../../../x.yaml"),
    ("resources-https", "resources:\n  - https://example.com/org/repo//dir?ref=v1\n", "https://example.com"),
    ("resources-github", "resources:\n  - github.com/org/repo/deploy?ref=main\n", "github.com/org/repo"),
    ("resources-git-ssh", "resources:\n  - git@github.com:org/repo.git\n", "git@github.com:org/repo.git"),
    ("resources-git-scheme", "resources:\n  - git::https://host/org/repo\n", "git::https://host"),
    ("resources-file-url", "resources:\n  - file:///etc/hostname\n", "file:///etc/hostname"),
    ("bases-escape", "bases:\n  - ../../../outside\n", "../../../outside"),
    ("components-absolute", "components:\n  - /tmp/component\n", "/tmp/component"),
    ("components-remote", "components:\n  - https://example.com/c\n", "https://example.com/c"),
    ("crds-absolute", "crds:\n  - /etc/crd.yaml\n", "/etc/crd.yaml"),
    ("configurations-escape", "configurations:\n  - ../../../../conf.yaml\n", "../../../../conf.yaml"),
    ("patches-path-absolute", "patches:\n  - path: /etc/passwd\n", "/etc/passwd"),
    ("patches-path-escape", "patches:\n  - path: ../../../p.yaml\n", "../../../p.yaml"),
    ("psm-absolute", "patchesStrategicMerge:\n  - /etc/patch.yaml\n", "/etc/patch.yaml"),
    (
        "json6902-path",
        "patchesJson6902:\n  - target: {kind: Deployment, name: hello}\n    path: /etc/ops.yaml\n",
        "/etc/ops.yaml",
    ),
    ("cm-files-absolute", "configMapGenerator:\n  - name: leak\n    files: [/etc/hostname]\n", "/etc/hostname"),
    ("cm-files-keyed", "configMapGenerator:\n  - name: leak\n    files: [h=/etc/hostname]\n", "/etc/hostname"),
    ("cm-envs-escape", "configMapGenerator:\n  - name: leak\n    envs: [../../../e.env]\n", "../../../e.env"),
    ("cm-env-absolute", "configMapGenerator:\n  - name: leak\n    env: /etc/environment\n", "/etc/environment"),
    ("secret-files", "secretGenerator:\n  - name: s\n    files: [/root/.ssh/id_rsa]\n", "/root/.ssh/id_rsa"),
    ("secret-envs", "secretGenerator:\n  - name: s\n    envs: [/proc/self/environ]\n", "/proc/self/environ"),
    ("replacements-path", "replacements:\n  - path: /etc/r.yaml\n", "/etc/r.yaml"),
    ("openapi-path", "openapi:\n  path: /etc/schema.json\n", "/etc/schema.json"),
    ("generators-file", "generators:\n  - /etc/gen.yaml\n", "/etc/gen.yaml"),
    ("generators-remote", "generators:\n  - https://example.com/gen\n", "https://example.com/gen"),
    ("validators-escape", "validators:\n  - ../../../v.yaml\n", "../../../v.yaml"),
    (
        "transformers-inline-path",
        "transformers:\n  - |-\n    apiVersion: builtin\n    kind: PatchTransformer\n    metadata: {name: x}\n"
        "    path: /etc/passwd\n",
        "/etc/passwd",
    ),
    (
        "transformers-inline-cm-files",
        "transformers:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n    metadata: {name: x}\n"
        "    files: [k=../../../../etc/hostname]\n",
        "../../../../etc/hostname",
    ),
    (
        "helm-values-file",
        "helmCharts:\n  - name: c\n    valuesFile: /etc/values.yaml\n",
        "/etc/values.yaml",
    ),
    ("helm-additional-values", "helmCharts:\n  - name: c\n    additionalValuesFiles: [/etc/v.yaml]\n", "/etc/v.yaml"),
    ("helm-repo", "helmCharts:\n  - name: c\n    repo: https://charts.example.com\n", "https://charts.example.com"),
    ("helm-globals-home", "helmGlobals:\n  chartHome: /var/charts\n", "/var/charts"),
    ("helm-globals-config", "helmGlobals:\n  configHome: ../../../../helm\n", "../../../../helm"),
    (
        "helm-inflation-home",
        "helmChartInflationGenerator:\n  - chartName: c\n    chartHome: /var/charts\n",
        "/var/charts",
    ),
]


@pytest.mark.parametrize(("body", "value"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS])
def test_every_file_field_is_confined(repo: Path, body: str, value: str) -> None:
    commit_file(repo, OVERLAY, HEAD + body)
    with pytest.raises(ConfigError) as e:
        render.render_cluster(repo, "eu-1")
    assert e.value.message.startswith(OVERLAY), e.value.message
    assert value in e.value.message
    assert e.value.exit_code == 2


def test_a_base_reached_from_the_overlay_is_confined_too(repo: Path) -> None:
    commit_file(repo, "base/kustomization.yaml", HEAD + "resources:\n  - /etc/hostname\n")
    with pytest.raises(ConfigError, match=r'^base/kustomization.yaml:\d+: resources\[0\]: "/etc/hostname"'):
        render.render_cluster(repo, "eu-1")


def test_a_transformer_config_file_is_confined(repo: Path) -> None:
    commit_file(
        repo,
        "environments/prod/patch-config.yaml",
        "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: /etc/shadow\n",
    )
    commit_file(repo, OVERLAY, SAFE + "transformers:\n  - patch-config.yaml\n")
    with pytest.raises(ConfigError, match="/etc/shadow"):
        render.render_cluster(repo, "eu-1")


def test_a_component_directory_is_confined(repo: Path) -> None:
    commit_file(
        repo,
        "components/leak/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "configMapGenerator:\n  - name: x\n    files: [../../../../../etc/hostname]\n",
    )
    commit_file(repo, OVERLAY, SAFE + "components:\n  - ../../components/leak\n")
    with pytest.raises(ConfigError, match=r"^components/leak/kustomization.yaml:\d+: configMapGenerator"):
        render.render_cluster(repo, "eu-1")


def test_a_symlink_to_an_absolute_path_is_refused(repo: Path) -> None:
    symlink(repo, "environments/prod/hostfile", "/etc/hostname")
    commit_file(repo, OVERLAY, SAFE + "configMapGenerator:\n  - name: x\n    files: [hostfile]\n")
    with pytest.raises(ConfigError, match=r'environments/prod/hostfile is a symlink to the absolute path "/etc'):
        render.render_cluster(repo, "eu-1")


def test_a_symlink_leaving_the_tree_is_refused(repo: Path) -> None:
    symlink(repo, "environments/prod/etc", "../../../../../etc")
    commit_file(repo, OVERLAY, SAFE + "configMapGenerator:\n  - name: x\n    files: [etc/hostname]\n")
    with pytest.raises(ConfigError, match="environments/prod/etc is a symlink leaving the repository"):
        render.render_cluster(repo, "eu-1")


def test_symlinks_that_leave_only_together_are_refused(repo: Path) -> None:
    """d/A -> B/../../../.. looks inside while B is missing; with B -> . it leaves: resolved in the tree,
    the order links are written in cannot matter."""
    symlink(repo, "environments/prod/d/A", "B/../../../..")
    symlink(repo, "environments/prod/d/B", ".")
    commit_file(repo, OVERLAY, SAFE + "configMapGenerator:\n  - name: x\n    files: [d/A/etc/hostname]\n")
    with pytest.raises(ConfigError, match=r'"d/A/etc/hostname" leaves the repository'):
        render.render_cluster(repo, "eu-1")


def test_a_symlink_loop_is_refused(repo: Path) -> None:
    symlink(repo, "environments/prod/a", "b")
    symlink(repo, "environments/prod/b", "a")
    commit_file(repo, OVERLAY, SAFE + "configMapGenerator:\n  - name: x\n    files: [a]\n")
    with pytest.raises(ConfigError, match="symlink loop"):
        render.render_cluster(repo, "eu-1")


def test_a_kustomization_that_is_a_symlink_out_is_refused(repo: Path) -> None:
    git(repo, "rm", "-q", "base/kustomization.yaml")
    symlink(repo, "base/kustomization.yaml", "/etc/kustomization.yaml")
    with pytest.raises(ConfigError, match=r"kustomization\.yaml is a symlink to the absolute path"):
        render.render_cluster(repo, "eu-1")


def test_extract_refuses_a_symlink_out_whatever_the_order(repo: Path, tmp_path: Path) -> None:
    sha = symlink(repo, "docs/A", "B/../../..")
    sha = symlink(repo, "docs/B", ".")
    with GitRepo.open(repo) as g:
        with pytest.raises(InputError, match=r"docs/A .*is a symlink that leaves the repository"):
            g.extract(sha, tmp_path / "x", ["docs"])
        symlink(repo, "inside/link", "../base")  # one that stays inside is kept
        g.extract("HEAD", tmp_path / "y", ["inside", "base"])
    assert (tmp_path / "y" / "inside" / "link" / "kustomization.yaml").is_file()


def test_the_cli_refuses_in_one_line_and_changes_nothing(repo: Path, capsys: Capsys, fleet_home: Path) -> None:
    commit_file(repo, OVERLAY, SAFE + "configMapGenerator:\n  - name: leak\n    files: [/etc/hostname]\n")
    before = git_state(repo)
    code, out, err = run_cli(capsys, "render", "eu-1", "--repo", str(repo))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"✗ {OVERLAY}:") and "/etc/hostname" in lines[0]
    assert len(lines) <= 2 and "Traceback" not in err
    assert git_state(repo) == before
    assert not (fleet_home / "cache").exists()  # nothing cached


# ---- render -o ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["clusters", ".git", ".git/hooks", "base/sub", ".", "fleet.yaml", "environments/prod"]
)
def test_render_output_never_goes_into_the_repository(repo: Path, capsys: Capsys, target: str) -> None:
    before = git_state(repo)
    hooks = sorted(os.listdir(repo / ".git" / "hooks")) if (repo / ".git" / "hooks").exists() else []
    code, _, err = run_cli(capsys, "render", "eu-1", "-o", str(repo / target), "--repo", str(repo))
    assert code == 2, err
    assert err.startswith("✗ -o ") and "refusing to write" in err and "Traceback" not in err
    assert git_state(repo) == before
    assert (sorted(os.listdir(repo / ".git" / "hooks")) if hooks else []) == hooks


def test_render_output_through_a_symlink_into_the_repository_is_refused(
    repo: Path, tmp_path: Path, capsys: Capsys
) -> None:
    (tmp_path / "out").symlink_to(repo / "clusters")
    code, _, err = run_cli(capsys, "render", "eu-1", "-o", str(tmp_path / "out"), "--repo", str(repo))
    assert code == 2 and "clusters is tracked" in err
