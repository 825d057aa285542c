"""Batch selectors: which ``k`` of the scored images to annotate, as plain functions on
arrays (scores of shape (n,), embeddings of shape (n, d)). The strategy registry
(:mod:`loop.core.strategies`) names them.

References
----------
Sener, O., Savarese, S. (2018). Active learning for convolutional neural networks: a core-set
approach. ICLR (k-center greedy).
Hacohen, G., Dekel, A., Weinshall, D. (2022). Active learning on a budget: opposite
strategies suit high and low budgets. ICML (TypiClust).
Prabhu, V. et al. (2021). Active domain adaptation via clustering uncertainty-weighted
embeddings. ICCV (CLUE).
Kottke, D. et al. (2021). scikit-activeml: a library and toolbox for active learning
algorithms. Preprints 2021030194 (the TypiClust used here).
"""

from __future__ import annotations

import numpy as np


def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


STEADY_BITS = 10
"""Significant bits kept of each score and embedding value before a batch is chosen (about
three decimal digits). The same model measures an image with differences in the last float
digits on another thread count, process or machine (a Dask worker, a GPU); a batch must not
depend on them, and k-means and farthest-point choices flip on such differences when two
candidates are nearly tied. Values this close are ties; ties go to the lower index."""


def steady(x: np.ndarray | None, bits: int = STEADY_BITS) -> np.ndarray | None:
    """``x`` with each finite value rounded to ``bits`` significant bits (float64).

    >>> import numpy as np
    >>> a = np.array([0.1234567, 0.1234568, -3.0, np.inf])
    >>> steady(a).tolist() == steady(a * (1 + 1e-9)).tolist()
    True
    >>> bool(steady(a)[0] == steady(a)[1])
    True
    """
    if x is None:
        return None
    a = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(a)
    rounded = np.ldexp(np.round(mantissa * 2.0**bits) / 2.0**bits, exponent)
    return np.where(np.isfinite(a), rounded, a)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first (ties: lower index first; NaN counts
    as highest, since an unmeasurable image is worth a look).

    >>> import numpy as np
    >>> top_k(np.array([0.1, 0.9, 0.5]), 2).tolist()
    [1, 2]
    """
    scores = np.nan_to_num(np.asarray(scores, float), nan=np.inf)
    return np.argsort(-scores, kind="stable")[: max(0, k)]


def random_k(n: int, k: int, rng=None) -> np.ndarray:
    """``k`` indices out of ``n`` without replacement."""
    return _as_rng(rng).permutation(n)[: min(k, n)]


def k_center_greedy(
    embeddings: np.ndarray, k: int, *, centers: np.ndarray | None = None, first: int = 0
) -> np.ndarray:
    """Greedy k-center (core-set) selection: each pick is the point farthest from all centers.

    Parameters
    ----------
    embeddings : ndarray of shape (n, d)
    k : int
    centers : ndarray of shape (m, d), optional
        Already-labeled points; without them the first pick is ``first``.
    first : int
        Index picked first when there are no centers (e.g. the most uncertain image).

    Returns
    -------
    ndarray of shape (min(k, n),)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
    >>> k_center_greedy(x, 3).tolist()
    [0, 4, 2]
    """
    x = np.asarray(embeddings, float)
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=int)
    chosen: list[int] = []
    if centers is not None and len(centers):
        c = np.asarray(centers, float)
        distance = np.min(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1), axis=1)
    else:
        chosen.append(int(first))
        distance = ((x - x[first]) ** 2).sum(-1)
    while len(chosen) < k:
        distance[chosen] = -1.0
        pick = int(np.argmax(distance))
        chosen.append(pick)
        distance = np.minimum(distance, ((x - x[pick]) ** 2).sum(-1))
    return np.array(chosen, dtype=int)


def uncertainty_diversity(
    scores: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    *,
    shortlist: int = 4,
    centers: np.ndarray | None = None,
) -> np.ndarray:
    """The top ``shortlist * k`` images by score, then ``k`` of them by k-center greedy.

    With ``centers`` (the labeled images' embeddings) each pick is the shortlisted image
    farthest from everything labeled or picked, so a batch does not repeat what is already
    labeled; without them the most uncertain image is picked first.

    Returns
    -------
    ndarray of shape (min(k, n),)
        Indices into ``scores``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [5.0]])
    >>> uncertainty_diversity(np.array([0.9, 0.8, 0.1]), x, 1, centers=np.array([[0.0]])).tolist()
    [2]
    """
    candidates = top_k(scores, max(k, shortlist * k))
    picked = k_center_greedy(np.asarray(embeddings)[candidates], k, centers=centers, first=0)
    return candidates[picked]


def typiclust(
    embeddings: np.ndarray,
    k: int,
    *,
    centers: np.ndarray | None = None,
    neighbours: int = 20,
    rng=None,
) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022): the most typical image of each of the largest clusters
    that hold no labeled image, for low budgets. scikit-activeml's implementation.

    The pool and the labeled images are clustered together by k-means into
    ``len(centers) + k`` clusters; typicality is the inverse mean distance to the
    ``neighbours`` nearest images of the same cluster.

    Parameters
    ----------
    embeddings : ndarray of shape (n, d)
        The unlabeled candidates.
    centers : ndarray of shape (m, d), optional
        The labeled images.

    Returns
    -------
    ndarray of shape (min(k, n),)
        Indices into ``embeddings``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.concatenate([np.zeros((30, 2)), np.full((6, 2), 9.0)])
    >>> x = x + np.random.default_rng(0).normal(0, 0.1, x.shape)
    >>> sorted(set(int(i >= 30) for i in typiclust(x, 2, rng=0)))
    [0, 1]
    """
    from skactiveml.pool import TypiClust

    x = np.asarray(embeddings, float)
    k = min(k, len(x))
    if k <= 0:
        return np.zeros(0, dtype=int)
    c = np.zeros((0, x.shape[1])) if centers is None or not len(centers) else centers
    both = np.concatenate([np.asarray(c, float), x])
    y = np.full(len(both), np.nan)
    y[: len(c)] = 0
    seed = int(_as_rng(rng).integers(2**31))
    query = TypiClust(random_state=seed, k=min(neighbours, max(1, len(both) - 1)))
    picked = query.query(both, y, candidates=np.arange(len(c), len(both)), batch_size=k)
    return np.asarray(picked, dtype=int) - len(c)


def clue(scores: np.ndarray, embeddings: np.ndarray, k: int, *, rng=None) -> np.ndarray:
    """CLUE-like selection (Prabhu et al. 2021): k-means of the candidates weighted by their
    uncertainty into ``k`` clusters, then the image nearest each centre.

    Uncertain regions of the embedding pull the centres, so the batch is uncertain,
    representative and diverse at once.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Uncertainty (>= 0; NaN counts as the highest).

    Returns
    -------
    ndarray of shape (min(k, n),)
    """
    from sklearn.cluster import KMeans

    x = np.asarray(embeddings, float)
    k = min(k, len(x))
    if k <= 0:
        return np.zeros(0, dtype=int)
    w = np.asarray(scores, float)
    w = np.nan_to_num(w, nan=np.nanmax(w) if np.isfinite(w).any() else 1.0)
    w = np.clip(w, 0, None) + 1e-6
    seed = int(_as_rng(rng).integers(2**31))
    model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x, sample_weight=w)
    distance = ((x[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1)
    chosen: list[int] = []
    for centre in np.argsort(-np.bincount(model.labels_, weights=w, minlength=k)):
        order = np.argsort(distance[:, centre], kind="stable")
        pick = next(int(i) for i in order if int(i) not in chosen)
        chosen.append(pick)
    return np.array(chosen, dtype=int)


def group_quotas(groups: np.ndarray, weights: np.ndarray, k: int, *, labeled=()) -> dict:
    """Batch slots per group, so that after this batch each group holds about its share of
    ``weights`` (its share of the pool's uncertainty, or of the pool) of all labeled images.

    Parameters
    ----------
    groups : ndarray of shape (n,)
        The candidates' groups.
    weights : ndarray of shape (n,)
    k : int
    labeled : sequence of group names
        The groups of the images labeled so far: a group that has had fewer than its share
        catches up, so a rare group is not rounded away batch after batch.

    Returns
    -------
    dict
        Group -> slots (summing to ``min(k, n)``; never more than the group's candidates),
        by largest remainder.

    >>> import numpy as np
    >>> g = np.array(["a", "a", "a", "b"])
    >>> group_quotas(g, np.ones(4), 4), group_quotas(g, np.array([1.0, 1.0, 1.0, 3.0]), 2)
    ({'a': 3, 'b': 1}, {'a': 1, 'b': 1})
    """
    groups = np.asarray(groups)
    w = np.clip(np.nan_to_num(np.asarray(weights, float), nan=1.0), 0, None) + 1e-9
    names = list(dict.fromkeys(groups.tolist()))
    size = {g: int((groups == g).sum()) for g in names}
    share = {g: float(w[groups == g].sum()) for g in names}
    total = sum(share.values())
    k = min(k, len(groups))
    have = {g: sum(1 for x in labeled if x == g) for g in names}
    after = k + sum(have.values())
    want = {g: max(0.0, after * share[g] / total - have[g]) for g in names}
    scale = sum(want.values())
    exact = {g: k * want[g] / scale if scale else k * share[g] / total for g in names}
    quota = {g: min(size[g], int(exact[g])) for g in names}
    while sum(quota.values()) < k:
        g = max(
            (g for g in names if quota[g] < size[g]), key=lambda g: (exact[g] - quota[g], share[g])
        )
        quota[g] += 1
    return {g: q for g, q in quota.items() if q}
