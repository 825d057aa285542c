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
from loop.models.base import n_steps


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
    assert n_steps(8, config, warm=False) == 50
    assert n_steps(800, config, warm=False) == 60
    assert n_steps(800, config, warm=True) == 30


# --- partial labels: only known pixels train ----------------------------------------------


def test_the_loss_counts_known_pixels_only():
    torch.manual_seed(0)
    output = torch.randn(2, 3, 16, 16, requires_grad=True)
    target = torch.rand(2, 3, 16, 16)
    known = torch.zeros(2, 16, 16)
    known[:, :8] = 1.0
    loss = ct.loss_fn(output, target, known)
    changed_target = target.clone()
    changed_target[:, :, 8:] = torch.rand(2, 3, 8, 16)  # another label where nothing is known
    changed_output = output.detach().clone()
    changed_output[:, :, 8:] += 100.0
    assert torch.allclose(loss, ct.loss_fn(output, changed_target, known))
    assert torch.allclose(loss, ct.loss_fn(changed_output, target, known))
    loss.backward()
    assert output.grad[:, :, 8:].abs().max() == 0 and output.grad[:, :, :8].abs().max() > 0
    # known everywhere is the loss of a whole label
    everywhere = ct.loss_fn(output, target, torch.ones(2, 16, 16))
    assert torch.allclose(everywhere, ct.loss_fn(output, target))


def test_crops_of_a_partial_label_hold_known_pixels():
    known = np.zeros((100, 120), bool)
    known[70:80, 5:15] = True
    rng = np.random.default_rng(0)
    for _ in range(200):
        y0, x0 = ct._window(known, known.shape, 32, rng)
        assert 0 <= y0 <= 68 and 0 <= x0 <= 88
        assert known[y0 : y0 + 32, x0 : x0 + 32].any()


def test_known_masks_are_checked():
    image, mask = synthetic_nuclei((40, 40), 3, radius=(3, 5), rng=0)
    with pytest.raises(ModelError, match=r"a known mask of shape \(10, 40\)"):
        ct.prepare([image], [mask], crop=32, device=CPU, known=[np.ones((10, 40), bool)])
    with pytest.raises(ModelError, match="whose known mask holds no pixel"):
        ct.prepare([image], [mask], crop=32, device=CPU, known=[np.zeros((40, 40), bool)])
    whole = ct.prepare([image], [mask], crop=32, device=CPU, known=[np.ones((40, 40), bool)])
    assert whole.known == [None]  # known everywhere is a whole label


def test_what_is_drawn_outside_the_known_pixels_never_reaches_the_model():
    """Two labels that differ only where nothing is known train the very same network: a
    leak of unknown pixels into the loss (or into the crops' targets) would tell them apart."""
    image, mask = synthetic_nuclei((96, 96), 10, radius=(4, 7), rng=3)
    known = np.zeros(mask.shape, bool)
    known[:, :40] = True
    left = np.unique(mask[:, :40])
    known |= np.isin(mask, left[left > 0])  # drawn objects are known whole
    other = mask.copy()
    other[~known] = 0
    other[60:80, 70:90] = mask.max() + 1  # a different object where nothing is known

    def run(label):
        data = ct.prepare([image], [label], crop=32, device=CPU, known=[known])
        net = cs.build_net(TINY.nbase, CPU, seed=0)
        ct.train(
            net, data, config=TINY, augment=AugmentConfig(), steps=6, rng=np.random.default_rng(0)
        )
        return net.state_dict()

    a, b = run(mask), run(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and without the known mask the two labels do train different networks
    data = [ct.prepare([image], [m], crop=32, device=CPU) for m in (mask, other)]
    nets = [cs.build_net(TINY.nbase, CPU, seed=0) for _ in data]
    for net, d in zip(nets, data):
        ct.train(
            net, d, config=TINY, augment=AugmentConfig(), steps=6, rng=np.random.default_rng(0)
        )
    first, second = (n.state_dict() for n in nets)
    assert not all(torch.equal(first[k], second[k]) for k in first)
