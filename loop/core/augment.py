"""Seeded training-time augmentation for small microscopy data sets.

Geometric transforms are the 8 symmetries of the square (flips and transposes), applied to
an image and to its targets alike: a Cellpose flow field ``(dy, dx)`` changes sign when its
axis is flipped and swaps components when the image is transposed, so flows computed once
per image stay exact for every crop. Photometric transforms model what changes between
microscopes and sessions: brightness, contrast, gamma, shot (Poisson) noise at a random
photon level plus read (Gaussian) noise, and defocus blur. Elastic deformation is optional
(its targets must be recomputed).

Every function takes ``rng`` (a :class:`numpy.random.Generator`); nothing touches global state.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from loop.config import AugmentConfig


def dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """Apply one of the 8 symmetries of the square to the last two axes.

    Parameters
    ----------
    array : ndarray of shape (..., M, N)
    code : int in [0, 8)
        Bit 0 flips rows, bit 1 flips columns, bit 2 transposes (after the flips).

    Returns
    -------
    ndarray of shape (..., M, N), or (..., N, M) when transposed

    Examples
    --------
    >>> import numpy as np
    >>> dihedral(np.array([[1, 2], [3, 4]]), 4).tolist()
    [[1, 3], [2, 4]]
    """
    if not 0 <= code < 8:
        raise ValueError(f"dihedral code {code}: give an integer in [0, 8)")
    out = array
    if code & 1:
        out = out[..., ::-1, :]
    if code & 2:
        out = out[..., :, ::-1]
    if code & 4:
        out = np.swapaxes(out, -1, -2)
    return np.ascontiguousarray(out)


def undo_dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """The inverse of :func:`dihedral` (transpose first, then the same flips)."""
    out = np.swapaxes(array, -1, -2) if code & 4 else array
    if code & 2:
        out = out[..., :, ::-1]
    if code & 1:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


def dihedral_flows(flows: np.ndarray, code: int) -> np.ndarray:
    """Transform a flow field ``(dy, dx)`` of shape (2, M, N) with :func:`dihedral` ``code``.

    A row flip negates ``dy``, a column flip negates ``dx``, a transpose swaps them.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.stack([np.ones((2, 2)), np.zeros((2, 2))])  # pointing down
    >>> dihedral_flows(f, 1)[0, 0, 0], dihedral_flows(f, 4)[1, 0, 0]
    (np.float64(-1.0), np.float64(1.0))
    """
    out = dihedral(flows, code).copy()
    if code & 1:
        out[0] = -out[0]
    if code & 2:
        out[1] = -out[1]
    if code & 4:
        out = out[::-1].copy()
    return out


def photometric(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random brightness/contrast/gamma, Poisson + Gaussian noise and blur.

    Parameters
    ----------
    image : ndarray of shape (C, M, N)
        Percentile-normalised (about 0..1) float image; channels that are all zero (Cellpose's
        empty second channel) stay zero.
    rng : numpy.random.Generator
    config : AugmentConfig

    Returns
    -------
    ndarray of shape (C, M, N), float32
    """
    out = np.array(image, dtype=np.float32, copy=True)
    live = np.array([np.any(c) for c in out])
    p = config.probability
    for c in np.flatnonzero(live):
        x = out[c]
        if config.intensity and rng.random() < p:
            gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
            x = np.clip(x, 0, None) ** gamma
            x = x * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
        if config.blur and rng.random() < p:
            x = ndi.gaussian_filter(x, sigma=rng.uniform(0.3, 1.5))
        if config.noise and rng.random() < p:
            photons = float(np.exp(rng.uniform(np.log(20), np.log(500))))
            x = rng.poisson(np.clip(x, 0, None) * photons).astype(np.float32) / photons
            x = x + rng.normal(0, rng.uniform(0, 0.03), size=x.shape).astype(np.float32)
        out[c] = x
    return out


def elastic(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    alpha: float = 6.0,
    sigma: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Elastic deformation (Simard et al., ICDAR 2003) of an image and its label image.

    Parameters
    ----------
    image : ndarray of shape (C, M, N)
    labels : ndarray of shape (M, N)
        Instance labels, warped with nearest-neighbour interpolation.
    alpha : float
        Displacement scale in pixels.
    sigma : float
        Smoothness of the displacement field in pixels.

    Returns
    -------
    image, labels : the warped arrays, same shapes
    """
    shape = labels.shape
    dy = ndi.gaussian_filter(rng.uniform(-1, 1, shape), sigma)
    dx = ndi.gaussian_filter(rng.uniform(-1, 1, shape), sigma)
    # smoothed noise is small: rescale so that the largest shift is alpha pixels
    scale = alpha / max(float(np.abs(dy).max()), float(np.abs(dx).max()), 1e-6)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.array([rows + dy * scale, cols + dx * scale])
    warped = np.stack([ndi.map_coordinates(c, coords, order=1, mode="reflect") for c in image])
    warped_labels = ndi.map_coordinates(labels, coords, order=0, mode="reflect")
    return warped.astype(np.float32), warped_labels.astype(labels.dtype)
