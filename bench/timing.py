"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls of ``fn``, and every time (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times
