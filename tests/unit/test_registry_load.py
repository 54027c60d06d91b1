"""Reading the registry: schema, file/line/key errors, environments, selectors, revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ConfigError, InputError, NotFound
from fleet.registry import ClusterSpec, load_registry, parse_cluster, parse_selector
from tests.helpers import commit_file, git, new_fleet_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_fleet_repo(
        tmp_path, clusters={"eu-1": "prod", "eu-2": "prod", "us-1": "staging", "dev-1": "dev"}
    )


def test_registry_from_the_working_tree(repo: Path) -> None:
    reg = load_registry(repo)
    assert reg.revision is None
    assert reg.root == repo.resolve()
    assert list(reg.clusters) == ["dev-1", "eu-1", "eu-2", "us-1"]  # sorted by name
    assert reg.environments == ("dev", "prod", "staging")
    assert reg.settings.name == "fleet"
    assert reg.settings.git.branch == "main"


def test_registry_at_a_revision_ignores_the_working_tree(repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    (repo / "clusters" / "eu-1.yaml").write_text("not: [valid\n")  # a broken, uncommitted edit
    reg = load_registry(repo, first)
    assert reg.revision == first
    assert reg.clusters == {}
    assert set(load_registry(repo, "HEAD").clusters) == {"dev-1", "eu-1", "eu-2", "us-1"}


def test_get_names_the_missing_cluster_and_close_names(repo: Path) -> None:
    reg = load_registry(repo)
    assert reg.get("eu-1").environment == "prod"
    with pytest.raises(NotFound) as e:
        reg.get("eu-3")
    assert e.value.message == 'cluster "eu-3" not found in clusters/'
    assert e.value.hint is not None and "eu-1" in e.value.hint and "eu-2" in e.value.hint


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        (None, ["dev-1", "eu-1", "eu-2", "us-1"]),
        ("env=prod", ["eu-1", "eu-2"]),
        ("env!=prod", ["dev-1", "us-1"]),
        ("env in (dev,staging)", ["dev-1", "us-1"]),
        ("env notin (dev, staging),name!=eu-2", ["eu-1"]),
        ("wave=0,provider=local,region=local", ["dev-1", "eu-1", "eu-2", "us-1"]),
        ("tier", ["eu-1"]),
        ("!tier,env=prod", ["eu-2"]),
        ("tier==gold", ["eu-1"]),
    ],
)
def test_select(repo: Path, selector: str | None, names: list[str]) -> None:
    commit_file(
        repo, "clusters/eu-1.yaml", "name: eu-1\nenvironment: prod\nlabels:\n  tier: gold\n", "label eu-1"
    )
    assert [c.name for c in load_registry(repo).select(selector)] == names


@pytest.mark.parametrize("bad", ["env=", "=x", "env in (a", "a b"])
def test_bad_selectors_are_input_errors(bad: str) -> None:
    if bad == "env=":  # an empty value is valid in kubectl
        assert parse_selector(bad)[0].values == ("",)
        return
    with pytest.raises(InputError, match="invalid selector"):
        parse_selector(bad)


def _error(repo: Path, name: str, text: str) -> ConfigError:
    (repo / "clusters" / f"{name}.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_registry(repo)
    return e.value


def test_unknown_key_names_file_line_key_and_allowed_keys(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: dev\nregoin: eu\n")
    assert err.file == "clusters/qa-1.yaml" and err.line == 3 and err.key == "regoin"
    assert 'unknown key (did you mean "region"?)' in err.message
    assert "allowed keys: apiVersion, kind, name, environment, provider, region" in err.message


def test_unknown_nested_key_lists_the_nested_model_keys(repo: Path) -> None:
    err = _error(
        repo,
        "qa-1",
        "name: qa-1\nenvironment: dev\ngates:\n  timeout: 5\n  custom:\n    - kind: X\n"
        "      apiVersion: v1\n      name: x\n      colour: red\n",
    )
    assert err.line == 9 and err.key == "gates.custom[0].colour"
    assert "allowed keys: apiVersion, kind, name, namespace, condition, status" in err.message


def test_wrong_type_names_line_and_value(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: dev\nwave: three\n")
    assert str(err).startswith("clusters/qa-1.yaml:3: wave: Input should be a valid integer")
    assert "'three'" in err.message


def test_number_where_a_string_is_expected_says_to_quote_it(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: dev\nvars:\n  REPLICAS: 3\n")
    assert err.line == 4 and err.key == "vars.REPLICAS"
    assert "quote it" in err.message


def test_literal_lists_allowed_values(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: dev\nprovider: gcp\n")
    assert err.line == 3 and err.key == "provider"
    assert err.message.endswith('provider: "gcp" is not allowed; allowed values: local, kind, eks, gke, aks')


def test_missing_required_key(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nregion: eu\n")
    assert err.line == 1 and err.key == "environment" and "required key is missing" in err.message


def test_several_errors_first_by_line_others_in_the_hint(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: dev\nwave: x\nprovider: gcp\n")
    assert err.line == 3 and err.key == "wave"
    assert err.hint is not None and "line 4: provider" in err.hint


def test_unknown_environment_lists_environments(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\n\nenvironment: qa\n")
    assert err.line == 3 and err.key == "environment"
    assert 'unknown environment "qa"; environments/ has: dev, prod, staging' in err.message


def test_file_name_must_match_the_name(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-2\nenvironment: dev\n")
    assert err.line == 1 and err.key == "name"
    assert 'name "qa-2" does not match the file name qa-1.yaml' in err.message


def test_name_must_be_a_dns_label(repo: Path) -> None:
    (repo / "clusters" / "Bad_Name.yaml").write_text("name: Bad_Name\nenvironment: dev\n")
    with pytest.raises(ConfigError, match=r"is not <DNS label>\.yaml"):
        load_registry(repo)


def test_yml_files_are_refused_with_a_hint(repo: Path) -> None:
    (repo / "clusters" / "qa-1.yml").write_text("name: qa-1\nenvironment: dev\n")
    with pytest.raises(ConfigError) as e:
        load_registry(repo)
    assert e.value.hint == "rename it to clusters/qa-1.yaml"


def test_malformed_yaml(repo: Path) -> None:
    err = _error(repo, "qa-1", "name: qa-1\nenvironment: [dev\n")
    assert err.file == "clusters/qa-1.yaml" and err.line == 3 and "invalid YAML" in err.message


def test_not_a_mapping(repo: Path) -> None:
    err = _error(repo, "qa-1", "- name: qa-1\n")
    assert err.line == 1 and "expected a mapping" in err.message


def test_other_files_in_clusters_are_ignored(repo: Path) -> None:
    assert (repo / "clusters" / "README.md").is_file()
    (repo / "clusters" / ".hidden.yaml").write_text("junk: [")
    assert "README" not in load_registry(repo).clusters


def test_fleet_yaml_errors(repo: Path) -> None:
    (repo / "fleet.yaml").write_text("apiVersion: fleet.dev/v1\nkind: Fleet\ngit:\n  branch: 3\n  remot: x\n")
    with pytest.raises(ConfigError) as e:
        load_registry(repo)
    assert str(e.value).startswith("fleet.yaml:4: git.branch: Input should be a valid string")
    (repo / "fleet.yaml").unlink()
    with pytest.raises(ConfigError, match=r"fleet\.yaml: not found at the repo root"):
        load_registry(repo)


def test_parse_cluster_round_trip() -> None:
    spec = parse_cluster("name: a\nenvironment: dev\nwave: 2\nlabels: {team: web}\n", "clusters/a.yaml")
    assert spec == ClusterSpec(name="a", environment="dev", wave=2, labels={"team": "web"})


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a git repository"):
        load_registry(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_registry(tmp_path / "nope")


def test_unknown_revision(repo: Path) -> None:
    with pytest.raises(NotFound, match='revision "nope" not found'):
        load_registry(repo, "nope")
