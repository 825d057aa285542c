"""Training a Cellpose network with our seeded loop (loop/models/cellpose_train.py)."""

import numpy as np
import pytest
import torch
from conftest import CPU, TINY

from loop.config import AugmentConfig, ModelConfig
from loop.data.synthetic import synthetic_nuclei
from loop.errors import ModelError
from loop.models import cellpose_seg as cs
from loop.models import cellpose_train as ct


def test_prepare_pads_small_images_and_checks_shapes():
    image, mask = synthetic_nuclei((20, 24), 2, radius=(3, 4), rng=0)
    data = ct.prepare([image], [mask], crop=32, device=CPU)
    assert data.images[0].shape == (2, 32, 32) and data.targets[0].shape == (3, 32, 32)
    with pytest.raises(ModelError, match=r"image of shape \(20, 24\) has a mask of shape"):
        ct.prepare([image], [mask[:10]], crop=32, device=CPU)


def test_training_lowers_the_loss_and_is_reproducible(tiny_data):
    _, data = tiny_data

    def run(seed):
        net = cs.build_net(TINY.nbase, CPU, seed=seed)
        return ct.train(
            net,
            data,
            config=TINY,
            augment=AugmentConfig(),
            steps=30,
            rng=np.random.default_rng(seed),
        )

    a, b, c = run(0), run(0), run(1)
    assert a.losses[-1] < a.losses[0]
    same = all(
        torch.equal(x, y) for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values())
    )
    assert same and a.losses == b.losses
    assert a.losses != c.losses


def test_training_without_images_is_an_error():
    with pytest.raises(ModelError, match="no labeled images to train on"):
        ct.train(
            cs.build_net(TINY.nbase, CPU),
            ct.TrainingData([], [], []),
            config=TINY,
            augment=AugmentConfig(),
            steps=1,
            rng=np.random.default_rng(0),
        )


def test_n_steps_bounds_and_warm_fraction():
    config = ModelConfig(epochs=10, min_steps=50, max_steps=60, warm_fraction=0.5)
    assert ct.n_steps(8, config, warm=False) == 50
    assert ct.n_steps(800, config, warm=False) == 60
    assert ct.n_steps(800, config, warm=True) == 30
