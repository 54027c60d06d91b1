"""Side-by-side benchmarks (not timed tests): ``python -m bench.run`` runs every ``bench/*_bench.py``.

Each writes its figures under :data:`RESULTS` (``bench/results/``, committed), or under
``$FLEET_BENCH_RESULTS`` when set: the integration tier's tiny run of every bench
(tests/integration/test_bench_smoke.py) writes there, never over the committed figures."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(os.environ.get("FLEET_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
