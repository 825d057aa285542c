"""Inter-annotator agreement, as plain functions on arrays (consensus: :mod:`loop.core.fusion`).

Instance masks: objects are matched one-to-one by IoU with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``), as in the usual instance-segmentation metrics;
object F1 at an IoU threshold counts matches at or above it. Classes: Cohen's kappa (two
raters), Fleiss' kappa (several raters, complete data), Krippendorff's alpha (nominal,
missing values allowed).

References
----------
Cohen, J. (1960). A coefficient of agreement for nominal scales. Educ. Psychol. Meas. 20, 37-46.
Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychol. Bull. 76,
378-382.
Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
Communication, University of Pennsylvania.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))


def check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"label images differ in shape: {a.shape} vs {b.shape}")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every object of ``a`` with every object of ``b``.

    Parameters
    ----------
    a, b : ndarray of shape (M, N)
        Instance label images, 0 = background.

    Returns
    -------
    iou : ndarray of shape (K, L)
    labels_a : ndarray of shape (K,)
    labels_b : ndarray of shape (L,)
    """
    a, b = np.asarray(a), np.asarray(b)
    check_shapes(a, b)
    labels_a, inv_a = np.unique(a, return_inverse=True)
    labels_b, inv_b = np.unique(b, return_inverse=True)
    inv_a, inv_b = inv_a.ravel(), inv_b.ravel()
    counts = np.zeros((labels_a.size, labels_b.size), dtype=np.int64)
    np.add.at(counts, (inv_a, inv_b), 1)
    keep_a, keep_b = labels_a != 0, labels_b != 0
    area_a, area_b = counts.sum(axis=1), counts.sum(axis=0)
    inter = counts[np.ix_(keep_a, keep_b)]
    union = area_a[keep_a][:, None] + area_b[keep_b][None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    return iou, labels_a[keep_a], labels_b[keep_b]


def match(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching maximising the total IoU.

    Returns
    -------
    rows, cols : ndarray of shape (P,)
        Matched pairs (only pairs with IoU > 0).
    ious : ndarray of shape (P,)
    """
    if iou.size == 0:
        empty = np.zeros(0, dtype=int)
        return empty, empty, np.zeros(0)
    rows, cols = linear_sum_assignment(-iou)
    ious = iou[rows, cols]
    keep = ious > 0
    return rows[keep], cols[keep], ious[keep]


def matched_ious(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int, int]:
    """IoUs of the one-to-one matched objects of two label images, and their object counts.

    Returns
    -------
    ious : ndarray of shape (P,)
        IoU of each matched pair (only pairs with IoU > 0).
    n_a, n_b : int
        Objects in ``a`` and in ``b``.
    """
    iou, labels_a, labels_b = iou_matrix(a, b)
    return match(iou)[2], int(labels_a.size), int(labels_b.size)


def pixel_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the foregrounds (label > 0) of two label images; 1.0 when both are empty.

    >>> import numpy as np
    >>> pixel_dice(np.array([[1, 0]]), np.array([[2, 2]]))
    0.6666666666666666
    """
    fa, fb = np.asarray(a) > 0, np.asarray(b) > 0
    denominator = fa.sum() + fb.sum()
    return 1.0 if denominator == 0 else float(2 * (fa & fb).sum() / denominator)


def object_f1(a: np.ndarray, b: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Object-level agreement of two instance label images.

    Returns
    -------
    dict
        ``f1_50`` (F1 of objects matched at IoU >= 0.5), ``f1`` (threshold -> F1 over
        ``thresholds``), ``mean_matched_iou`` (mean IoU of pairs matched at >= 0.5, 1.0 when
        both are empty), ``dice`` (pixel foreground Dice), ``n_a``, ``n_b``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), int); a[:2, :2] = 1
    >>> object_f1(a, a)["f1_50"]
    1.0
    """
    ious, n_a, n_b = matched_ious(a, b)
    f1 = {}
    for t in thresholds:
        tp = int(np.sum(ious >= t - 1e-12))
        f1[float(t)] = 1.0 if n_a + n_b == 0 else 2 * tp / (n_a + n_b)
    good = ious[ious >= 0.5]
    return {
        "f1_50": f1.get(0.5, 2 * int(good.size) / (n_a + n_b) if n_a + n_b else 1.0),
        "f1": f1,
        "mean_matched_iou": float(good.mean()) if good.size else (1.0 if n_a + n_b == 0 else 0.0),
        "dice": pixel_dice(a, b),
        "n_a": int(n_a),
        "n_b": int(n_b),
    }


# --- classes -----------------------------------------------------------------------------


def cohen_kappa(x: Sequence, y: Sequence) -> float:
    """Cohen's kappa of two raters over the same items (1 = perfect, 0 = chance).

    Examples
    --------
    Cohen (1960)-style worked case: 50 items, agreement on 35, marginals (25, 25) and (30, 20):

    >>> x = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    >>> y = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    >>> round(cohen_kappa(x, y), 4)
    0.4
    """
    x, y = list(x), list(y)
    if len(x) != len(y):
        raise ValueError(f"raters labelled {len(x)} and {len(y)} items; give the same items")
    if not x:
        raise ValueError("no items to compare")
    n = len(x)
    p_o = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    p_e = sum(cx[k] * cy[k] for k in set(cx) | set(cy)) / n**2
    return 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x categories table of rating counts.

    Parameters
    ----------
    counts : ndarray of shape (n_items, n_categories)
        ``counts[i, j]`` raters put item ``i`` in category ``j``; every row sums to the same
        number of raters (complete data; use :func:`krippendorff_alpha` otherwise).

    Examples
    --------
    The worked example of Fleiss (1971) as given on Wikipedia (10 items, 14 raters): 0.210.

    >>> table = [[0,0,0,0,14],[0,2,6,4,2],[0,0,3,5,6],[0,3,9,2,0],[2,2,8,1,1],
    ...          [7,7,0,0,0],[3,2,6,3,0],[2,5,3,2,2],[6,5,2,1,0],[0,2,2,3,7]]
    >>> round(fleiss_kappa(np.array(table)), 3)
    0.21
    """
    counts = np.asarray(counts, dtype=float)
    per_item = counts.sum(axis=1)
    if counts.ndim != 2 or not np.allclose(per_item, per_item[0]) or per_item[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings for Fleiss' kappa")
    n_items, raters = counts.shape[0], per_item[0]
    p_j = counts.sum(axis=0) / (n_items * raters)
    p_i = (np.sum(counts**2, axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_i.mean(), np.sum(p_j**2)
    return 1.0 if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha(ratings: Sequence[Sequence]) -> float:
    """Krippendorff's alpha for nominal data, with missing ratings (``None``).

    Parameters
    ----------
    ratings : sequence of raters, each a sequence over the same items
        ``ratings[r][i]`` is rater ``r``'s category of item ``i``, or ``None``.

    Examples
    --------
    Krippendorff (2011), nominal example with missing data (4 raters, 12 items): 0.743.

    >>> r = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    ...      [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    ...      [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    ...      [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    >>> round(krippendorff_alpha(r), 3)
    0.743
    """
    n_items = len(ratings[0])
    if any(len(r) != n_items for r in ratings):
        raise ValueError("every rater needs a rating (or None) for every item")
    coincidence: Counter = Counter()
    for i in range(n_items):
        values = [r[i] for r in ratings if r[i] is not None]
        m = len(values)
        if m < 2:
            continue
        for a_idx, a in enumerate(values):
            for b_idx, b in enumerate(values):
                if a_idx != b_idx:
                    coincidence[(a, b)] += 1 / (m - 1)
    n_c: Counter = Counter()
    for (a, _), v in coincidence.items():
        n_c[a] += v
    n = sum(n_c.values())
    if n <= 1:
        raise ValueError("Krippendorff's alpha needs items rated by at least two raters")
    observed = sum(v for (a, b), v in coincidence.items() if a != b)
    expected = sum(n_c[a] * n_c[b] for a in n_c for b in n_c if a != b) / (n - 1)
    return 1.0 if expected == 0 else 1 - observed / expected


def percent_agreement(ratings: Sequence[Sequence]) -> float:
    """Share of rater pairs, over items, that chose the same category (missing skipped)."""
    agree = total = 0
    for i in range(len(ratings[0])):
        values = [r[i] for r in ratings if r[i] is not None]
        for a in range(len(values)):
            for b in range(a + 1, len(values)):
                agree += values[a] == values[b]
                total += 1
    if total == 0:
        raise ValueError("no item has two ratings")
    return agree / total
