"""Side-by-side benchmarks (not timed tests): ``python -m bench.run`` runs every ``bench/*_bench.py``."""
