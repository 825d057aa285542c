"""The Dask worker plugin of :mod:`loop.learn.engine` (apart: importing Dask is slow, and only
a run on a cluster needs it)."""

from __future__ import annotations

import os

from distributed import WorkerPlugin


class TorchThreads(WorkerPlugin):
    """Torch threads per worker, so that workers x threads does not exceed the machine's cores
    (``local``: the number of workers on this machine; 0: the worker's own thread count, one
    worker per machine assumed)."""

    name = "loop-torch-threads"

    def __init__(self, local: int):
        self.local = local

    def setup(self, worker) -> None:
        import torch

        share = self.local or worker.state.nthreads
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, share)))
