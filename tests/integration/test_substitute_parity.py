"""fleet's post-build substitution (fleet/rendering/substitute.py) against Flux's own
(``github.com/fluxcd/pkg/kustomize``'s SubstituteVariables, run by fleet-build) on what a build prints:
every expression fleet supports gives the same object, and a variable without a value fails in both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.adapters import fluxbuild
from fleet.errors import MissingVariables, RenderError
from fleet.rendering import build
from fleet.rendering.substitute import substitute
from tests.helpers import commit_file, need_tool, new_fleet_repo

pytestmark = pytest.mark.integration

VARS = {"A": "hello", "B": "", "N": "007", "P": "a/b/c.txt", "U": "Mixed Case", "L": "x\ny", "T": "true"}
EXPRESSIONS = [
    "${A}", "${A:=d}", "${B:=d}", "${B:-d}", "${B=d}", "${C:=d}", "${C=d}", "${#A}", "${A^}", "${A^^}",
    "${U,}", "${U,,}", "${A:1}", "${A:1:2}", "${P#*/}", "${P##*/}", "${P%/*}", "${P%%/*}", "${A/l/L}",
    "${A//l/L}", "${A/#h/H}", "${A/%o/O}", "$${A}", "$$${A}", "$A", "pre-${A}-post", "${N}", "'${N}'",
    '"${N}"', "${L}", "${C:=${A}}", "${B:+alt}", "${B:?x}", "${A:+alt}", "${T}", '"${T}"',
]


@pytest.fixture(autouse=True)
def builder() -> None:
    need_tool("fleet-build")
    build.clear_cache()


def test_fleet_substitutes_built_objects_as_flux_does(tmp_path: Path) -> None:
    repo = new_fleet_repo(tmp_path)
    data = "".join(f"  k{i}: {e}\n" for i, e in enumerate(EXPRESSIONS))
    commit_file(repo, "exprs/cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: exprs\ndata:\n{data}")
    commit_file(repo, "exprs/kustomization.yaml", "resources: [cm.yaml]\n")
    from fleet.registry.load import open_repo

    g = open_repo(repo)
    [doc] = build.build_directory(g, g.resolve("HEAD"), "exprs")
    ours = yaml.safe_load(substitute(doc.text, VARS))["data"]
    flux = yaml.safe_load(fluxbuild.substitute([doc.text], VARS)[0])["data"]
    differ = {EXPRESSIONS[int(k[1:])]: (ours[k], flux.get(k)) for k in ours if ours[k] != flux.get(k)}
    assert differ == {}
    assert ours["k0"] == "hello" and len(ours) == len(EXPRESSIONS)


def test_a_variable_without_a_value_fails_in_both(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  v: ${MISSING}\n"
    with pytest.raises(MissingVariables):
        substitute(text, VARS)
    with pytest.raises(RenderError, match="MISSING"):
        fluxbuild.substitute([text], VARS)


def test_an_opted_out_object_is_left_alone_by_both() -> None:
    """fleet marks it when it splits a build (and never substitutes it); Flux returns it unchanged."""
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n"
            "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  v: ${MISSING}\n")
    [doc] = build._split(text)
    assert doc.substitute is False
    assert fluxbuild.substitute([text], VARS) == [text]
