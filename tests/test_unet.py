"""The U-Net (MONAI's BasicUNet): seeded building and training, files written and read back,
training crops on partial labels, and prediction with its measures."""

import numpy as np
import pytest

from loop.config import AugmentConfig
from loop.config_unet import UNetConfig
from loop.core.classmaps import class_scores
from loop.core.regions import grid
from loop.errors import ConfigError, ModelError
from loop.models import unet
from loop.types import PartialMask

SMALL = UNetConfig(features=(4, 4, 8, 8, 16, 4), crop=32, batch_size=4, tile=64, dropout=0.0)


def blobs(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A dark image with bright discs, and its two-class map."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    classes = np.zeros((size, size), np.uint8)
    for _ in range(4):
        r, c = rng.integers(8, size - 8, 2)
        classes[(rows - r) ** 2 + (cols - c) ** 2 < 36] = 1
    image = (classes * 150 + rng.normal(40, 8, (size, size))).clip(0, 255).astype(np.uint8)
    return image, classes


def test_input_has_the_asked_channels_normalised():
    rgb = np.random.default_rng(0).integers(0, 255, (8, 9, 3)).astype(np.uint8)
    assert unet.to_input(rgb, 1).shape == (1, 8, 9)
    grey = unet.to_input(rgb[..., 0], 3)
    assert grey.shape == (3, 8, 9) and np.allclose(grey[0], grey[2])
    assert 0.9 < float(np.percentile(unet.to_input(rgb, 1), 99.8)) <= 1.01


def test_building_is_seeded():
    a, b, c = (unet.build(SMALL, 2, seed=s) for s in (1, 1, 2))
    wa, wb, wc = (next(n.parameters()).detach().numpy() for n in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_a_crop_centres_on_labeled_pixels_and_keeps_unknown_ones_unknown():
    image, classes = blobs(0)
    known = np.zeros(classes.shape, bool)
    known[40:50, 40:50] = True
    (example,) = unet.prepare([image], [PartialMask(classes, known)], channels=1)
    x, y = unet.sample(example, 32, np.random.default_rng(0), AugmentConfig(flips=False))
    assert x.shape == (1, 32, 32) and y.shape == (32, 32)
    assert (y != unet.UNKNOWN).sum() == 100  # the whole known square is inside the crop
    nothing = PartialMask(classes, np.zeros(classes.shape, bool))
    assert unet.prepare([image], [nothing], channels=1) == []


def test_a_small_image_is_padded_to_the_crop():
    image, classes = blobs(0, size=20)
    (example,) = unet.prepare([image], [classes], channels=1)
    x, y = unet.sample(example, 32, np.random.default_rng(0), AugmentConfig())
    assert x.shape == (1, 32, 32) and (y == unet.UNKNOWN).sum() == 32 * 32 - 400


def train(seed: int, steps: int = 150):
    data = [blobs(i) for i in range(4)]
    net = unet.build(SMALL, 2, seed=seed)
    examples = unet.prepare([d[0] for d in data], [d[1] for d in data], channels=1)
    result = unet.train(
        net,
        examples,
        config=SMALL,
        augment=AugmentConfig(),
        steps=steps,
        rng=np.random.default_rng(seed),
        device="cpu",
    )
    return net, result


@pytest.mark.slow
def test_training_learns_and_is_reproducible(tmp_path):
    net, result = train(0)
    image, classes = blobs(99)
    seg = unet.segment(net, image, config=SMALL)
    assert class_scores(classes, seg.classes, ["bg", "disc"])["mean_dice"] > 0.8
    assert result.losses[-1] < result.losses[0]
    again, repeat = train(0)
    assert repeat.losses == result.losses
    assert 0 <= seg.measures["entropy"] <= 1 and 0 <= seg.measures["flip"] <= 1
    assert seg.embedding.shape == (16,) and seg.probabilities.shape == (2, 64, 64)
    (regions,) = unet.region_measures(net, [image], [grid(64, 64, 32)], config=SMALL)
    assert regions.shape == (4, 2) and (0 <= regions).all() and (regions <= 1).all()
    whole = regions.mean(axis=0)  # equal regions: their mean is the image's
    assert whole == pytest.approx([seg.measures["flip"], seg.measures["entropy"]], abs=1e-4)
    path = unet.save(net, tmp_path / "m.pt")
    loaded = unet.load(path, "cpu")
    assert np.array_equal(unet.segment(loaded, image, config=SMALL).classes, seg.classes)


def test_a_file_that_is_no_unet_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="is missing: run `loop train` again"):
        unet.load(tmp_path / "none.pt", "cpu")
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="is not a U-Net model written by loop"):
        unet.load(tmp_path / "bad.pt", "cpu")


def test_training_without_labeled_pixels_is_one_clear_error():
    with pytest.raises(ModelError, match="no labeled pixels to train on"):
        unet.train(
            unet.build(SMALL, 2, seed=0),
            [],
            config=SMALL,
            augment=AugmentConfig(),
            steps=1,
            rng=np.random.default_rng(0),
            device="cpu",
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"features": (4, 4)}, "give six channel counts"),
        ({"channels": 2}, "choose 1 .grey. or 3"),
        ({"crop": 100}, "unet.crop = 100: give a multiple of 16"),
        ({"min_steps": 10, "max_steps": 5}, "exceeds unet.max_steps"),
        ({"val_fraction": 0.7}, r"give a value in \[0, 0.5\)"),
        ({"overlap": 0.95}, "unet.overlap"),
    ],
)
def test_bad_unet_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        UNetConfig(**settings)
