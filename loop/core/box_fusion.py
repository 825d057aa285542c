"""Boxes of several annotators (detection): how two agree, and the consensus of several;
functions on arrays (see :mod:`loop.core.boxes`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loop.core.boxes import as_boxes, match_optimal, overlap

__all__ = ["fuse_boxes", "pair_agreement"]


def pair_agreement(
    boxes_a, classes_a, boxes_b, classes_b, *, threshold: float = 0.5, radius=None
) -> dict:
    """How two annotators' boxes of one image agree: F1 of boxes matched by IoU whatever
    their class (:func:`match_optimal`), and the classes of the matched pairs (for kappa).

    Returns
    -------
    dict
        ``f1`` (1.0 when both drew nothing), ``matched``, ``only_a``, ``only_b`` and
        ``pairs``: ndarray of shape (K, 2) of the matched boxes' classes.

    >>> pair_agreement([[0, 0, 10, 10]], [0], [[1, 0, 10, 10]], [1])["f1"]
    1.0
    """
    a, b = as_boxes(boxes_a), as_boxes(boxes_b)
    rows, cols = match_optimal(overlap(a, b, radius), threshold=threshold)
    matched = int(rows.size)
    total = len(a) + len(b)
    pairs = (
        np.stack(
            [np.asarray(classes_a, np.int64)[rows], np.asarray(classes_b, np.int64)[cols]], axis=1
        )
        if matched
        else np.zeros((0, 2), np.int64)
    )
    return {
        "f1": 1.0 if total == 0 else 2 * matched / total,
        "matched": matched,
        "only_a": len(a) - matched,
        "only_b": len(b) - matched,
        "pairs": pairs,
    }


def fuse_boxes(
    sets: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    threshold: float = 0.5,
    quorum: int | None = None,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A consensus of several annotators' boxes of one image: boxes are clustered across
    annotators (each annotator's box joins the cluster whose median box it overlaps most, at
    least ``threshold``, one box per annotator and cluster); a cluster with boxes of at least
    ``quorum`` annotators (default: a strict majority) is kept, its coordinates the median of
    its boxes, its class the most frequent (ties: the lowest index). Points (``radius``)
    cluster by distance (:func:`overlap`).

    Parameters
    ----------
    sets : sequence of (boxes, classes)
        Per annotator: ndarray of shape (N_a, 4) and of shape (N_a,).

    Returns
    -------
    boxes : ndarray of shape (K, 4)
    classes : ndarray of shape (K,)
    support : ndarray of shape (K,): how many annotators drew each box
    """
    n = len(sets)
    quorum = n // 2 + 1 if quorum is None else quorum
    clusters: list[list[tuple[np.ndarray, int]]] = []
    for boxes, classes in sets:
        boxes = as_boxes(boxes)
        classes = np.asarray(classes, np.int64).reshape(-1)
        centres = as_boxes([np.median([b for b, _ in c], axis=0) for c in clusters])
        iou = overlap(boxes, centres, radius)
        rows, cols = match_optimal(iou, threshold=threshold)
        joined = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        for i, (box, cls) in enumerate(zip(boxes, classes, strict=True)):
            if i in joined:
                clusters[joined[i]].append((box, int(cls)))
            else:
                clusters.append([(box, int(cls))])
    kept = [c for c in clusters if len(c) >= quorum]
    if not kept:
        return np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    boxes = np.array([np.median([b for b, _ in c], axis=0) for c in kept])
    classes = np.array([np.bincount([k for _, k in c]).argmax() for c in kept], np.int64)
    return boxes, classes, np.array([len(c) for c in kept], np.int64)
