"""Synthetic nuclei images with exact instance masks.

Used when no real data is at hand (``make demo`` without the DSB data, tests): blurred
elliptical nuclei with uneven brightness on a noisy background, Poisson + Gaussian noise as
a fluorescence camera gives.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse


def synthetic_nuclei(
    shape: tuple[int, int] = (128, 128),
    n_objects: int = 12,
    *,
    radius: tuple[float, float] = (5.0, 10.0),
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One fluorescence-like image and its instance mask.

    Parameters
    ----------
    shape : (M, N)
        Image size.
    n_objects : int
        Nuclei to try to place (overlapping ones are dropped, so the mask may have fewer).
    radius : (low, high)
        Range of the ellipses' semi-axes, in pixels.
    rng : Generator, int or None
        Randomness source (``np.random.default_rng(rng)``).

    Returns
    -------
    image : ndarray of shape (M, N), dtype uint16
    mask : ndarray of shape (M, N), dtype int32
        0 = background, 1..K = nuclei.

    Examples
    --------
    >>> image, mask = synthetic_nuclei((64, 64), 4, rng=0)
    >>> image.shape, mask.shape, int(mask.max()) <= 4
    ((64, 64), (64, 64), True)
    """
    rng = np.random.default_rng(rng)
    mask = np.zeros(shape, dtype=np.int32)
    signal = np.zeros(shape, dtype=np.float32)
    label = 0
    for _ in range(n_objects):
        r0, r1 = rng.uniform(*radius, size=2)
        center = rng.uniform([r0, r0], [shape[0] - r0, shape[1] - r0])
        rr, cc = ellipse(center[0], center[1], r0, r1, shape=shape, rotation=rng.uniform(0, np.pi))
        if rr.size == 0 or np.any(mask[rr, cc]):
            continue
        label += 1
        mask[rr, cc] = label
        signal[rr, cc] = rng.uniform(0.5, 1.0)
    signal = ndi.gaussian_filter(signal, 1.0) * 600 + 60
    image = rng.poisson(signal).astype(np.float32) + rng.normal(0, 8, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), mask
