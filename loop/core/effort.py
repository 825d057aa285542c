"""Expert effort: what an annotator changed in the pre-annotation they started from.

An annotator who corrects a model's objects accepts most of them, fixes some boundaries,
deletes false objects, draws missed ones, and splits or merges a few. Counting those edits,
and weighting each by what it costs to make, measures the work a task took: the cost axis
on which choosing what to annotate is judged (images or objects alone hide it).

The weights follow the Cell Tracking Challenge's AOGM-D (the effort to fix a detection): a
missed object 10, a split or a merge 5, a false positive 1. Two edits that AOGM-D does not
have are added: a corrected boundary (2: part of an outline redrawn, more than deleting an
object, less than drawing one) and an accepted object (0.2: the expert still looks at every
pre-drawn object before accepting it; a glance is a small fraction of drawing an outline).
They are defaults of ``[effort]`` in ``loop.toml``; with human annotators, Label Studio's lead
time per annotation is the measured figure beside them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from loop.core.agreement import check_shapes, match

SAME = 0.95
"""IoU at or above which a kept object counts as accepted unchanged."""
MATCH = 0.5
"""IoU at or above which a kept object counts as the same object (a corrected boundary)."""
INSIDE = 0.5
"""Share of an object's area inside another for a split or a merge."""


@dataclass(frozen=True)
class Edits:
    """The edits from a pre-annotation to an annotation (counts of objects or events)."""

    accepted: int = 0
    corrected: int = 0
    deleted: int = 0
    drawn: int = 0
    split: int = 0
    merged: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class EffortWeights:
    """The cost of each edit, in units of deleting one false object (``[effort]`` in
    ``loop.toml``)."""

    accepted: float = 0.2
    """Looking at a pre-drawn object and keeping it."""
    corrected: float = 2.0
    """Redrawing part of an object's outline."""
    deleted: float = 1.0
    """Deleting a false object (AOGM-D's false positive)."""
    drawn: float = 10.0
    """Drawing a missed object (AOGM-D's false negative)."""
    split: float = 5.0
    """Splitting one object in two (AOGM-D)."""
    merged: float = 5.0
    """Merging two objects into one (AOGM-D)."""

    def __post_init__(self):
        from loop.config_checks import all_in_range

        all_in_range("effort", self, {name: (0.0, 1000.0) for name in asdict(self)})


def edits(pre: np.ndarray, post: np.ndarray) -> Edits:
    """Count the edits that turn label image ``pre`` into ``post``.

    Parameters
    ----------
    pre, post : ndarray of shape (M, N)
        Instance label images (0 = background): the pre-annotation and the annotation.

    Returns
    -------
    Edits
        ``split``: a pre-drawn object that became several (each mostly inside it; one event
        per extra piece); ``merged``: several pre-drawn objects that became one (one event per
        extra object); of the rest, matched one to one at IoU >= 0.5, ``accepted`` (IoU >=
        0.95) or ``corrected``; ``deleted``: pre-drawn objects left unmatched; ``drawn``:
        objects of the annotation left unmatched.

    Examples
    --------
    >>> import numpy as np
    >>> pre = np.zeros((8, 8), int); pre[0:3, 0:3] = 1; pre[5:8, 5:8] = 2
    >>> post = pre.copy(); post[post == 2] = 0; post[0:3, 5:8] = 3
    >>> edits(pre, post)
    Edits(accepted=1, corrected=0, deleted=1, drawn=1, split=0, merged=0)
    """
    pre, post = np.asarray(pre), np.asarray(post)
    check_shapes(pre, post)
    labels_a, inv_a = np.unique(pre, return_inverse=True)
    labels_b, inv_b = np.unique(post, return_inverse=True)
    counts = np.zeros((labels_a.size, labels_b.size), dtype=np.int64)
    np.add.at(counts, (inv_a.ravel(), inv_b.ravel()), 1)
    keep_a, keep_b = labels_a != 0, labels_b != 0
    area_a, area_b = counts.sum(axis=1)[keep_a], counts.sum(axis=0)[keep_b]
    inter = counts[np.ix_(keep_a, keep_b)].astype(float)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    same = iou >= MATCH
    # a piece mostly inside a pre-drawn object / a pre-drawn object mostly inside a new one
    piece_of = inter / np.maximum(area_b, 1)[None, :] >= INSIDE
    part_of = inter / np.maximum(area_a, 1)[:, None] >= INSIDE
    split = merged = 0
    used_a = np.zeros(len(area_a), bool)
    used_b = np.zeros(len(area_b), bool)
    for i in range(len(area_a)):
        pieces = np.flatnonzero(piece_of[i] & ~used_b)
        if len(pieces) >= 2 and not same[i].any():
            split += len(pieces) - 1
            used_a[i], used_b[pieces] = True, True
    for j in range(len(area_b)):
        parts = np.flatnonzero(part_of[:, j] & ~used_a)
        if len(parts) >= 2 and not same[:, j].any():
            merged += len(parts) - 1
            used_a[parts], used_b[j] = True, True
    free_a, free_b = np.flatnonzero(~used_a), np.flatnonzero(~used_b)
    rows, cols, ious = match(np.where(same, iou, 0.0)[np.ix_(free_a, free_b)])
    accepted = int(np.sum(ious >= SAME))
    return Edits(
        accepted=accepted,
        corrected=len(ious) - accepted,
        deleted=len(free_a) - len(rows),
        drawn=len(free_b) - len(cols),
        split=split,
        merged=merged,
    )


def class_edits(pre: np.ndarray, post: np.ndarray) -> Edits:
    """Count the edits that turn class map ``pre`` into ``post`` (semantic segmentation): for
    each class but the background, its connected painted areas are the objects of
    :func:`edits`, and the counts of all classes are added up (an area repainted in another
    class is one deleted and one drawn).

    Parameters
    ----------
    pre, post : ndarray of shape (M, N)
        Class maps (0 = background, left unpainted).

    >>> import numpy as np
    >>> pre = np.zeros((8, 8), int); pre[0:3, 0:3] = 1; pre[5:8, 5:8] = 2
    >>> post = pre.copy(); post[5:8, 5:8] = 1
    >>> class_edits(pre, post)
    Edits(accepted=1, corrected=0, deleted=1, drawn=1, split=0, merged=0)
    """
    from scipy import ndimage as ndi

    pre, post = np.asarray(pre), np.asarray(post)
    check_shapes(pre, post)
    total = Edits()
    for k in np.union1d(np.unique(pre), np.unique(post)):
        if k == 0:
            continue
        counts = edits(ndi.label(pre == k)[0], ndi.label(post == k)[0])
        total = Edits(**{f: getattr(total, f) + getattr(counts, f) for f in total.as_dict()})
    return total


def box_edits(pre_boxes, pre_classes, post_boxes, post_classes, *, radius=None) -> Edits:
    """Count the edits that turn the boxes ``pre`` into ``post`` (detection): boxes matched
    one to one at IoU >= 0.5 (whatever their class) are ``accepted`` (IoU >= 0.95 and the same
    class) or ``corrected`` (moved, resized or given another class); ``deleted``: pre-drawn
    boxes left unmatched; ``drawn``: boxes of the annotation left unmatched. Points
    (``radius``) match by distance (:func:`loop.core.boxes.overlap`).

    Parameters
    ----------
    pre_boxes, post_boxes : array_like of shape (B, 4)
    pre_classes, post_classes : array_like of shape (B,)

    >>> box_edits([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [[0, 0, 10, 11]], [1])
    Edits(accepted=0, corrected=1, deleted=1, drawn=0, split=0, merged=0)
    """
    from loop.core.boxes import as_boxes, match_optimal, overlap

    pre, post = as_boxes(pre_boxes), as_boxes(post_boxes)
    iou = overlap(pre, post, radius)
    rows, cols = match_optimal(iou, threshold=MATCH)
    same = (iou[rows, cols] >= SAME) & (
        np.asarray(pre_classes, np.int64)[rows] == np.asarray(post_classes, np.int64)[cols]
    )
    accepted = int(same.sum())
    return Edits(
        accepted=accepted,
        corrected=len(rows) - accepted,
        deleted=len(pre) - len(rows),
        drawn=len(post) - len(cols),
    )


def effort(counts: Edits, weights: EffortWeights = EffortWeights()) -> float:
    """The weighted sum of the edits.

    >>> effort(Edits(accepted=10, drawn=1))
    12.0
    """
    values, costs = counts.as_dict(), asdict(weights)
    return float(sum(values[name] * costs[name] for name in values))


def from_scratch(n_objects: int, weights: EffortWeights = EffortWeights()) -> float:
    """The effort of drawing ``n_objects`` with no pre-annotation (AOGM-D's normaliser)."""
    return float(n_objects * weights.drawn)
