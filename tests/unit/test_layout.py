"""A configurable layout in fleet.yaml: where the registry and the environment overlays live."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.errors import ConfigError, InputError
from fleet.registry import ClusterSource, ClusterSpec, Layout, add_cluster, layout_at, load_registry, remove_cluster
from fleet.registry.layout import path_problem
from tests.adopt_fixtures import kustomize_repo, write_tree
from tests.helpers import git, run_cli


def _adopted(tmp_path: Path, fleet_yaml: str) -> Path:
    """The kustomize tree, with a fleet.yaml committed by hand."""
    root = kustomize_repo(tmp_path)
    write_tree(root, {"fleet.yaml": fleet_yaml, "fleet/clusters/.gitkeep": ""})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fleet")
    return root


LAYOUT = """
    apiVersion: fleet.dev/v1
    kind: Fleet
    name: acme
    registry:
      path: fleet/clusters
    environments:
      path: overlays/{env}
"""


def test_defaults_are_what_fleet_init_writes() -> None:
    layout = Layout()
    assert layout.cluster_file("eu-1") == "clusters/eu-1.yaml"
    assert layout.overlay_dir("prod") == "environments/prod"
    assert layout.environments_shown == "environments/"


def test_a_pattern_with_env_in_the_middle() -> None:
    layout = Layout("fleet/clusters", "apps/{env}/overlay")
    assert layout.env_parent == "apps" and layout.env_below == "/overlay"
    assert layout.overlay_dir("prod") == "apps/prod/overlay"
    assert layout.environments_shown == "apps/{env}/overlay/"
    dirs = {"apps": ["base", "dev", "prod"]}
    files = {"apps/dev/overlay": ["kustomization.yaml"], "apps/prod/overlay": ["Kustomization"]}
    assert layout.environments_in(lambda d: dirs.get(d, []), lambda d: files.get(d, [])) == ["dev", "prod"]


@pytest.mark.parametrize(
    ("value", "pattern", "problem"),
    [
        ("clusters", False, None),
        ("./fleet/clusters/", False, None),
        ("deploy/overlays/{env}", True, None),
        ("{env}", True, None),
        ("", False, "non-empty"),
        ("/etc/fleet", False, "relative path"),
        ("../other", False, "inside the repository"),
        ("a/../../b", False, "inside the repository"),
        (".git/clusters", False, "inside .git"),
        ("deploy/overlays", True, "exactly once"),
        ("deploy/{env}/{env}", True, "exactly once"),
        ("deploy/x{env}", True, "whole path segment"),
        ("a\\b", False, "relative path"),
    ],
)
def test_paths_are_checked(value: str, pattern: bool, problem: str | None) -> None:
    found = path_problem(value, pattern=pattern)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_registry_and_environments_where_fleet_yaml_says(tmp_path: Path) -> None:
    root = _adopted(tmp_path, LAYOUT)
    reg = load_registry(root, "HEAD")
    assert reg.layout == Layout("fleet/clusters", "overlays/{env}")
    assert layout_at(root, "HEAD") == reg.layout
    assert reg.environments == ("dev", "prod")
    done = add_cluster(root, ClusterSpec(name="eu-1", environment="prod"))
    assert done.file == "fleet/clusters/eu-1.yaml"
    assert (root / "fleet/clusters/eu-1.yaml").is_file() and not (root / "clusters").exists()
    assert list(load_registry(root, "HEAD").clusters) == ["eu-1"]
    with pytest.raises(InputError, match=r'unknown environment "qa"; overlays/ has: dev, prod'):
        add_cluster(root, ClusterSpec(name="qa-1", environment="qa"))
    remove_cluster(root, "eu-1")
    assert not (root / "fleet/clusters/eu-1.yaml").exists()


def test_cli_lists_and_shows_clusters_of_the_configured_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _adopted(tmp_path, LAYOUT)
    code, _, err = run_cli(capsys, "cluster", "add", "eu-1", "--env", "prod", "--repo", str(root))
    assert code == 0, err
    assert "fleet/clusters/eu-1.yaml" in err
    code, out, _ = run_cli(capsys, "cluster", "show", "eu-1", "--repo", str(root), "-o", "json")
    assert code == 0
    assert '"file": "fleet/clusters/eu-1.yaml"' in out and '"overlay": "overlays/prod"' in out
    code, _, err = run_cli(capsys, "cluster", "show", "eu-9", "--repo", str(root))
    assert code == 2 and 'cluster "eu-9" not found in fleet/clusters/' in err


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ("registry:\n  path: ../elsewhere\n", "fleet.yaml:5: registry.path:"),
        ("environments:\n  path: overlays\n", "fleet.yaml:5: environments.path:"),
        ("environments:\n  pattern: overlays/{env}\n", "fleet.yaml:5: environments.pattern: unknown key"),
    ],
)
def test_a_bad_layout_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: str, where: str
) -> None:
    head = "apiVersion: fleet.dev/v1\nkind: Fleet\nname: acme\n"
    root = _adopted(tmp_path, head + block)
    code, _, err = run_cli(capsys, "cluster", "list", "--repo", str(root))
    assert code == 2
    assert where in err.splitlines()[0], err
    assert "Traceback" not in err


def test_a_flux_source_must_be_a_directory_of_the_repository(tmp_path: Path) -> None:
    root = _adopted(tmp_path, LAYOUT)
    with pytest.raises(InputError, match='Flux directory "clusters/x" does not exist'):
        add_cluster(root, ClusterSpec(name="x-1", environment="zz", source=ClusterSource(flux="clusters/x")))
    write_tree(root, {"fleet/clusters/eu-1.yaml": textwrap.dedent("""
        name: eu-1
        environment: prod
        source:
          flux: clusters/eu-1
    """).lstrip()})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "eu-1")
    with pytest.raises(ConfigError) as e:
        load_registry(root, "HEAD")
    assert e.value.file == "fleet/clusters/eu-1.yaml" and e.value.line == 4 and e.value.key == "source.flux"
    assert '"clusters/eu-1" is not a directory' in e.value.message
