"""Per-region measures of a Cellpose network (the ``@region`` strategies): the per-pixel maps
behind :func:`loop.models.cellpose_rank.fast_measures`, averaged over each region."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loop.models.cellpose_measures import cell_probability
from loop.models.cellpose_rank import flipped_outputs

REGION_MEASURES = ("flip", "entropy")
"""Per-region measures of :func:`region_measures`, in column order."""


def region_measures(net, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]):
    """The cheap measures of :func:`fast_measures`, per region: the same two forward passes
    per image, their per-pixel maps averaged over each region (summed-area tables).

    Parameters
    ----------
    images : sequence of ndarray
    boxes : sequence of ndarray of shape (R_i, 4)
        Each image's regions (``row, col, height, width``; :func:`loop.core.regions.grid`).

    Returns
    -------
    list of ndarray of shape (R_i, 2)
        Per region: ``flip`` (the flip disagreement weighted to the foreground, as
        :func:`flip_disagreement`) and ``entropy`` (the mean binary entropy, in bits, of the
        cell probability over the region's pixels with p > 0.1).
    """
    from loop.core.regions import region_means

    result = []
    for (y, z, _style), regions in zip(flipped_outputs(net, images), boxes, strict=True):
        p, q = cell_probability(y[2]), cell_probability(z[2])
        flow = np.minimum(np.sqrt(((y[:2] - z[:2]) ** 2).sum(axis=0)) / 10.0, 1.0)
        flip = region_means(0.5 * (np.abs(p - q) + flow), np.maximum(p, q), regions)
        mean = np.clip(0.5 * (p + q), 1e-7, 1 - 1e-7)
        bits = -(mean * np.log2(mean) + (1 - mean) * np.log2(1 - mean))
        entropy = region_means(bits, mean > 0.1, regions)
        result.append(np.stack([flip, entropy], axis=1))
    return result
