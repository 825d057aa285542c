import numpy as np
import pytest

from loop.config import AugmentConfig
from loop.core.augment import dihedral, dihedral_flows, elastic, photometric, undo_dihedral


@pytest.mark.parametrize("code", range(8))
def test_dihedral_round_trip(code):
    x = np.arange(12).reshape(3, 4)
    assert np.array_equal(undo_dihedral(dihedral(x, code), code), x)


def test_dihedral_rejects_bad_code():
    with pytest.raises(ValueError, match=r"give an integer in \[0, 8\)"):
        dihedral(np.zeros((2, 2)), 8)


@pytest.mark.parametrize("code", range(8))
def test_flows_follow_the_image(code):
    # flows of a transformed mask equal the transformed flows of the mask, up to Cellpose's
    # choice of centre pixel (odd-sized objects keep it under flips; a transpose may move the
    # flow at the centre itself)
    import torch
    from cellpose.dynamics import masks_to_flows

    mask = np.zeros((25, 31), np.int32)
    mask[3:12, 4:19] = 1
    mask[14:21, 8:13] = 2
    cpu = torch.device("cpu")
    expected = masks_to_flows(dihedral(mask, code), device=cpu)
    got = dihedral_flows(masks_to_flows(mask, device=cpu), code)
    differ = np.abs(got - expected).max(axis=0) > 1e-4
    assert differ.sum() <= 2, differ.sum()


def test_photometric_is_seeded_and_keeps_empty_channels():
    image = np.stack([np.random.default_rng(0).random((16, 16)), np.zeros((16, 16))]).astype(
        np.float32
    )
    config = AugmentConfig(probability=1.0)
    a = photometric(image, np.random.default_rng(1), config)
    b = photometric(image, np.random.default_rng(1), config)
    assert np.array_equal(a, b) and not np.array_equal(a, image)
    assert not a[1].any()
    off = AugmentConfig(intensity=False, noise=False, blur=False)
    assert np.array_equal(photometric(image, np.random.default_rng(1), off), image)


def test_elastic_keeps_labels_and_shape():
    image = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    labels = np.zeros((32, 32), np.int32)
    labels[8:24, 8:24] = 3
    warped, warped_labels = elastic(image, labels, np.random.default_rng(0))
    assert warped.shape == image.shape and warped_labels.shape == labels.shape
    assert set(np.unique(warped_labels)) <= {0, 3}
    assert 0.5 < (warped_labels == 3).sum() / (labels == 3).sum() < 1.5


def test_bad_probability_is_a_config_error():
    from loop.errors import ConfigError

    with pytest.raises(ConfigError, match="augment.probability"):
        AugmentConfig(probability=2)
