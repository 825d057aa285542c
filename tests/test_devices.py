"""Devices (loop/models/devices.py): the settings that fill a GPU, on CUDA only."""

import pytest
import torch

from loop.config import ModelConfig
from loop.config_parse import parse_config
from loop.errors import ConfigError
from loop.models.base import Recipe
from loop.models.cellpose_family import GPU_BATCH, CellposeFamily
from loop.models.cellpose_net import STOCK_NBASE
from loop.models.devices import device_of, inference_batch, on_device

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")
FILL = {"nbase": STOCK_NBASE, "batch_size": GPU_BATCH}


def test_on_a_gpu_the_defaults_left_as_they_are_fill_it():
    section, changes = on_device(ModelConfig(), CUDA, FILL)
    assert changes == FILL
    assert (section.nbase, section.batch_size) == (STOCK_NBASE, GPU_BATCH)
    assert section.crop == ModelConfig().crop  # what the GPU values do not name stays


def test_what_the_user_set_stays_and_the_cpu_is_unchanged():
    mine = ModelConfig(nbase=(2, 16, 32, 64), batch_size=8)  # batch_size = its default
    section, changes = on_device(mine, CUDA, FILL)
    assert changes == {"batch_size": GPU_BATCH} and section.nbase == (2, 16, 32, 64)
    default = ModelConfig()
    assert on_device(default, CPU, FILL) == (default, {})  # CPU defaults unchanged
    off = ModelConfig(fill_gpu=False)
    assert on_device(off, CUDA, FILL) == (off, {})


def test_the_cellpose_family_keeps_a_files_widths():
    family = CellposeFamily()
    fresh = Recipe(params={}, digest={}, seed=0, steps=10)
    warm = Recipe(params={}, digest={}, seed=0, steps=10, warm=True)
    assert family.gpu_values(ModelConfig(), fresh) == FILL
    assert family.gpu_values(ModelConfig(), warm) == {"batch_size": GPU_BATCH}
    pretrained = ModelConfig(pretrained="cyto3")
    assert family.gpu_values(pretrained, fresh) == {"batch_size": GPU_BATCH}


def test_inference_batches_and_the_device_of_this_machine():
    assert inference_batch(CPU) == 8 and inference_batch(CUDA) == 64
    assert inference_batch(CPU, whole=True) == 2 and inference_batch(CUDA, whole=True) == 64
    assert device_of(False) == CPU
    if not torch.cuda.is_available():
        assert device_of(None) == CPU and device_of(True) == CPU


def test_fill_gpu_is_a_boolean_in_the_config():
    off = parse_config('task = "segmentation"\n[model]\nfill_gpu = false\n')
    assert off.model.fill_gpu is False
    with pytest.raises(ConfigError, match="fill_gpu"):
        parse_config('task = "segmentation"\n[model]\nfill_gpu = "yes"\n')
