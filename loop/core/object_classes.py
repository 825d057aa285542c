"""Several kinds of object in one study (e.g. nucleus and mitotic figure): a label image keeps
the objects, and a list beside it names each one's class, ``classes[k - 1]`` for label ``k``.
``None`` (a study with one kind of object, a tile-stitched annotation) means every object is
of the main class; so does a label past the end of the list."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from loop.core.agreement import iou_matrix, match, object_f1


def class_of_labels(
    mask: np.ndarray, classes: Sequence[str] | None, *, default: str
) -> dict[int, str]:
    """The class of every object (label) of ``mask``.

    >>> import numpy as np
    >>> class_of_labels(np.array([[0, 1, 2, 3]]), ["nucleus", "mitosis"], default="nucleus")
    {1: 'nucleus', 2: 'mitosis', 3: 'nucleus'}
    """
    labels = [int(v) for v in np.unique(mask) if v]
    named = list(classes or ())
    return {k: named[k - 1] if k <= len(named) else default for k in labels}


def of_class(
    mask: np.ndarray, classes: Sequence[str] | None, name: str, *, default: str
) -> np.ndarray:
    """``mask`` with only the objects of class ``name`` (the others set to 0).

    Parameters
    ----------
    mask : ndarray of shape (M, N)
        Instance labels, 0 = background.
    classes : sequence of str or None
        The class of label ``k`` at ``k - 1``.

    Returns
    -------
    ndarray of shape (M, N), the dtype of ``mask``
    """
    mask = np.asarray(mask)
    keep = [k for k, c in class_of_labels(mask, classes, default=default).items() if c == name]
    return np.where(np.isin(mask, keep), mask, 0).astype(mask.dtype, copy=False)


def per_class_agreement(
    masks: Mapping[str, np.ndarray],
    classes: Mapping[str, Sequence[str] | None],
    names: Sequence[str],
    *,
    default: str,
) -> dict[str, float | None]:
    """Mean pairwise object F1 at IoU 0.5 between annotators, class by class: for each class,
    each pair of annotators compared on their objects of that class only (a pair where
    neither drew one is left out; None when nobody drew one).

    Parameters
    ----------
    masks : mapping of annotator to ndarray of shape (M, N)
    classes : mapping of annotator to the class list of their mask (or None)
    names : sequence of str
        The classes to report, the main one included.
    """
    out: dict[str, float | None] = {}
    for name in names:
        split = {a: of_class(m, classes.get(a), name, default=default) for a, m in masks.items()}
        scores = [
            object_f1(split[a], split[b])["f1_50"]
            for a, b in itertools.combinations(sorted(split), 2)
            if split[a].any() or split[b].any()
        ]
        out[name] = float(np.mean(scores)) if scores else None
    return out


def vote_classes(
    fused: np.ndarray,
    masks: Mapping[str, np.ndarray],
    classes: Mapping[str, Sequence[str] | None],
    *,
    default: str,
    iou: float = 0.5,
) -> list[str]:
    """The class of each object of a consensus label image: the most common class among the
    annotators' objects matched to it (one-to-one, IoU >= ``iou``); the main class when no
    object matches or on a tie with it.

    Returns
    -------
    list of str
        Item ``k - 1`` is the class of label ``k``, for ``k`` in 1..max(fused).
    """
    fused = np.asarray(fused)
    votes: dict[int, Counter] = {}
    for annotator, mask in masks.items():
        named = class_of_labels(mask, classes.get(annotator), default=default)
        matrix, fused_labels, labels = iou_matrix(fused, mask)
        rows, cols, ious = match(matrix)
        for r, c, value in zip(rows, cols, ious):
            if value >= iou:
                votes.setdefault(int(fused_labels[r]), Counter())[named[int(labels[c])]] += 1
    out = []
    for k in range(1, int(fused.max(initial=0)) + 1):
        ranked = votes.get(k, Counter()).most_common()
        best = [c for c, n in ranked if n == ranked[0][1]] if ranked else []
        out.append(best[0] if len(best) == 1 else default)
    return out


def counts(mask: np.ndarray, classes: Sequence[str] | None, *, default: str) -> dict[str, int]:
    """Objects per class of a label image.

    >>> import numpy as np
    >>> counts(np.array([[1, 2, 3, 0]]), ["nucleus", "mitosis"], default="nucleus")
    {'nucleus': 2, 'mitosis': 1}
    """
    return dict(Counter(class_of_labels(mask, classes, default=default).values()))
