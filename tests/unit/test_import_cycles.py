"""No import cycles among fleet's modules, nor among those of the DR pipeline, rollout, the Pulumi program
and the drill.

import-linter's ``acyclic_siblings`` contract (pyproject.toml) keeps sibling packages and modules from
importing each other, at every depth; it does not see a package's ``__init__`` and one of its own
modules importing each other (``fleet.cli`` and ``fleet.cli.app`` did). This test looks at the whole
module graph. grimp counts every import: at module level, inside a function, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

PACKAGES = ("fleet", "bootstrap", "rollout", "clusters", "drill")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One cycle (a chain of modules, first and last the same) per strongly connected group of modules."""
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's, iterative: a chain of imports may be deep
        work = [(start, iter(sorted(imports[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.add(m)
                    if m == node:
                        break
                if len(group) > 1:
                    groups.append(group)

    for m in sorted(imports):
        if m not in index:
            visit(m)
    cycles = []
    for group in groups:
        first = min(group)
        back = min((graph.find_shortest_chain(importer=b, imported=first) or () for b in imports[first] & group),
                   key=len)
        cycles.append([first, *back])
    return sorted(cycles)


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("lazy", [False, True], ids=["at module level", "inside a function"])
def test_a_cycle_is_found_and_named(tmp_path: Path, lazy: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a package whose __init__ and one of its modules import each other."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from cyclic.app import run\n")
    body = "def run() -> None:\n    from cyclic import low\n" if lazy else "from cyclic import low\n"
    (pkg / "app.py").write_text(body + ("" if lazy else "def run() -> None: ...\n"))
    (pkg / "low.py").write_text("import cyclic\n")
    (pkg / "leaf.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic", cache_dir=None)
    assert _cycles(graph) == [["cyclic", "cyclic.app", "cyclic.low", "cyclic"]]
