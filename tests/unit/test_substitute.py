"""Flux postBuild substitution semantics (fluxcd/pkg/envsubst, strict mode)."""

from __future__ import annotations

import pytest

from fleet.errors import MissingVariables, RenderError, SubstitutionError
from fleet.rendering.build import substitute
from fleet.rendering.substitute import variables_in

# Vectors from fluxcd/pkg/envsubst's own tests.
FLUX_VECTORS = [
    ({"var01": "abcdEFGH28ij"}, "${#var01}", "12"),
    ({"var01": "abcdEFGH28ij"}, "${var01^}", "AbcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${var01^^}", "ABCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,}", "aBCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,,}", "abcdefgh28ij"),
    ({"p": "/home/bozo/ideas/thoughts.for.today"}, "${p:11}", "ideas/thoughts.for.today"),
    ({"p": "/home/bozo/ideas/thoughts.for.today"}, "${p:11:5}", "ideas"),
    ({"var": "abc"}, "${var=xyz}", "abc"),
    ({}, "${var=xyz}", "xyz"),
    ({"d": "foo"}, "something ${var=${d}}", "something foo"),
    ({"d": "foo1"}, "foo: ${var=prefix${d}-suffix}", "foo: prefixfoo1-suffix"),
    ({}, "${var:=xyz}", "xyz"),
    ({"s": "abcABC123ABCabc"}, "${s/%abc/XYZ}", "abcABC123ABCXYZ"),
    ({"s": "abcABC123ABCabc"}, "${s/#abc/XYZ}", "XYZABC123ABCabc"),
    ({"s": "somevalue"}, "${s/#/prefix-}", "prefix-somevalue"),
    ({"s": "somevalue"}, "${s/%/-suffix}", "somevalue-suffix"),
    ({"s": "abcABC123ABCabc"}, "${s//abc/xyz}", "xyzABC123ABCxyz"),
    ({"s": "abcABC123ABCabc"}, "${s/abc/xyz}", "xyzABC123ABCabc"),
    ({"f": "bash.string.txt"}, "${f#*.}", "string.txt"),
    ({"f": "/path/to/file"}, "${f#*/}", "path/to/file"),
    ({"f": "bash.string.txt"}, "${f##*.}", "txt"),
    ({"f": "/path/to/file"}, "${f##*/}", "file"),
    ({"f": "bash.string.txt"}, "${f%.*}", "bash.string"),
    ({"f": "bash.string.txt"}, "${f%%.*}", "bash"),
    ({"v": "abcdEFGH28ij"}, "${var=${v^^}}", "ABCDEFGH28IJ"),
    ({"v": "abcdEFGH28ij"}, "$${v}", "${v}"),
    ({"v": "ab"}, "some text ${v}$${var$${v}$v${v}", "some text ab${var${v}$vab"),
    ({"d": "foo"}, "something $${var=${d}}", "something ${var=foo}"),
    ({"s": "foo/bar/baz"}, r"${s//\//-}", "foo-bar-baz"),
    ({"s": "foo.bar"}, "${s/./}", "foobar"),
]


@pytest.mark.parametrize(("params", "text", "want"), FLUX_VECTORS)
def test_flux_vectors(params: dict[str, str], text: str, want: str) -> None:
    assert substitute(text, params) == want


def test_defaults_apply_when_unset_or_empty() -> None:
    assert substitute("replicas: ${REPLICAS:=2}", {}) == "replicas: 2"
    assert substitute("replicas: ${REPLICAS:=2}", {"REPLICAS": ""}) == "replicas: 2"
    assert substitute("replicas: ${REPLICAS:=2}", {"REPLICAS": "5"}) == "replicas: 5"
    assert substitute("x: ${A:-b}", {}) == "x: b"


def test_dollar_var_without_braces_is_text_and_double_dollar_is_an_escape() -> None:
    assert substitute("echo $HOME $$ $${HOME}", {"HOME": "/root"}) == "echo $HOME $ ${HOME}"


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(MissingVariables) as e:
        substitute("a: ${A}\nb: ${B^^}\nc: ${A}\nd: ${C:=ok}", {}, where=" in ConfigMap/x")
    assert e.value.names == ("A", "B")
    assert e.value.message == 'variables "A", "B" not set in ConfigMap/x'
    assert e.value.exit_code == 2
    assert isinstance(e.value, RenderError)


def test_missing_variable_inside_a_default_is_reported() -> None:
    with pytest.raises(MissingVariables, match='"B"'):
        substitute("${A:=${B}}", {"A": "set"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x: ${", "unable to parse variable name"),
        ("x: ${VAR", "missing closing brace"),
        ("x: ${VAR-default}", "missing closing brace"),  # Flux's parser has no "-" operator
        ("x: ${ VAR}", "unable to parse variable name"),
        ("x: ${VAR^^^}", "bad substitution"),
    ],
)
def test_malformed_expressions_fail_clearly(text: str, problem: str) -> None:
    with pytest.raises(SubstitutionError, match=problem):
        substitute(text, {"VAR": "1"})


def test_text_without_dollar_is_returned_as_is() -> None:
    text = "a: 1\nb: [x, y]\n"
    assert substitute(text, {}) is text


def test_variables_in_lists_names_in_order() -> None:
    assert variables_in("${B} ${A:=${C}} $${D} ${B}") == ("B", "A", "C")


# ---- escapes and values as Flux's controller has them (issue 12) ------------------------------

FLUX_ESCAPES = [
    ({"v": "ab"}, "$$${v}", "$ab"),  # the escape takes two "$"; the third starts a variable
    ({"v": "ab"}, "$$$$", "$$"),
    ({"v": "ab"}, "$$$${v}", "$${v}"),
    ({"v": "ab"}, "a$$b", "a$b"),
    ({"v": "a$b"}, "${v/$$/-}", "a-b"),  # "$$" is an escaped "$" in replace arguments too
    ({"s": "foo/bar"}, r"${s/\//-}", "foo-bar"),
    ({"s": "foo.bar"}, "${s/./}", "foobar"),
    ({"d": "foo1"}, "foo: ${var=${d}-suffix}", "foo: foo1-suffix"),
    ({}, "\\\\something ${var=x}", "\\\\something x"),  # backslashes outside an expansion are text
]


@pytest.mark.parametrize(("vars", "text", "expected"), FLUX_ESCAPES)
def test_escapes_as_flux(vars: dict[str, str], text: str, expected: str) -> None:
    assert substitute(text, vars) == expected


def test_values_lose_newlines_as_flux_does() -> None:
    # fleet refuses such values at the door; the function itself matches the controller
    assert substitute("replicas: ${R}\n", {"R": "2\n  paused: true"}) == "replicas: 2  paused: true\n"


@pytest.mark.parametrize("name", ["1A", "A-B", "A B", "A\n", "É"])
def test_invalid_variable_names_are_refused_as_flux_does(name: str) -> None:
    with pytest.raises(SubstitutionError, match=r"variable name .* is invalid"):
        substitute("${X:=1}", {name: "1"})


def test_a_disabled_object_is_left_alone() -> None:
    from fleet.rendering.build import _split

    docs = _split(
        "kind: A\nmetadata:\n  name: a\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n"
        "data: ${X}\n---\nkind: B\nmetadata:\n  name: b\n  labels:\n"
        "    kustomize.toolkit.fluxcd.io/substitute: disabled\n---\nkind: C\nmetadata:\n  name: c\n"
    )
    assert [d.substitute for d in docs] == [False, False, True]
