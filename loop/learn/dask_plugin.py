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


class TorchThreads(WorkerPlugin):
    """Torch threads per worker, so that workers x threads does not exceed the machine's cores
    (``local``: the number of workers on this machine; 0: the worker's own thread count, one
    worker per machine assumed), and each local worker's GPU (:func:`gpu_of`)."""

    name = "loop-torch-threads"

    def __init__(self, local: int):
        self.local = local

    def setup(self, worker) -> None:
        import torch

        share = self.local or worker.state.nthreads
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, share)))
        gpu = gpu_of(worker.name, torch.cuda.device_count() if torch.cuda.is_available() else 0)
        if gpu is not None:
            torch.cuda.set_device(gpu)  # the current GPU: the one its models load on
