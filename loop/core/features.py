"""Model-free image features: named statistics of one image (:func:`image_features`), and an
appearance embedding of a set of images (:func:`appearance_embedding`) that coverage selectors
can cluster before any model has learnt anything useful.

The named features serve the shift checks (:mod:`loop.reports.shift`): what differs between
instruments or sessions. The appearance embedding adds what the content looks like once the
polarity is made the same for every modality (nuclei bright on dark): how much of the image is
foreground, how many blobs, how large. A model trained on four images gives style vectors that
say little (or nothing, when its training collapsed); these do not depend on the model, which
is what a cold start needs (Chen et al. 2022, arXiv:2210.02442).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

FEATURES = (
    "mean",
    "std",
    "p01",
    "p50",
    "p99",
    "dynamic_range",
    "saturated",
    "dark",
    "noise",
    "focus",
    "edge_density",
    "contrast",
    "colourfulness",
    "log_area",
    "aspect",
)
"""Names of the columns of :func:`image_features`."""


def image_features(image: np.ndarray) -> np.ndarray:
    """Named features of one image, comparable across channel counts and sizes.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype; integer images are scaled by their dtype's range, so a 12-bit camera in a
        16-bit file reads dark (which is what a shift check should see).

    Returns
    -------
    ndarray of shape (len(FEATURES),), float64
        In the order of :data:`FEATURES`: mean, standard deviation, 1st/50th/99th percentile
        and p99 - p01 of the grey level; fractions of saturated (>= 99.9% of range) and of
        black pixels; a noise estimate (median absolute Laplacian, robust to structure);
        focus (variance of the Laplacian); edge density (fraction of Sobel edges); contrast
        (std / mean); colourfulness (mean spread between channels); log10 of the pixel count;
        width / height.

    Examples
    --------
    >>> flat = image_features(np.full((32, 32), 128, np.uint8))
    >>> float(flat[FEATURES.index("std")]), float(flat[FEATURES.index("noise")])
    (0.0, 0.0)
    """
    from scipy import ndimage as ndi
    from skimage.filters import sobel
    from skimage.transform import resize

    x = np.asarray(image)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    else:
        x = x.astype(np.float64)
    height, width = x.shape[:2]
    colour = float(np.mean(np.ptp(x[..., :3], axis=-1))) if x.ndim == 3 else 0.0
    grey = x.mean(axis=-1) if x.ndim == 3 else x
    p01, p50, p99 = np.percentile(grey, [1, 50, 99])
    mean, std = float(grey.mean()), float(grey.std())
    side = max(height, width)
    small = grey if side <= 512 else resize(grey, (height * 512 // side, width * 512 // side))
    laplace = ndi.laplace(small)
    edges = sobel(small)
    return np.array(
        [
            mean,
            std,
            p01,
            p50,
            p99,
            p99 - p01,
            float(np.mean(grey >= 0.999)),
            float(np.mean(grey <= 0.001)),
            float(np.median(np.abs(laplace))),
            float(laplace.var()),
            float(np.mean(edges > max(edges.mean() + 2 * edges.std(), 1e-12))),
            std / mean if mean > 0 else 0.0,
            colour,
            float(np.log10(height * width)),
            width / height,
        ]
    )


CONTENT = ("foreground", "log_blobs", "log_blob_area")
"""Names of the columns :func:`content_features` adds for the appearance embedding."""
HEAVY = ("noise", "focus", "contrast")
"""Features with heavy tails, taken as log(1 + x) in the embedding."""


def content_features(image: np.ndarray) -> np.ndarray:
    """What the content of one image looks like, whatever its modality.

    The grey image is scaled to its 1st..99th percentile and inverted when its median is
    above one half (stained tissue, brightfield: dark nuclei on a bright background), so that
    objects are bright in every modality; Otsu's threshold then splits foreground from
    background, at most 512 px on the longer side.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype.

    Returns
    -------
    ndarray of shape (3,), float64
        In the order of :data:`CONTENT`: foreground fraction, log10(1 + number of
        foreground blobs), log10(1 + median blob area in pixels at the working scale).

    Examples
    --------
    >>> dots = np.zeros((64, 64))
    >>> dots[8:20, 8:20] = dots[40:52, 40:52] = 1.0
    >>> content_features(dots).round(3).tolist()
    [0.07, 0.477, 2.161]
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.transform import resize

    x = np.asarray(image, dtype=np.float64)
    grey = x.mean(axis=-1) if x.ndim == 3 else x
    height, width = grey.shape
    side = max(height, width)
    if side > 512:
        grey = resize(grey, (max(1, height * 512 // side), max(1, width * 512 // side)))
    low, high = np.percentile(grey, [1, 99])
    if high <= low:
        return np.zeros(len(CONTENT))
    grey = np.clip((grey - low) / (high - low), 0.0, 1.0)
    if np.median(grey) > 0.5:
        grey = 1.0 - grey
    foreground = grey > threshold_otsu(grey)
    blobs, n = ndi.label(foreground)
    areas = np.bincount(blobs.ravel())[1:] if n else np.zeros(1)
    return np.array(
        [float(foreground.mean()), float(np.log10(1 + n)), float(np.log10(1 + np.median(areas)))]
    )


def appearance_embedding(images: Iterable[np.ndarray]) -> np.ndarray:
    """A model-free embedding of a set of images: the named features of :func:`image_features`
    and :func:`content_features`, heavy-tailed ones as log(1 + x), each column standardised
    over the set (a constant column becomes 0).

    Parameters
    ----------
    images : iterable of ndarray of shape (M, N) or (M, N, C)

    Returns
    -------
    ndarray of shape (n, len(FEATURES) + len(CONTENT)), float64

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = appearance_embedding([rng.random((32, 32)) for _ in range(4)])
    >>> x.shape, bool(np.allclose(x.mean(axis=0), 0.0))
    ((4, 18), True)
    """
    rows = [np.concatenate([image_features(im), content_features(im)]) for im in images]
    if not rows:
        return np.zeros((0, len(FEATURES) + len(CONTENT)))
    x = np.stack(rows)
    for name in HEAVY:
        j = FEATURES.index(name)
        x[:, j] = np.log1p(np.maximum(x[:, j], 0.0))
    centre, spread = x.mean(axis=0), x.std(axis=0)
    varies = spread > 1e-9 * (1.0 + np.abs(centre))  # rounding of a constant is no spread
    return np.where(varies, (x - centre) / np.where(varies, spread, 1.0), 0.0)
