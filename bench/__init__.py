"""Live Mode benchmarks: `python bench/run.py [--quick]` (see BENCHMARKS.md)."""
