"""Where a PyTorch model runs, and the settings that fill a GPU."""

from __future__ import annotations

from dataclasses import fields, replace

import torch


def device_of(gpu: bool | None = None) -> torch.device:
    """CUDA when present (and not refused): the current GPU, by its index, so that the rows
    say which GPU measured them (``cuda:1``); else the CPU."""
    if gpu is not False and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def on_device(section, device: torch.device, gpu: dict) -> tuple[object, dict]:
    """A config section with the settings that fill a GPU, when ``device`` is one.

    On CUDA, each setting named in ``gpu`` that the section leaves at its default (its CPU
    default) takes the GPU's value; a setting the user changed stays. On the CPU, or when the
    section's ``fill_gpu`` is false, the section is returned as it is.

    Parameters
    ----------
    section : frozen dataclass
        E.g. :class:`loop.config.ModelConfig`.
    gpu : dict
        Setting name -> its value on a GPU.

    Returns
    -------
    (section, changes)
        ``changes``: name -> value of each setting changed (recorded with the model).

    >>> from loop.config import ModelConfig
    >>> fill = {"batch_size": 32}
    >>> on_device(ModelConfig(), torch.device("cuda"), fill)[1]
    {'batch_size': 32}
    >>> on_device(ModelConfig(batch_size=16), torch.device("cuda"), fill)[1]
    {}
    >>> on_device(ModelConfig(), torch.device("cpu"), fill)[1]
    {}
    """
    if device.type != "cuda" or not getattr(section, "fill_gpu", True):
        return section, {}
    defaults = {f.name: f.default for f in fields(section)}
    changes = {
        name: value
        for name, value in gpu.items()
        if getattr(section, name) == defaults[name] and value != defaults[name]
    }
    return replace(section, **changes), changes


def inference_batch(device: torch.device, *, whole: bool = False) -> int:
    """Inputs per forward pass: tiles of 224 px (Cellpose's tiled inference), or whole images
    counted in 256 x 256 images (``whole``: the batched passes that rank the pool).

    On a GPU 64 either way (fewer, larger kernels and transfers keep it busy). On the CPU, 8
    tiles, but 2 whole images: on 2 cores (``bench.scale.batch_sweep``: the default widths,
    16 DSB images of 256 px; two runs) passes of 8 images took 0.059 and 0.047 s an image,
    of 2 images 0.032 and 0.039 (a larger batch's activations no longer fit the caches);
    tiles ran fastest 8 or more a pass. Not measured on a many-core CPU.

    >>> inference_batch(torch.device("cpu")), inference_batch(torch.device("cpu"), whole=True)
    (8, 2)
    >>> inference_batch(torch.device("cuda", 0), whole=True)
    64
    """
    if device.type == "cuda":
        return 64
    return 2 if whole else 8
