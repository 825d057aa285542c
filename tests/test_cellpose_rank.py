"""The whole-image passes that rank the pool (loop/models/cellpose_rank.py): Cellpose's own
outputs, and the measures computed where the outputs are (a GPU's tensors, here CPU tensors)
equal to those computed from NumPy arrays."""

import numpy as np
import pytest
import torch
from conftest import CPU, TINY

from loop.config import AugmentConfig
from loop.models import cellpose_rank as rank
from loop.models import cellpose_seg as cs
from loop.models import cellpose_train as ct
from loop.models.cellpose_measures import flip_disagreement, probability_entropy


def test_whole_image_outputs_are_those_of_cellposes_one_pass():
    """The batched whole-image pass that ranks the pool pads as Cellpose does (to 16, plus an
    8 px border): its outputs are ``core.run_net``'s on the same image in one tile (without
    the border, the outputs near the edge differ and masks from them lose AP)."""
    net = cs.build_net((2, 8, 16, 32), CPU)
    net.eval()
    rng = np.random.default_rng(3)
    for shape in ((64, 64), (90, 100)):
        x = cs.to_input(rng.random(shape).astype(np.float32))
        ((y, style),) = rank.forward(net, [x])
        bsize = cs.tile_side(shape, 768)
        expected, _ = cs.core.run_net(net, x.transpose(1, 2, 0)[None], bsize=bsize)
        assert y.shape == (3, *shape)
        np.testing.assert_allclose(y, expected[0].transpose(2, 0, 1), atol=1e-4)


def test_measures_computed_on_tensors_are_those_of_arrays(tiny_data):
    """``keep=True`` (what a GPU does: the outputs stay tensors on the device and the measures
    are computed there; here CPU tensors) gives the measures, cell probability and style of
    the NumPy path, to float rounding."""
    pairs, data = tiny_data
    net = cs.build_net(TINY.nbase, CPU)
    ct.train(
        net, data, config=TINY, augment=AugmentConfig(), steps=60, rng=np.random.default_rng(0)
    )
    images = [p[0] for p in pairs]
    arrays = rank.fast_measures(net, images, config=TINY)  # the CPU's default: NumPy
    tensors = rank.fast_measures(net, images, config=TINY, keep=True)
    assert sum(a.measures["n_objects"] for a in arrays) > 0  # something to compare
    for a, t in zip(arrays, tensors, strict=True):
        assert isinstance(t.cellprob, np.ndarray)
        assert t.measures == pytest.approx(a.measures, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(t.cellprob, a.cellprob, atol=1e-6)
        np.testing.assert_allclose(t.style, a.style, atol=1e-6)
    ((y, _),) = rank.forward(net, [cs.to_input(images[0])], keep=True)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32


def test_the_measures_take_arrays_and_tensors_alike():
    rng = np.random.default_rng(0)
    y, z = (rng.normal(0, 3, (3, 16, 16)).astype(np.float32) for _ in range(2))
    assert flip_disagreement(torch.from_numpy(y), torch.from_numpy(z)) == pytest.approx(
        flip_disagreement(y, z), rel=1e-6
    )
    p = rng.random((16, 16)).astype(np.float32)
    assert probability_entropy(torch.from_numpy(p)) == pytest.approx(probability_entropy(p))
    assert probability_entropy(torch.zeros(4, 4)) == 0.0
    np.testing.assert_array_equal(rank._unflipped(torch.from_numpy(y)).numpy(), rank._unflipped(y))
