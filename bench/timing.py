"""Timing helpers shared by the benchmarks, and the machine a figure was measured on."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls of ``fn``, and every time (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def environment() -> dict:
    """Date, git commit, Python, platform, CPUs, numpy, torch and device of this run."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    import numpy
    import torch

    return {
        "date": date.today().isoformat(),
        "commit": commit,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
