"""Regions: square parts of an image, the unit an expert annotates when the model is wrong in
a few places of an image and right in the rest.

An image is cut into a grid of ``size`` x ``size`` regions (:func:`grid`); a region's score is
a per-pixel uncertainty map summed over it, computed once per image with summed-area tables
(:func:`region_means`); a batch takes the best regions across the pool, at most ``per_image``
of one image (:func:`select_regions`), so that the experts' time spreads over the pool.
"""

from __future__ import annotations

import numpy as np

from loop.core.selectors import _as_rng, steady, typiclust


def grid(height: int, width: int, size: int) -> np.ndarray:
    """The regions of an image: rows of ``size`` x ``size`` squares covering it.

    A side shorter than ``size`` gives one region that long; the last region of a row or
    column is moved back inside the image (it overlaps its neighbour) rather than cut short,
    so that every region has the same size.

    Returns
    -------
    ndarray of shape (R, 4), int
        ``row, col, height, width`` of each region, in raster order.

    >>> grid(300, 200, 128)[:, :2].tolist()  # corners; every region is 128 x 128
    [[0, 0], [0, 72], [128, 0], [128, 72], [172, 0], [172, 72]]
    >>> grid(50, 60, 128).tolist()
    [[0, 0, 50, 60]]
    """
    if size < 1 or height < 1 or width < 1:
        raise ValueError(f"grid of a {height}x{width} image in regions of {size}: all must be >= 1")

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        out = list(range(0, length - size, size))
        return out + [length - size]

    h, w = min(height, size), min(width, size)
    return np.array([[r, c, h, w] for r in starts(height) for c in starts(width)], dtype=int)


def region_means(values: np.ndarray, weights: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    """The weighted mean of a per-pixel map over each region.

    Parameters
    ----------
    values : ndarray of shape (M, N)
    weights : ndarray of shape (M, N) or None
        Non-negative weights (None: every pixel 1). A region whose weights sum to nothing
        gets 0.
    boxes : ndarray of shape (R, 4)
        ``row, col, height, width`` (:func:`grid`).

    Returns
    -------
    ndarray of shape (R,)

    >>> v = np.arange(16.0).reshape(4, 4)
    >>> region_means(v, None, grid(4, 4, 2)).tolist()
    [2.5, 4.5, 10.5, 12.5]
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    top = _box_sums(values * w, boxes)
    bottom = _box_sums(w, boxes)
    return np.divide(top, bottom, out=np.zeros(len(boxes)), where=bottom > 1e-9)


def _box_sums(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    if len(boxes) == 0:
        return np.zeros(0)
    r0, c0 = boxes[:, 0], boxes[:, 1]
    r1, c1 = r0 + boxes[:, 2], c0 + boxes[:, 3]
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def select_regions(
    scores: np.ndarray | None,
    images: np.ndarray,
    k: int,
    *,
    per_image: int = 2,
    groups: np.ndarray | None = None,
    quotas: dict | None = None,
    rng=None,
) -> np.ndarray:
    """Pick ``k`` regions of the pool: the highest scores (or at random when ``scores`` is
    None), at most ``per_image`` of one image, each group its quota when given.

    Parameters
    ----------
    scores : ndarray of shape (R,) or None
        A region's uncertainty (higher: more worth an expert's look); NaN counts as highest.
    images : ndarray of shape (R,)
        The image each region belongs to.
    per_image : int
        The cap of regions from one image in the batch.
    groups : ndarray of shape (R,), optional
        The metadata group of each region's image; with ``quotas`` (group -> slots, e.g.
        :func:`loop.core.selectors.group_quotas`) each group fills its own slots first.
    rng : Generator or int, optional
        Random order (random picks, and ties of equal scores after rounding).

    Returns
    -------
    ndarray of shape (min(k, n allowed),), int
        Indices of the chosen regions, best first.

    >>> select_regions(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 1, 1, 2]), 3, per_image=2)
    array([0, 1, 3])
    """
    images = np.asarray(images)
    n = len(images)
    rng = _as_rng(rng)
    if scores is None:
        order = rng.permutation(n)
    else:
        ranked = np.nan_to_num(steady(np.asarray(scores, float)), nan=np.inf)
        order = np.argsort(-ranked, kind="stable")
    taken: dict = {}
    chosen: list[int] = []
    slots = dict(quotas or {})

    def room(i: int) -> bool:
        return taken.get(images[i], 0) < per_image

    if groups is not None and slots:
        groups = np.asarray(groups)
        for i in order:
            if len(chosen) >= k:
                break
            g = groups[i]
            if slots.get(g, 0) > 0 and room(i):
                chosen.append(int(i))
                taken[images[i]] = taken.get(images[i], 0) + 1
                slots[g] -= 1
    for i in order:  # what quotas left free (or all of it without groups)
        if len(chosen) >= k:
            break
        if int(i) not in chosen and room(i):
            chosen.append(int(i))
            taken[images[i]] = taken.get(images[i], 0) + 1
    return np.array(chosen, dtype=int)


def typical_regions(
    embeddings: np.ndarray,
    images: np.ndarray,
    k: int,
    *,
    per_image: int = 2,
    centers: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    quotas: dict | None = None,
    rng=None,
) -> np.ndarray:
    """Pick ``k`` regions for coverage: TypiClust (:func:`loop.core.selectors.typiclust`) on
    the regions' embeddings, the labeled regions as ``centers``, within each group's quota
    when given, at most ``per_image`` of one image (when the cap drops a pick, TypiClust runs
    again on the regions left, with the regions chosen so far counting as covered).

    Parameters
    ----------
    embeddings : ndarray of shape (R, d)
        The candidate regions (e.g. model-free appearance features of each region).
    images : ndarray of shape (R,)
        The image each region belongs to.
    centers : ndarray of shape (m, d), optional
        The labeled regions: their clusters count as covered.
    groups, quotas, per_image, rng
        As :func:`select_regions`.

    Returns
    -------
    ndarray of shape (min(k, n allowed),), int
        Indices of the chosen regions, in TypiClust's order (largest uncovered cluster first).

    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 9.0)]) + rng.normal(0, .1, (40, 2))
    >>> sorted(int(i >= 20) for i in typical_regions(x, np.arange(40), 2, rng=0))
    [0, 1]
    """
    x = np.asarray(embeddings, float)
    images = np.asarray(images)
    rng = _as_rng(rng)
    known = np.zeros((0, x.shape[1])) if centers is None else np.asarray(centers, float)
    members = {None: np.arange(len(x))}
    if groups is not None and quotas:
        members = {g: np.flatnonzero(np.asarray(groups) == g) for g in quotas}
    chosen: list[int] = []
    taken: dict = {}
    for group, rows in members.items():
        want = min(k - len(chosen), k if group is None else quotas[group])
        got = 0
        while got < want:  # picks beyond the cap are dropped, then TypiClust runs again
            room = [int(i) for i in rows if taken.get(images[i], 0) < per_image]
            room = np.array([i for i in room if i not in chosen], dtype=int)
            if not len(room):
                break
            seen = np.concatenate([known, x[chosen]]) if chosen else known
            for i in room[typiclust(x[room], want - got, centers=seen, rng=rng)]:
                if taken.get(images[i], 0) < per_image:
                    chosen.append(int(i))
                    taken[images[i]] = taken.get(images[i], 0) + 1
                    got += 1
    return np.array(chosen, dtype=int)


def relative(region, tile) -> tuple[int, int, int, int]:
    """A region (``row, col, height, width`` of the image) in the coordinates of ``tile``
    (the crop shown around it; None: the whole image).

    >>> relative([100, 50, 64, 64], [68, 18, 128, 128])
    (32, 32, 64, 64)
    """
    r, c, h, w = (int(v) for v in region)
    if tile is None:
        return r, c, h, w
    return r - int(tile[0]), c - int(tile[1]), h, w


def with_context(region, height: int, width: int, context: int) -> tuple[int, int, int, int]:
    """The crop shown for a region: the region grown by ``context`` pixels on every side,
    kept inside the image.

    >>> with_context([0, 100, 64, 64], 200, 180, 32)
    (0, 68, 96, 112)
    """
    r, c, h, w = (int(v) for v in region)
    r0, c0 = max(0, r - context), max(0, c - context)
    r1, c1 = min(height, r + h + context), min(width, c + w + context)
    return r0, c0, r1 - r0, c1 - c0


def touching(mask: np.ndarray, box) -> np.ndarray:
    """``mask`` with only the objects that have a pixel in ``box`` (each kept whole).

    >>> m = np.zeros((6, 6), int); m[0:2, 0:2] = 1; m[4:6, 4:6] = 2
    >>> np.unique(touching(m, (0, 0, 3, 3))).tolist()
    [0, 1]
    """
    return _touching_any(mask, [box])[0]


def _touching_any(mask: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """(``mask`` with only the objects that have a pixel in one of ``boxes``, each kept whole;
    the pixels of the boxes)."""
    inside = np.zeros(mask.shape, bool)
    for box in boxes:
        r, c, h, w = (int(v) for v in box)
        inside[max(r, 0) : r + h, max(c, 0) : c + w] = True
    ids = np.unique(mask[inside])
    ids = ids[ids != 0]
    return np.where(np.isin(mask, ids), mask, 0), inside


def restrict(mask: np.ndarray, known: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """A partial label cut down to some of its regions: the objects that touch one of
    ``boxes`` (each kept whole), known in those boxes and over those objects, and nowhere
    else (what an arm of the loop paid for when other arms annotated other regions).

    Parameters
    ----------
    mask : (M, N) int array
        The label image, 0 = background where known.
    known : (M, N) bool array
        The pixels whose label is known.
    boxes : sequence of (row, col, height, width)
        The regions to keep.

    Returns
    -------
    mask, known : (M, N) int array, (M, N) bool array

    >>> m = np.zeros((6, 6), int); m[0:2, 0:2] = 1; m[4:6, 4:6] = 2
    >>> m2, k2 = restrict(m, np.ones((6, 6), bool), [(0, 0, 3, 3)])
    >>> np.unique(m2).tolist(), int(k2.sum())
    ([0, 1], 9)
    """
    kept, inside = _touching_any(mask, boxes)
    return kept, known & (inside | (kept > 0))


def restrict_pixels(mask: np.ndarray, known: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """A partial class map cut down to some of its regions: known inside ``boxes`` only (a
    pixel's class needs no object beyond the frame, unlike :func:`restrict`).

    >>> m = np.ones((6, 6), int)
    >>> m2, k2 = restrict_pixels(m, np.ones((6, 6), bool), [(0, 0, 3, 3)])
    >>> int(k2.sum()), int(m2.sum())
    (9, 9)
    """
    _, inside = _touching_any(mask, boxes)
    known = known & inside
    return np.where(known, mask, 0), known
