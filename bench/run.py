"""Run every benchmark module: each ``bench/<name>_bench.py`` with a ``main()``.

    python -m bench.run              # all of them
    python -m bench.run render       # only those whose name contains "render"
    python -m bench.run startup      # CLI start-up: whole processes side by side (bench/startup_bench.py)
    python -m bench.run flux         # expanding a Flux repo of 200 Kustomizations (bench/flux_expand_bench.py)
    python -m bench.run diff_base    # diff --base of a one-overlay change, 1,000 clusters (bench/diff_base_bench.py)

Each module prints a small table and writes JSON to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(filters: list[str] | None = None) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("*_bench.py"))
    return [n for n in names if not filters or any(f in n for f in filters)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = discover(args)
    if not names:
        print(f"no bench modules match {args}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if run is None:
            continue
        print(f"► {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            run([])
        except Exception as e:  # one failing bench must not hide the others
            failed.append(name)
            print(f"✗ {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        print(f"✔ {name} ({time.perf_counter() - start:.1f}s)", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
