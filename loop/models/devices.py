"""Where a PyTorch model runs."""

from __future__ import annotations

import torch


def device_of(gpu: bool | None = None) -> torch.device:
    """CUDA when present (and not refused): the current GPU, by its index, so that the rows
    say which GPU measured them (``cuda:1``); else the CPU."""
    if gpu is not False and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
