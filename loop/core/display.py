"""The picture annotators see of an image: grey, RGB as it is, or a composite of channels in
colours, each stretched between two percentiles (8- and 16-bit, float)."""

from __future__ import annotations

import numpy as np

from loop.core.images import normalize_percentile
from loop.errors import ConfigError

DISPLAY_COLOURS = {
    1: ("#ffffff",),
    2: ("#00ff00", "#ff00ff"),
    3: ("#ff0000", "#00ff00", "#0000ff"),
}  # the composite's colours by number of channels shown, when none are given


def to_display_uint8(
    image: np.ndarray,
    lower: float = 1.0,
    upper: float = 99.8,
    *,
    channels: tuple[int, ...] = (),
    colours: tuple[str, ...] = (),
) -> np.ndarray:
    """A browser-viewable 8-bit picture of any image: grey, RGB, or a composite of channels.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype (8- or 16-bit, float).
    lower, upper : float
        Percentiles stretched to black and full brightness, per channel shown.
    channels : tuple of int
        Channels to show (0 first). Empty: a grey image in grey, an 8-bit RGB(A) image as it
        is, a 16-bit or float RGB stretched as one, any other image its first three channels.
    colours : tuple of str
        ``#rrggbb`` per shown channel, added up (a composite, as in Fiji). Empty: grey for
        one channel, green and magenta for two, red, green and blue for three.

    Returns
    -------
    ndarray of shape (M, N) (grey) or (M, N, 3), dtype uint8

    Raises
    ------
    ConfigError
        When ``channels`` names a channel the image does not have, or more than three
        channels come without colours.

    Examples
    --------
    >>> import numpy as np
    >>> two = np.zeros((2, 2, 2), np.uint16); two[0, 0, 0] = 1000; two[1, 1, 1] = 50
    >>> to_display_uint8(two, 0, 100, channels=(0, 1))[..., 1].tolist()  # green: channel 0
    [[255, 0], [0, 0]]
    """
    image = np.asarray(image)
    planes = 1 if image.ndim == 2 else image.shape[-1]
    if not channels:
        if image.ndim == 3 and planes in (3, 4) and image.dtype == np.uint8:
            return np.ascontiguousarray(image[..., :3])  # a stain keeps its colours
        if image.ndim == 2 or planes in (3, 4):
            rgb = image if image.ndim == 2 else image[..., :3]
            out = np.clip(normalize_percentile(rgb, lower, upper, per_channel=False), 0, 1)
            return (out * 255).round().astype(np.uint8)
        channels = tuple(range(min(planes, 3)))
    if not colours and len(channels) not in DISPLAY_COLOURS:
        raise ConfigError(
            f"display.channels shows {len(channels)} channels: give display.colours, one each"
        )
    missing = [c for c in channels if c >= planes]
    if missing:
        raise ConfigError(
            f"the image has {planes} channel(s) (0..{planes - 1}); display.channels asks for "
            f"channel {missing[0]}: set [display] channels in loop.toml to channels it has"
        )
    stack = image[..., None] if image.ndim == 2 else image
    if len(channels) == 1 and not colours:
        out = np.clip(normalize_percentile(stack[..., channels[0]], lower, upper), 0, 1)
        return (out * 255).round().astype(np.uint8)
    colours = colours or DISPLAY_COLOURS[len(channels)]
    out = np.zeros(image.shape[:2] + (3,), np.float32)
    for channel, colour in zip(channels, colours, strict=True):
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)
        out += (
            np.clip(normalize_percentile(stack[..., channel], lower, upper), 0, 1)[..., None] * rgb
        )
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def outline(pixels: np.ndarray, box, colour: str, width: int = 2) -> np.ndarray:
    """A copy of an 8-bit image (grey or RGB) with the border of ``box`` (``row, col, height,
    width``) drawn ``width`` pixels wide in ``colour`` (``#rrggbb``), just inside the box.

    >>> img = outline(np.zeros((8, 8), np.uint8), (2, 2, 4, 4), "#ffcc00", width=1)
    >>> img.shape, img[2, 3].tolist(), img[4, 4].tolist()
    ((8, 8, 3), [255, 204, 0], [0, 0, 0])
    """
    out = np.asarray(pixels)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    out = out[..., :3].copy()
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    r, c, h, w = (int(v) for v in box)
    for band in (
        (slice(r, r + width), slice(c, c + w)),
        (slice(r + h - width, r + h), slice(c, c + w)),
        (slice(r, r + h), slice(c, c + width)),
        (slice(r, r + h), slice(c + w - width, c + w)),
    ):
        out[band] = rgb
    return out
