"""YAML with line numbers: positions of keys and items, and clear errors for bad YAML."""

from __future__ import annotations

import pytest

from fleet.errors import ConfigError
from fleet.registry.yamlpos import dotted, load_yaml

TEXT = """\
name: eu-1
labels:
  team: web
gates:
  custom:
    - kind: Deployment
      name: web
"""


def test_positions_of_keys_and_items() -> None:
    data, pos = load_yaml(TEXT, "clusters/eu-1.yaml")
    assert data["gates"]["custom"][0]["name"] == "web"
    assert pos.line_of(("name",)) == 1
    assert pos.line_of(("labels", "team")) == 3
    assert pos.line_of(("gates", "custom", 0)) == 6
    assert pos.line_of(("gates", "custom", 0, "name")) == 7
    # a missing key: the line of the nearest mapping that holds it
    assert pos.line_of(("gates", "custom", 0, "apiVersion")) == 6
    assert pos.line_of(("nothing",)) == 1


def test_dotted() -> None:
    assert dotted(("gates", "custom", 0, "kind")) == "gates.custom[0].kind"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("name: a\nlabels: [x\n", 3, "invalid YAML"),
        ("name: a\nname: b\n", 2, "duplicate key (first on line 1)"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("a: &x [*x]\n", 1, "nested too deeply"),
        ("base: &b {a: 1}\nother:\n  <<: *b\n", 3, "merge keys"),
    ],
)
def test_bad_yaml_names_file_and_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_yaml(text, "clusters/x.yaml")
    assert e.value.file == "clusters/x.yaml"
    assert e.value.line == line
    assert needle in e.value.message
    assert e.value.message.startswith(f"clusters/x.yaml:{line}: ")


def test_empty_document_is_none() -> None:
    assert load_yaml("# only a comment\n", "f.yaml")[0] is None
