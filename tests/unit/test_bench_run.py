"""bench/run.py finds every bench/*_bench.py module with a main()."""

from __future__ import annotations

from bench.run import discover, main


def test_discovers_bench_modules() -> None:
    names = discover()
    assert "render_bench" in names
    assert all(n.endswith("_bench") for n in names)
    assert discover(["render"]) == ["render_bench"]


def test_unknown_filter_is_an_error() -> None:
    assert main(["no-such-bench"]) == 2
