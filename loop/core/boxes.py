"""Boxes (object detection): axis-aligned rectangles with a class each, as arrays.

A set of boxes is an array of shape (N, 4) of pixel coordinates ``x1, y1, x2, y2`` (``x`` the
column, ``y`` the row; ``x2, y2`` exclusive, as a crop ``image[y1:y2, x1:x2]`` takes them), an
integer class per box (shape (N,)) and, for a model's boxes, a score per box in [0, 1].
Matching, metrics (precision, recall, F1 and AP at an IoU threshold, count errors), agreement
between annotators and consensus are functions on those arrays: files, the study's class
names and the label store are elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_boxes",
    "average_precision",
    "box_iou",
    "count_errors",
    "counts_at",
    "detection_counts",
    "from_instances",
    "in_tile",
    "match_greedy",
    "match_optimal",
    "overlap",
    "scores_from_counts",
    "summarize_detection",
]


def as_boxes(boxes) -> np.ndarray:
    """``boxes`` as a float array of shape (N, 4) (an empty list gives shape (0, 4)).

    >>> as_boxes([]).shape
    (0, 4)
    """
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return out


def in_tile(boxes, tile, *, points: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The boxes that lie (partly) in ``tile`` (``row, col, height, width``), in its
    coordinates and cut at its edges (points: those inside it), and which they were.

    Returns
    -------
    boxes : ndarray of shape (K, 4); keep : ndarray of shape (B,), bool

    >>> in_tile([[0, 0, 10, 10], [50, 50, 60, 60]], (5, 5, 20, 20))[0].tolist()
    [[0.0, 0.0, 5.0, 5.0]]
    """
    r, c, h, w = (int(v) for v in tile)
    b = as_boxes(boxes) - [c, r, c, r]
    clipped = np.clip(b, 0, [w, h, w, h])
    if points:
        keep = (b[:, 0] >= 0) & (b[:, 0] < w) & (b[:, 1] >= 0) & (b[:, 1] < h)
    else:
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep], keep


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Parameters
    ----------
    a : array_like of shape (N, 4)
    b : array_like of shape (M, 4)

    Returns
    -------
    ndarray of shape (N, M), in [0, 1]

    >>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).round(3).tolist()
    [[0.333, 0.0]]
    """
    a, b = as_boxes(a), as_boxes(b)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def overlap(a, b, radius: float | None = None) -> np.ndarray:
    """How much every box of ``a`` and every box of ``b`` coincide: their IoU
    (:func:`box_iou`), or for points (``radius`` given; a point is a box of zero size, its
    corners equal) ``1 - d / (2 radius)`` of their distance ``d``, clipped at 0: a similarity
    that reaches 0.5 exactly when the points lie within ``radius`` of each other, so that the
    matching thresholds of boxes serve points too.

    >>> overlap([[0, 0, 0, 0]], [[3, 4, 3, 4], [30, 0, 30, 0]], radius=5).tolist()
    [[0.5, 0.0]]
    """
    if radius is None:
        return box_iou(a, b)
    a, b = as_boxes(a), as_boxes(b)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    d = np.sqrt(((ca[:, None, :] - cb[None, :, :]) ** 2).sum(axis=-1))
    return np.clip(1.0 - d / (2.0 * radius), 0.0, 1.0)


def match_greedy(iou: np.ndarray, scores, *, threshold: float = 0.5) -> np.ndarray:
    """Match a model's boxes to the truth as detection benchmarks (VOC, COCO) do: in order of
    falling score, each box takes the unmatched true box it overlaps most, if that IoU reaches
    ``threshold``.

    Parameters
    ----------
    iou : ndarray of shape (T, P)
        True boxes by predicted boxes (:func:`box_iou`).
    scores : array_like of shape (P,)

    Returns
    -------
    ndarray of shape (P,), int
        The true box each predicted box matched, ``-1`` for a false positive.

    >>> match_greedy(np.array([[0.9, 0.6]]), [0.5, 0.8]).tolist()
    [-1, 0]
    """
    n_true, n_pred = iou.shape
    out = np.full(n_pred, -1, dtype=np.int64)
    taken = np.zeros(n_true, bool)
    for j in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if not n_true:
            break
        candidates = np.where(taken, -1.0, iou[:, j])
        i = int(np.argmax(candidates))
        if candidates[i] >= threshold:
            out[j], taken[i] = i, True
    return out


def match_optimal(iou: np.ndarray, *, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of boxes of two annotators (no scores): the assignment of largest total IoU
    (Hungarian), pairs below ``threshold`` dropped.

    Parameters
    ----------
    iou : ndarray of shape (N, M)

    Returns
    -------
    rows, cols : ndarray of shape (K,)
    """
    from scipy.optimize import linear_sum_assignment

    if not iou.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] >= threshold
    return rows[keep], cols[keep]


def detection_counts(
    truth_boxes,
    truth_classes,
    pred_boxes,
    pred_classes,
    pred_scores,
    n_classes: int,
    *,
    threshold: float = 0.5,
    radius: float | None = None,
) -> dict:
    """True positives, false positives and false negatives per class of one image's
    predictions, matched per class by :func:`match_greedy` (on :func:`overlap`: IoU, or the
    distance of points within ``radius``), with each predicted box's score and whether it
    matched (what :func:`average_precision` pools over images).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``: ndarray of shape (K,) of ints;
        ``ranked``: a list of K arrays of shape (P_k, 2) (score, matched).
    """
    truth_boxes, pred_boxes = as_boxes(truth_boxes), as_boxes(pred_boxes)
    truth_classes = np.asarray(truth_classes, dtype=np.int64).reshape(-1)
    pred_classes = np.asarray(pred_classes, dtype=np.int64).reshape(-1)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    counts = {k: np.zeros(n_classes, np.int64) for k in ("tp", "fp", "fn", "n_true", "n_pred")}
    ranked = []
    for k in range(n_classes):
        t, p = truth_classes == k, pred_classes == k
        matched = match_greedy(
            overlap(truth_boxes[t], pred_boxes[p], radius), pred_scores[p], threshold=threshold
        )
        tp = int((matched >= 0).sum())
        counts["tp"][k], counts["fp"][k] = tp, int(p.sum()) - tp
        counts["fn"][k] = int(t.sum()) - tp
        counts["n_true"][k], counts["n_pred"][k] = int(t.sum()), int(p.sum())
        ranked.append(np.stack([pred_scores[p], (matched >= 0).astype(np.float64)], axis=1))
    return {**counts, "ranked": ranked}


def counts_at(counts: dict, threshold: float) -> dict:
    """The counts of :func:`detection_counts` had only the predictions scoring ``threshold``
    or more been made: greedy matching takes boxes by falling score, so a kept box matches
    what it matched among all of them (no second matching needed).

    >>> c = detection_counts([[0, 0, 9, 9]], [0], [[0, 0, 9, 9], [1, 0, 9, 9]], [0, 0],
    ...                      [0.3, 0.8], 1)
    >>> {k: counts_at(c, 0.5)[k].tolist() for k in ("tp", "fp", "fn")}
    {'tp': [1], 'fp': [0], 'fn': [0]}
    """
    kept = [r[r[:, 0] >= threshold] for r in counts["ranked"]]
    tp = np.array([int(r[:, 1].sum()) for r in kept], np.int64)
    n_pred = np.array([len(r) for r in kept], np.int64)
    n_true = np.asarray(counts["n_true"], np.int64)
    return {"tp": tp, "fp": n_pred - tp, "fn": n_true - tp, "n_true": n_true, "n_pred": n_pred}


def average_precision(ranked: Sequence[np.ndarray], n_true: int) -> float | None:
    """COCO's average precision of one class at one IoU threshold: precision made monotone
    and sampled at 101 recall points (0, 0.01, ..., 1).

    Parameters
    ----------
    ranked : sequence of ndarray of shape (P_i, 2)
        Per image, each predicted box's (score, matched) (:func:`detection_counts`).
    n_true : int
        True boxes of the class over all images; None is returned when there are none.

    >>> average_precision([np.array([[0.9, 1.0], [0.8, 0.0]])], 1)
    1.0
    """
    if n_true <= 0:
        return None
    rows = np.concatenate([np.asarray(r).reshape(-1, 2) for r in ranked] or [np.zeros((0, 2))])
    if not rows.size:
        return 0.0
    order = np.argsort(-rows[:, 0], kind="stable")
    hit = rows[order, 1] > 0
    tp, fp = np.cumsum(hit), np.cumsum(~hit)
    recall = tp / n_true
    precision = tp / np.maximum(tp + fp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    where = np.searchsorted(recall, points, side="left")
    sampled = np.where(where < precision.size, precision[np.minimum(where, precision.size - 1)], 0)
    return float(sampled.mean())


def scores_from_counts(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 of counts (None where undefined: no predictions, no truth).

    >>> scores_from_counts(8, 2, 0)
    {'precision': 0.8, 'recall': 1.0, 'f1': 0.889}
    """
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {
        k: (None if v is None else round(float(v), 3))
        for k, v in (("precision", precision), ("recall", recall), ("f1", f1))
    }


def count_errors(n_true, n_pred) -> dict:
    """Mean absolute and mean relative count error over images (relative: over images with at
    least one true object).

    Parameters
    ----------
    n_true, n_pred : array_like of shape (I,)

    >>> count_errors([10, 0], [8, 1])
    {'count_mae': 1.5, 'count_mre': 0.2}
    """
    t, p = np.asarray(n_true, np.float64), np.asarray(n_pred, np.float64)
    if not t.size:
        return {"count_mae": None, "count_mre": None}
    some = t > 0
    mre = float(np.mean(np.abs(p[some] - t[some]) / t[some])) if some.any() else None
    return {
        "count_mae": round(float(np.mean(np.abs(p - t))), 3),
        "count_mre": None if mre is None else round(mre, 3),
    }


def summarize_detection(per_image: Sequence[dict], classes: Sequence[str]) -> dict:
    """Figures over images: per class and over all classes (pooled counts), precision, recall
    and F1 at the matching IoU, AP (COCO 101 points), the count errors; ``mean_ap`` over the
    classes with truth.

    Parameters
    ----------
    per_image : sequence of dict
        :func:`detection_counts` of each image.
    classes : sequence of str
        The class names, by index.
    """
    per_class, aps = {}, []
    total = {"tp": 0, "fp": 0, "fn": 0}
    for k, name in enumerate(classes):
        counts = {c: int(sum(int(d[c][k]) for d in per_image)) for c in ("tp", "fp", "fn")}
        n_true = int(sum(int(d["n_true"][k]) for d in per_image))
        ap = average_precision([d["ranked"][k] for d in per_image], n_true)
        errors = count_errors(
            [d["n_true"][k] for d in per_image], [d["n_pred"][k] for d in per_image]
        )
        per_class[name] = {
            **scores_from_counts(**counts),
            "ap50": None if ap is None else round(ap, 3),
            **errors,
            "n_true": n_true,
        }
        for c in total:
            total[c] += counts[c]
        if ap is not None:
            aps.append(ap)
    errors = count_errors(
        [int(np.sum(d["n_true"])) for d in per_image], [int(np.sum(d["n_pred"])) for d in per_image]
    )
    return {
        **scores_from_counts(**total),
        "mean_ap": round(float(np.mean(aps)), 3) if aps else None,
        **errors,
        "n_images": len(per_image),
        "per_class": per_class,
    }


def from_instances(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of each object of an instance label image.

    Parameters
    ----------
    mask : ndarray of shape (M, N), integer (0 = background)

    Returns
    -------
    boxes : ndarray of shape (N_obj, 4), ``x1, y1, x2, y2`` (exclusive ends)
    labels : ndarray of shape (N_obj,): each box's object label

    >>> m = np.zeros((5, 6), int); m[1:3, 2:5] = 7
    >>> from_instances(m)[0].tolist()
    [[2.0, 1.0, 5.0, 3.0]]
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    labels = np.unique(mask[mask > 0])
    if not labels.size:
        return np.zeros((0, 4)), labels
    found = ndimage.find_objects(mask.astype(np.int64), max_label=int(labels.max()))
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in (found[v - 1] for v in labels)]
    return np.asarray(boxes, dtype=np.float64), labels
