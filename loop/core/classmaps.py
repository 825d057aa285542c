"""Class maps (semantic segmentation): every pixel labeled with a class index.

A class map is an integer image of shape (M, N) with values ``0 .. K-1`` for ``K`` classes,
class 0 the background (left out of the means over foreground classes). Where only part of an
image is labeled, a boolean ``known`` image of the same shape says which pixels are; the
others count nowhere. Everything here is a function on arrays: reading files, the study's
class table and the label store are elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "class_areas",
    "class_index",
    "class_scores",
    "confusion",
    "from_instances",
    "from_regions",
    "with_unsure",
    "fuse",
    "majority",
    "pixel_entropy",
    "pixel_kappa",
    "scores_from_confusion",
    "summarize_classes",
]


def class_index(
    array: np.ndarray,
    n_classes: int,
    *,
    ignore: int | None = None,
    instances: bool = False,
    values: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """A label image read from a file as a class map and its known pixels.

    Parameters
    ----------
    array : ndarray of shape (M, N), integer
        Class indices ``0 .. n_classes-1``; or, for two classes, a binary image of 0 and 255
        (255 = class 1); or, with ``instances``, instance labels (0 = background).
    n_classes : int
        ``K``, background included.
    ignore : int, optional
        A value that marks unlabeled pixels (not known).
    instances : bool
        ``array`` holds instance labels: two classes give background and object, three give
        background, object interior and object boundary (:func:`from_instances`).
    values : sequence of int, optional
        The value of each class in ``array`` (a class table, e.g. ``[0, 128, 255]``);
        empty: class ``k`` is value ``k``.

    Returns
    -------
    index : ndarray of shape (M, N), uint8
        The class of each pixel (0 where not known).
    known : ndarray of shape (M, N), bool

    Raises
    ------
    ValueError
        When a value is neither a class of the table nor ``ignore``.

    >>> index, known = class_index(np.array([[0, 255], [255, 0]]), 2)
    >>> index.tolist(), bool(known.all())
    ([[0, 1], [1, 0]], True)
    """
    array = np.asarray(array)
    known = np.ones(array.shape, bool) if ignore is None else array != ignore
    if instances:
        return from_instances(np.where(known, array, 0), n_classes), known
    if values:
        table = {int(v): k for k, v in enumerate(values)}
        found = np.unique(array[known])
        bad = [int(v) for v in found if int(v) not in table]
        if bad:
            raise ValueError(
                f"values {', '.join(map(str, bad[:5]))} are not in the class table "
                f"(labels.class_values = {list(values)})"
            )
        index = np.zeros(array.shape, np.uint8)
        for v, k in table.items():
            index[(array == v) & known] = k
        return index, known
    values = np.unique(array[known])
    if n_classes == 2 and values.size and set(values.tolist()) <= {0, 255} and ignore != 255:
        return (array == 255).astype(np.uint8), known
    bad = values[(values < 0) | (values >= n_classes)]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5].tolist())
        extra = f" or {ignore} (unlabeled)" if ignore is not None else ""
        raise ValueError(
            f"values {shown} are not classes: expected 0..{n_classes - 1} (one per class of "
            f"labels.classes){extra}"
        )
    return np.where(known, array, 0).astype(np.uint8), known


def class_areas(classmap: np.ndarray, classes: Sequence[str]) -> dict[str, tuple[int, float]]:
    """(pixels, share of the image rounded to 6 decimals) of each class of a class map.

    >>> class_areas(np.array([[0, 1, 1, 1]]), ["bg", "a", "b"])
    {'bg': (1, 0.25), 'a': (3, 0.75), 'b': (0, 0.0)}
    """
    counts = np.bincount(np.asarray(classmap).ravel(), minlength=len(classes))
    size = max(1, np.asarray(classmap).size)
    return {
        name: (int(counts[k]), round(float(counts[k] / size), 6)) for k, name in enumerate(classes)
    }


def from_instances(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """Classes from instance labels: 2 classes give background (0) and object (1); 3 give
    background, object interior (1) and the objects' inner boundary (2), the usual
    formulation for touching nuclei.

    >>> from_instances(np.pad(np.ones((3, 3), int), 1), 3)[2].tolist()
    [0, 2, 1, 2, 0]
    """
    from skimage.segmentation import find_boundaries

    if n_classes not in (2, 3):
        raise ValueError(
            f"instance masks become 2 classes (background, object) or 3 (and boundary); "
            f"labels.classes has {n_classes}"
        )
    out = (mask > 0).astype(np.uint8)
    if n_classes == 3:
        out[find_boundaries(mask, mode="inner") & (mask > 0)] = 2
    return out


def confusion(
    truth: np.ndarray, pred: np.ndarray, n_classes: int, known: np.ndarray | None = None
) -> np.ndarray:
    """The (K, K) confusion counts of ``pred`` against ``truth`` over the known pixels:
    ``[t, p]`` counts pixels of true class ``t`` predicted as ``p``.

    >>> confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"class maps of shapes {truth.shape} and {pred.shape} differ")
    if known is not None:
        truth, pred = truth[known], pred[known]
    flat = truth.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores_from_confusion(counts: np.ndarray, classes: Sequence[str]) -> dict:
    """Dice and IoU per class, their means over the foreground classes (all but the first),
    and the pixel accuracy, from confusion counts (:func:`confusion`).

    A class absent from both truth and prediction has no Dice or IoU (None) and is left out
    of the means.

    >>> s = scores_from_confusion(np.array([[1, 0], [1, 1]]), ["bg", "fg"])
    >>> round(s["per_class"]["fg"]["dice"], 3), s["mean_dice"] == s["per_class"]["fg"]["dice"]
    (0.667, True)
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diag(counts)
    fp = counts.sum(axis=0) - tp
    fn = counts.sum(axis=1) - tp
    per_class = {}
    for k, name in enumerate(classes):
        denominator = 2 * tp[k] + fp[k] + fn[k]
        per_class[name] = {
            "dice": float(2 * tp[k] / denominator) if denominator else None,
            "iou": float(tp[k] / (tp[k] + fp[k] + fn[k])) if denominator else None,
            "pixels": int(counts[k].sum()),
        }
    foreground = [per_class[name] for name in classes[1:]]
    total = counts.sum()
    return {
        "mean_dice": _mean(c["dice"] for c in foreground),
        "mean_iou": _mean(c["iou"] for c in foreground),
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "per_class": per_class,
    }


def class_scores(
    truth: np.ndarray,
    pred: np.ndarray,
    classes: Sequence[str],
    known: np.ndarray | None = None,
) -> dict:
    """One image's figures (:func:`scores_from_confusion`) with its ``confusion`` counts, which
    :func:`summarize_classes` pools."""
    counts = confusion(truth, pred, len(classes), known)
    return {**scores_from_confusion(counts, classes), "confusion": counts.tolist()}


def summarize_classes(
    per_image: Sequence[dict], classes: Sequence[str], groups: Sequence[str] | None = None
) -> dict:
    """Figures over a set of images from their pooled pixels (the confusion counts of
    :func:`class_scores` added up), overall and per group.

    Returns
    -------
    dict
        ``mean_dice``, ``mean_iou``, ``pixel_accuracy``, ``per_class``, ``n_images`` and
        ``per_group`` (group -> the same without ``per_group``).
    """
    k = len(classes)

    def pooled(rows):
        counts = sum((np.asarray(r["confusion"]) for r in rows), np.zeros((k, k), np.int64))
        return {**scores_from_confusion(counts, classes), "n_images": len(rows)}

    out = pooled(per_image)
    by_group: dict[str, list] = {}
    for row, group in zip(per_image, groups, strict=True) if groups is not None else ():
        by_group.setdefault(str(group), []).append(row)
    out["per_group"] = {g: pooled(rows) for g, rows in sorted(by_group.items())}
    return out


def pixel_kappa(a: np.ndarray, b: np.ndarray, n_classes: int, known=None) -> float:
    """Cohen's kappa of two class maps over their pixels (1: the same, 0: chance).

    >>> pixel_kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 1, 0]), 2)
    1.0
    """
    counts = confusion(a, b, n_classes, known).astype(np.float64)
    total = counts.sum()
    if not total:
        return float("nan")
    observed = np.trace(counts) / total
    expected = float(counts.sum(axis=0) @ counts.sum(axis=1)) / total**2
    return 1.0 if expected == 1.0 else float((observed - expected) / (1.0 - expected))


def majority(maps: Sequence[np.ndarray], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel majority of several annotators' class maps.

    Returns
    -------
    index : ndarray of shape (M, N), uint8
        The most voted class (a tie goes to the lower class index).
    support : ndarray of shape (M, N), float
        The share of annotators who voted for it.

    >>> index, support = majority([np.array([0, 1]), np.array([1, 1]), np.array([1, 0])], 2)
    >>> index.tolist(), support.round(2).tolist()
    ([1, 1], [0.67, 0.67])
    """
    if not maps:
        raise ValueError("majority of no class maps: give at least one")
    votes = np.stack(
        [sum((np.asarray(m) == k).astype(np.int32) for m in maps) for k in range(n_classes)]
    )
    return votes.argmax(axis=0).astype(np.uint8), votes.max(axis=0) / len(maps)


def pixel_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each pixel's class probabilities, divided by its maximum ``log K``.

    Parameters
    ----------
    probabilities : ndarray of shape (K, M, N)

    Returns
    -------
    ndarray of shape (M, N) in [0, 1]

    >>> pixel_entropy(np.array([[[0.5, 1.0]], [[0.5, 0.0]]])).round(3).tolist()
    [[1.0, 0.0]]
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=0) / np.log(max(2, p.shape[0]))


def from_regions(regions: np.ndarray, names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """A class map from painted regions: region ``k`` of ``regions`` (1..R, 0 = unpainted)
    painted with the class named ``names[k - 1]``; unpainted pixels are the background.

    Raises
    ------
    ValueError
        For a region painted with a name that is no class, or with the background's.

    >>> from_regions(np.array([[0, 1, 2]]), ["b", "a"], ["bg", "a", "b"]).tolist()
    [[0, 2, 1]]
    """
    index = {name: k for k, name in enumerate(classes)}
    out = np.zeros(regions.shape, np.uint8)
    for k, name in enumerate(names, start=1):
        if name.endswith("?") and index.get(name[:-1], 0):  # the model's doubtful paint, kept
            name = name[:-1]
        if index.get(name, 0) == 0:
            raise ValueError(
                f"a region is painted as {name!r}, which is no class to paint (classes: "
                f"{', '.join(classes[1:])}; {classes[0]} is what is left unpainted)"
            )
        out[regions == k] = index[name]
    return out


def with_unsure(
    classmap: np.ndarray, probability: np.ndarray, classes: Sequence[str], threshold: float
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A class map to pre-paint, the doubtful pixels of each class apart: a pixel of class
    ``k`` > 0 whose probability is below ``threshold`` becomes value ``k + K``, named
    ``"<class>?"`` (:func:`from_regions` reads such a name back as its class).

    Returns
    -------
    mask : ndarray of shape (M, N), int32
    names : tuple of str
        The name of each value (``classes`` and, with a threshold, their doubtful copies).

    >>> m, names = with_unsure(np.array([[0, 1, 1]]), np.array([[0.2, 0.9, 0.4]]), ["bg", "a"], 0.5)
    >>> m.tolist(), names
    ([[0, 1, 3]], ('bg', 'a', 'bg?', 'a?'))
    """
    classes = tuple(classes)
    if threshold <= 0:
        return np.asarray(classmap, np.int32), classes
    doubtful = (np.asarray(probability) < threshold) & (classmap > 0)
    mask = np.where(doubtful, classmap.astype(np.int32) + len(classes), classmap)
    return mask.astype(np.int32), classes + tuple(f"{c}?" for c in classes)


def fuse(maps: Sequence[np.ndarray], n_classes: int, *, method: str = "majority") -> np.ndarray:
    """The consensus of several annotators' class maps: the per-pixel ``majority``
    (:func:`majority`), or ``staple``: binary STAPLE of each class against the rest
    (:func:`loop.core.fusion.staple`), each pixel taking the class of highest posterior.

    >>> maps = [np.array([[0, 1, 1]]), np.array([[0, 1, 2]]), np.array([[1, 1, 2]])]
    >>> fuse(maps, 3).tolist(), fuse(maps, 3, method="staple").tolist()
    ([[0, 1, 2]], [[0, 1, 2]])
    """
    if method == "majority":
        return majority(maps, n_classes)[0]
    if method != "staple":
        raise ValueError(f"no fusion {method!r} of class maps: choose majority or staple")
    from loop.core.fusion import staple

    posterior = np.stack([staple([np.asarray(m) == k for m in maps]) for k in range(n_classes)])
    return posterior.argmax(axis=0).astype(np.uint8)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
