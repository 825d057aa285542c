"""Per-image uncertainty measures of a Cellpose network's outputs, on arrays: the cell
probability's entropy over the foreground, the disagreement of an image's and its flipped
copy's outputs, and the instance disagreement of flipped predictions.

:func:`cell_probability`, :func:`probability_entropy` and :func:`flip_disagreement` take
NumPy arrays or torch tensors alike and compute where their inputs are: on a GPU, the
measures that rank the pool need no copy of the network's outputs to the host."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cell_probability(cellprob: np.ndarray) -> np.ndarray:
    """The network's cell-probability logits (shape (M, N)) as probabilities in [0, 1]."""
    xp = namespace(cellprob)
    return 1.0 / (1.0 + xp.exp(-xp.clip(cellprob, -30, 30)))


def namespace(array):
    """The module whose functions compute on ``array``: NumPy for an array, torch for a
    tensor (on its device).

    >>> import numpy as np, torch
    >>> namespace(np.zeros(2)).__name__, namespace(torch.zeros(2)).__name__
    ('numpy', 'torch')
    """
    if isinstance(array, np.ndarray):
        return np
    import torch

    return torch


def foreground_entropy(cellprob: np.ndarray, floor: float = 0.1) -> float:
    """Mean binary entropy (bits) of the cell probability over pixels with p > ``floor``.

    Over the whole image this hardly tracks errors (background dominates); over the
    foreground and its uncertain rim it does.
    """
    return probability_entropy(cell_probability(cellprob), floor)


def probability_entropy(p: np.ndarray, floor: float = 0.1) -> float:
    """:func:`foreground_entropy` of probabilities (shape (M, N), in [0, 1]) rather than
    logits."""
    xp = namespace(p)
    keep = p > floor
    if not keep.any():
        return 0.0
    q = xp.clip(p[keep], 1e-7, 1 - 1e-7)
    return float(xp.mean(-(q * xp.log2(q) + (1 - q) * xp.log2(1 - q))))


def tta_disagreement(masks: Sequence[np.ndarray]) -> tuple[float, float]:
    """Disagreement of predictions of flipped copies of one image.

    Returns
    -------
    iou_disagreement : float
        1 - mean over the flipped predictions of (sum of matched IoUs / max object count)
        against the unflipped one (0 = identical instances).
    count_cv : float
        Coefficient of variation of the object counts.
    """
    from loop.core.agreement import matched_ious

    ref = masks[0]
    values = []
    for other in masks[1:]:
        ious, n_ref, n_other = matched_ious(ref, other)
        n = max(n_ref, n_other)
        values.append(1.0 if n == 0 else float(ious.sum()) / n)
    counts = np.array([len(np.unique(m)) - (1 if (m == 0).any() else 0) for m in masks], float)
    cv = float(counts.std() / counts.mean()) if counts.mean() > 0 else 0.0
    return 1.0 - float(np.mean(values)), cv


def flip_disagreement(output: np.ndarray, flipped: np.ndarray) -> float:
    """How much the network's outputs on an image and on its flipped copy disagree, weighted
    to the foreground.

    Parameters
    ----------
    output, flipped : ndarray of shape (3, M, N)
        Outputs (:func:`forward`) on the image and on its copy flipped by :data:`FLIP`, the
        latter already flipped back (flows included).

    Returns
    -------
    float in [0, 1]
        Per pixel, the mean of the cell-probability difference and of the flow difference
        (the flows are 5x unit vectors: a difference of 10 is a reversal, counted 1); averaged
        with weights max(p, p_flipped), so that background agreed on by both counts nothing.
        0 for an image both see as empty.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros((3, 8, 8)); y[2] = 10.0  # confident foreground, no flow
    >>> flip_disagreement(y, y)
    0.0
    >>> z = y.copy(); z[2] = -10.0  # the flipped copy calls it background
    >>> round(flip_disagreement(y, z), 3)
    0.5
    """
    xp = namespace(output)
    p, q = cell_probability(output[2]), cell_probability(flipped[2])
    weight = xp.maximum(p, q)
    total = float(weight.sum())
    if total < 1e-6:
        return 0.0
    flow = xp.clip(xp.sqrt(((output[:2] - flipped[:2]) ** 2).sum(axis=0)) / 10.0, None, 1.0)
    pixel = 0.5 * (xp.abs(p - q) + flow)
    return float((weight * pixel).sum() / total)
