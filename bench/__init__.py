"""Benchmarks, run by `make bench` (python -m bench). Figures are medians of many runs."""
