"""Cellpose imported with numba's on-disk cache (loop/models/cellpose_numba.py), each check in
a fresh interpreter: the import is what is tested."""

from __future__ import annotations

import json
import subprocess
import sys

import numba
from conftest import REPO

from loop.models.cellpose_numba import caching

CHECK = """
import json
import numpy as np
from loop.models import cellpose_seg as cs
from loop.models.cellpose_numba import dynamics, metrics
import torch
cpu = torch.device("cpu")
square = np.zeros((32, 32), np.int32)
square[8:20, 8:20] = 1
dp = dynamics.masks_to_flows(square, device=cpu).astype(np.float32) * 5
prob = np.where(square > 0, 5.0, -5.0).astype(np.float32)
masks = dynamics.compute_masks(dp, prob, niter=200, device=cpu)
print(json.dumps({
    "flows": type(dynamics.steps2D._cache).__name__,
    "centres": type(dynamics._extend_centers._cache).__name__,
    "overlap": type(metrics._label_overlap._cache).__name__,
    "same": dynamics is cs.dynamics,
    "objects": int(masks.max()),
}))
"""


def fresh(env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_cellposes_compiled_functions_are_cached_on_disk(tmp_path):
    """Compiled at import (flow following, centres) or at first call (overlaps), all with a
    cache; a second process finds the files (each function's index in NUMBA_CACHE_DIR)."""
    import os

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    found = fresh(env)
    assert found == {
        "flows": "FunctionCache",
        "centres": "FunctionCache",
        "overlap": "FunctionCache",
        "same": True,
        "objects": 1,
    }
    indexes = {p.name.split("-")[0] for p in tmp_path.rglob("*.nbi")}
    assert {"dynamics.steps2D", "dynamics._extend_centers"} <= indexes
    assert fresh(env) == found  # loaded from the cache: the same results


def test_the_decorators_are_numbas_own_again_after_the_import():
    originals = numba.njit, numba.jit
    with caching():
        assert numba.njit is not originals[0]
        add = numba.njit(lambda a, b: a + b)
    assert (numba.njit, numba.jit) == originals
    assert type(add._cache).__name__ == "FunctionCache" and add(2, 3) == 5
