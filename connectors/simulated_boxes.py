"""Simulated annotators' boxes (detection): a noisy copy of the true boxes, or a correction
of the model's boxes toward them, with the same noise profiles as outlines
(:class:`loop.noise.NoiseProfile`: ``jitter`` moves each side by up to that many pixels,
``miss``/``miss_small`` drop boxes, ``false_positive`` adds some, ``flip`` changes a box's
class, ``accept`` keeps a pre-drawn box that is close enough)."""

from __future__ import annotations

import numpy as np

from loop.core.boxes import as_boxes, in_tile, match_optimal, overlap
from loop.noise import NoiseProfile


def seen_boxes(truth, tile, region) -> tuple[tuple[np.ndarray, np.ndarray], tuple[int, int]]:
    """The true boxes a task asks for (:class:`connectors.simulated.Truth`): in the tile's
    coordinates (cut at its edges) when it is a tile, only those touching the region's frame
    (whole) when it is a region task; with the shape of what is shown."""
    points = truth.radius is not None
    boxes, classes = as_boxes(truth.boxes), np.asarray(truth.box_classes, np.int64)
    if tile is None:
        return (boxes, classes), truth.shape
    inside, keep = in_tile(boxes, tile, points=points)
    boxes, classes = boxes[keep] - [tile[1], tile[0], tile[1], tile[0]], classes[keep]
    if region is not None:
        at = in_tile(boxes, region, points=points)[1]
        boxes, classes = boxes[at], classes[at]
    h, w = int(tile[2]), int(tile[3])
    return (np.clip(boxes, 0, [w, h, w, h]), classes), (h, w)


def noisy_boxes(
    boxes,
    classes,
    n_classes: int,
    shape: tuple[int, int],
    profile: NoiseProfile,
    rng: np.random.Generator,
    *,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A plausible human drawing of the true ``boxes`` (shape (B, 4)) of ``classes``
    (shape (B,)) in an image of ``shape``: returns (boxes, classes). Points (``radius``:
    boxes of zero size) move as a whole, false ones are points too."""
    boxes = as_boxes(boxes)
    classes = np.asarray(classes, np.int64).reshape(-1)
    height, width = shape
    if not len(boxes):
        return boxes, classes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    small = area < 0.5 * np.median(area)
    out, kinds = [], []
    lo, hi = profile.jitter
    for box, k, is_small in zip(boxes, classes, small, strict=True):
        if rng.random() < (profile.miss_small if is_small else profile.miss):
            continue
        shift = rng.integers(-hi, hi + 1, 4) if hi > 0 else np.zeros(4, int)
        if radius is not None:
            shift = np.tile(shift[:2], 2)  # a point moves as a whole
        moved = box + shift
        moved = np.clip(moved, 0, [width, height, width, height])
        if radius is None and (moved[2] - moved[0] < 1 or moved[3] - moved[1] < 1):
            moved = box
        if n_classes > 1 and rng.random() < profile.flip:
            k = (k + 1 + rng.integers(n_classes - 1)) % n_classes
        out.append(moved)
        kinds.append(int(k))
    n_false = rng.poisson(profile.false_positive * len(boxes)) if profile.false_positive else 0
    side = 0.0 if radius is not None else np.sqrt(np.median(area))
    for _ in range(n_false):
        x, y = rng.uniform(0, max(1.0, width - side)), rng.uniform(0, max(1.0, height - side))
        out.append([x, y, min(width, x + side), min(height, y + side)])
        kinds.append(int(rng.integers(n_classes)))
    return as_boxes(out), np.asarray(kinds, np.int64)


def corrected_boxes(
    pre: tuple[np.ndarray, np.ndarray] | None,
    truth: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    shape: tuple[int, int],
    profile: NoiseProfile,
    rng: np.random.Generator,
    *,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """What an annotator leaves after correcting the model's boxes ``pre`` toward ``truth``
    (each a pair boxes, classes): a pre-drawn box matching a true box at IoU >=
    ``profile.accept`` is kept where it is (its class corrected as the annotator would draw
    it); a pre-drawn box matching no true box (IoU < 0.5) is deleted, or overlooked with
    probability ``profile.miss``; the other true boxes are drawn as :func:`noisy_boxes` draws
    them. Without a pre-annotation: :func:`noisy_boxes`."""
    drawn, kinds = noisy_boxes(*truth, n_classes, shape, profile, rng, radius=radius)
    if pre is None or not len(pre[0]):
        return drawn, kinds
    pre_boxes, pre_classes = as_boxes(pre[0]), np.asarray(pre[1], np.int64)
    truth_boxes, truth_classes = as_boxes(truth[0]), np.asarray(truth[1], np.int64)
    iou = overlap(pre_boxes, truth_boxes, radius)
    rows, cols = match_optimal(iou, threshold=min(profile.accept, 1.0))
    accepted = dict(zip(cols.tolist(), rows.tolist(), strict=True))  # true box -> pre box
    false = [i for i in range(len(pre_boxes)) if not (iou[i] >= 0.5).any()]
    overlooked = [i for i in false if profile.miss and rng.random() < profile.miss]
    # the annotator's own drawing of an accepted box gives way to the model's
    own = (
        overlap(drawn, truth_boxes[list(accepted)], radius)
        if accepted
        else np.zeros((len(drawn), 0))
    )
    keep = ~(own >= 0.5).any(axis=1) if own.size else np.ones(len(drawn), bool)
    out = [*drawn[keep], *pre_boxes[list(accepted.values())], *pre_boxes[overlooked]]
    classes = [*kinds[keep], *truth_classes[list(accepted)], *pre_classes[overlooked]]
    return as_boxes(out), np.asarray(classes, np.int64)
