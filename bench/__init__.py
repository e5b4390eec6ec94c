"""Benchmarks: not part of the test suite; `python -m bench` runs them and writes BENCHMARKS.md."""
