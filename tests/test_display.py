"""The picture annotators see (loop/core/display.py)."""

import numpy as np
import pytest

from loop.core.display import to_display_uint8
from loop.errors import ConfigError


def test_display_uint8_of_16bit_and_multichannel():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 60000, (8, 8), dtype=np.uint16)
    out = to_display_uint8(grey, 0, 100)
    assert out.dtype == np.uint8 and out.shape == (8, 8) and (out.min(), out.max()) == (0, 255)
    # an 8-bit stain is shown as it is (alpha dropped), not stretched
    stain = rng.integers(90, 200, (4, 4, 4), dtype=np.uint8)
    assert np.array_equal(to_display_uint8(stain), stain[..., :3])
    # two 16-bit channels: a green + magenta composite, each channel stretched on its own
    two = np.zeros((2, 2, 2), np.uint16)
    two[0, 0, 0], two[1, 1, 1] = 60000, 30
    both = to_display_uint8(two, 0, 100)
    assert both.shape == (2, 2, 3)
    assert both[0, 0].tolist() == [0, 255, 0] and both[1, 1].tolist() == [255, 0, 255]
    # one channel chosen: grey; channels in colours of one's own
    assert np.array_equal(to_display_uint8(two, 0, 100, channels=(1,)), [[0, 0], [0, 255]])
    blue = to_display_uint8(two, 0, 100, channels=(1, 0), colours=("#0000ff", "#ffff00"))
    assert blue[1, 1].tolist() == [0, 0, 255] and blue[0, 0].tolist() == [255, 255, 0]


def test_display_of_channels_the_image_does_not_have():
    image = np.zeros((4, 4, 2), np.uint16)
    with pytest.raises(ConfigError, match=r"has 2 channel\(s\) \(0..1\); .* channel 2"):
        to_display_uint8(image, channels=(0, 2))
    with pytest.raises(ConfigError, match="has 1 channel"):
        to_display_uint8(np.zeros((4, 4)), channels=(1,))
    with pytest.raises(ConfigError, match="shows 4 channels: give display.colours"):
        to_display_uint8(np.zeros((4, 4, 4)), channels=(0, 1, 2, 3))
