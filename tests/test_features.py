"""Model-free image features: named statistics, content after polarity, the appearance
embedding that coverage selectors use at a cold start."""

import numpy as np
import pytest

from loop.core.features import (
    CONTENT,
    FEATURES,
    appearance_embedding,
    content_features,
    image_features,
)
from loop.core.selectors import typiclust


def feature(x, name):
    return float(x[FEATURES.index(name)])


def test_features_see_brightness_saturation_colour_noise_and_size():
    rng = np.random.default_rng(0)
    dim = rng.integers(0, 40, (64, 64)).astype(np.uint8)
    bright = np.clip(dim.astype(int) + 150, 0, 255).astype(np.uint8)
    assert feature(image_features(bright), "mean") > feature(image_features(dim), "mean") + 0.5
    saturated = bright.copy()
    saturated[:16] = 255
    assert feature(image_features(saturated), "saturated") == pytest.approx(0.25, abs=0.01)
    grey_rgb = np.repeat(dim[..., None], 3, axis=-1)
    red = grey_rgb.copy()
    red[..., 0] = 200
    assert feature(image_features(grey_rgb), "colourfulness") == 0.0
    assert feature(image_features(red), "colourfulness") > 0.5
    smooth = np.full((64, 64), 0.5)
    noisy = smooth + rng.normal(0, 0.05, smooth.shape)
    assert feature(image_features(noisy), "noise") > feature(image_features(smooth), "noise")
    wide = image_features(np.zeros((100, 300), np.uint16))
    assert feature(wide, "aspect") == 3.0 and feature(wide, "log_area") == pytest.approx(
        4.477, 1e-3
    )
    # a 12-bit camera in a 16-bit file reads dark: that is a difference worth seeing
    assert feature(image_features(np.full((8, 8), 4095, np.uint16)), "mean") < 0.07
    assert image_features(np.zeros((2000, 600), np.uint8)).shape == (len(FEATURES),)


def nuclei(rng, n, radius, size=96, dark_on_bright=False):
    """Discs of ``radius`` on a noisy background, bright on dark (fluorescence) or dark on
    bright (a stain)."""
    image = rng.normal(0.1, 0.02, (size, size))
    rr, cc = np.ogrid[:size, :size]
    for r, c in rng.integers(radius, size - radius, (n, 2)):
        image[(rr - r) ** 2 + (cc - c) ** 2 <= radius**2] = 0.8
    image = np.clip(image, 0, 1)
    return 1.0 - image if dark_on_bright else image


def test_content_is_the_same_whatever_the_polarity():
    rng = np.random.default_rng(0)
    bright = nuclei(rng, 6, 6)
    assert content_features(bright) == pytest.approx(content_features(1.0 - bright))
    many, few = content_features(nuclei(rng, 12, 5)), content_features(nuclei(rng, 2, 5))
    index = CONTENT.index
    assert many[index("log_blobs")] > few[index("log_blobs")]
    assert many[index("foreground")] > few[index("foreground")]
    big, small = content_features(nuclei(rng, 3, 10)), content_features(nuclei(rng, 3, 3))
    assert big[index("log_blob_area")] > small[index("log_blob_area")]
    assert content_features(np.zeros((16, 16))).tolist() == [0.0, 0.0, 0.0]  # flat: no content


def test_appearance_embedding_separates_looks_and_covers_them():
    rng = np.random.default_rng(1)
    fluo = [nuclei(rng, 8, 5) for _ in range(12)]
    stain = [
        np.stack([nuclei(rng, 8, 5, dark_on_bright=True)] * 3, -1) * [1.0, 0.6, 0.9]
        for _ in range(4)
    ]
    x = appearance_embedding(fluo + stain)
    assert x.shape == (16, len(FEATURES) + len(CONTENT))
    assert np.allclose(x.mean(axis=0), 0.0) and np.isfinite(x).all()
    within = np.linalg.norm(x[:12] - x[:12].mean(0), axis=1).mean()
    between = np.linalg.norm(x[:12].mean(0) - x[12:].mean(0))
    assert between > 2 * within
    # coverage on it: a batch of two holds one image of each look
    picked = typiclust(x, 2, rng=0)
    assert sorted(int(i >= 12) for i in picked) == [0, 1]
    assert appearance_embedding([]).shape == (0, len(FEATURES) + len(CONTENT))
