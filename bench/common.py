"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_runs(fn: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    """Run `fn` warmup + repeat times; return the `repeat` durations in milliseconds."""
    for _ in range(warmup):
        fn()
    durations = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        durations.append((time.perf_counter() - start) * 1000.0)
    return durations


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Like `time_runs` for several functions, run in turn (a, b, a, b...), so that a
    ratio of their medians compares them under the same machine load."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    durations: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            durations[name].append((time.perf_counter() - start) * 1000.0)
    return durations


def time_blocks(
    fns: dict[str, Callable[[], object]], repeat: int, rounds: int = 3, warmup: int = 10
) -> dict[str, list[float]]:
    """Like `time_interleaved`, but each function runs `repeat` times in a row per round
    (a, a, ..., b, b, ..., a, a, ...): each is timed with its own data in the caches, as
    when it runs alone, while the rounds still spread a changing machine load over all."""
    durations: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            durations[name] += time_runs(fn, repeat=repeat, warmup=warmup)
    return durations


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """q in [0, 100], nearest-rank on the sorted values."""
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[rank]
