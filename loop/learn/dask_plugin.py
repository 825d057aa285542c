"""The Dask worker plugin of :mod:`loop.learn.engine` (apart: importing Dask is slow, and only
a run on a cluster needs it)."""

from __future__ import annotations

import os

from distributed import WorkerPlugin


def gpu_of(worker_name, n_gpus: int) -> int | None:
    """The GPU a worker uses on a machine with ``n_gpus``: a local cluster's workers are
    named 0, 1, ..., and worker ``k`` takes GPU ``k mod n_gpus`` (one model per GPU when there
    are as many workers as GPUs); other workers (batch jobs, whose scheduler gives each job its
    own GPUs through CUDA_VISIBLE_DEVICES) keep the first one they see. None without a GPU.

    >>> [gpu_of(k, 2) for k in (0, 1, 2)], gpu_of("SLURMCluster-3", 4), gpu_of(0, 0)
    ([0, 1, 0], 0, None)
    """
    if n_gpus < 1:
        return None
    try:
        return int(worker_name) % n_gpus
    except (TypeError, ValueError):
        return 0


WARM = ("loop.models.cellpose_seg",)
"""Modules a worker imports as it starts, before its first task: torch and Cellpose, whose
numba functions compile on import (seconds that the first image would otherwise pay)."""


MMAP_THRESHOLD = 32 * 2**20  # glibc's largest dynamic mmap threshold on 64-bit machines


def undo_malloc_trim() -> bool:
    """Give glibc's allocator back the thresholds it would choose itself, in this process.

    Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes
    malloc's mmap threshold at 128 KiB: every large array (a network's activations) is then
    mapped and unmapped, page by page, on each allocation. Measured on ``loop measure`` in one
    process (2 cores, 40 DSB images, ``bench.scale.malloc_trim_ab``): the network 3.5x slower
    per image (0.50 s against 0.14 s), the whole run 2.5x. Memory still goes back to the
    system above 64 MiB free. False where there is no glibc (macOS, Windows, musl): nothing
    to undo there.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, 2 * MMAP_THRESHOLD)
    )


class TorchThreads(WorkerPlugin):
    """Torch threads per worker, so that workers x threads does not exceed the machine's cores
    (``local``: the number of workers on this machine; 0: the worker's own thread count, one
    worker per machine assumed), each local worker's GPU (:func:`gpu_of`), malloc's own
    thresholds (:func:`undo_malloc_trim`), and the imports of :data:`WARM` done at the
    start."""

    name = "loop-torch-threads"

    def __init__(self, local: int):
        self.local = local

    def setup(self, worker) -> None:
        undo_malloc_trim()
        import torch

        share = self.local or worker.state.nthreads
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, share)))
        gpu = gpu_of(worker.name, torch.cuda.device_count() if torch.cuda.is_available() else 0)
        if gpu is not None:
            torch.cuda.set_device(gpu)  # the current GPU: the one its models load on
        import importlib

        for module in WARM:
            try:
                importlib.import_module(module)
            except ImportError:  # its first task will say what is missing
                pass
