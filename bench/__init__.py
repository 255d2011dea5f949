"""Benchmarks: `python -m bench` runs every `bench_*.py` module's `run(env)` and writes bench/RESULTS.md."""
