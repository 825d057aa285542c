"""Query strategies: uncertainty measures and batch selectors, as plain functions on arrays.

A strategy is ``<measure>[+diversity|+clue][+groups]``, a coverage selector (``diversity``,
``typiclust``), ``random`` (the control arm) or ``auto`` (coverage first, then uncertainty). The
measure ranks the unlabeled images (higher = more worth annotating), the selector picks a
batch of ``k``: ``+diversity`` keeps the ``shortlist * k`` most uncertain images, then picks
``k`` of them by k-center greedy from the labeled images on an image embedding (Cellpose's
style vector, or the classifier's features), so a batch is not ``k`` copies of the same hard
image; ``+clue`` clusters by uncertainty-weighted k-means; ``+groups`` gives each metadata
group (modality, instrument) its share of the batch.

Segmentation measures come from :func:`loop.models.cellpose_seg.segment`; classification
measures are computed here from class probabilities (modAL's definitions).

References
----------
Settles, B. (2009). Active learning literature survey. Univ. Wisconsin-Madison TR 1648
(least confident, margin, entropy).
Houlsby, N., Huszar, F., Ghahramani, Z., Lengyel, M. (2011). Bayesian active learning for
classification and preference learning. arXiv:1112.5745 (BALD: mutual information).
Seung, H. S., Opper, M., Sompolinsky, H. (1992). Query by committee. COLT.
Sener, O., Savarese, S. (2018). Active learning for convolutional neural networks: a core-set
approach. ICLR (k-center greedy).
Stringer, C. et al. (2021). Cellpose. Nat. Methods 18, 100-106 (flow error as a mask check).
Hacohen, G., Dekel, A., Weinshall, D. (2022). Active learning on a budget: opposite
strategies suit high and low budgets. ICML (TypiClust).
Prabhu, V. et al. (2021). Active domain adaptation via clustering uncertainty-weighted
embeddings. ICCV (CLUE).
Kottke, D. et al. (2021). scikit-activeml: a library and toolbox for active learning
algorithms. Preprints 2021030194 (the TypiClust used here).
Danka, T., Horvath, P. (2018). modAL: a modular active learning framework for Python.
arXiv:1805.00979.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loop.errors import UnknownStrategy

# --- classification measures (arrays of class probabilities) ------------------------------


def least_confident(proba: np.ndarray) -> np.ndarray:
    """1 - the probability of the most likely class.

    Parameters
    ----------
    proba : ndarray of shape (n, C)

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> least_confident(np.array([[0.9, 0.1], [0.5, 0.5]])).round(2).tolist()
    [0.1, 0.5]
    """
    return 1.0 - np.asarray(proba, float).max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """1 - (p of the first - p of the second most likely class); shape (n, C) -> (n,)."""
    proba = np.asarray(proba, float)
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row; shape (n, C) -> (n,).

    >>> import numpy as np
    >>> round(float(entropy(np.array([[0.5, 0.5]]))[0]), 4)
    0.6931
    """
    p = np.clip(np.asarray(proba, float), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def committee_disagreement(member_proba: np.ndarray) -> np.ndarray:
    """BALD / consensus information: entropy of the mean minus the mean member entropy.

    Parameters
    ----------
    member_proba : ndarray of shape (M, n, C)
        Class probabilities of each of ``M`` committee members (bootstrap models).

    Returns
    -------
    ndarray of shape (n,)
        0 when all members agree; high when members are each confident but disagree.
    """
    member_proba = np.asarray(member_proba, float)
    mean_entropy = np.mean([entropy(p) for p in member_proba], axis=0)
    return entropy(member_proba.mean(axis=0)) - mean_entropy


CLASS_MEASURES = {
    "least-confident": least_confident,
    "margin": margin,
    "entropy": entropy,
}

# --- selectors ------------------------------------------------------------------------------


def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


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


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """An uncertainty measure: the key of its value in a model's per-image measures, the pass
    that computes it (``forward``: network outputs only, the whole pool; ``segment``: masks
    reconstructed, and ``tta``: 4 flipped predictions, both on a shortlist), and what it is."""

    key: str
    tier: str
    doc: str


TASK_MEASURES = {
    "segmentation": {
        "flip": Measure(
            "flip",
            "forward",
            "disagreement of the flows and cell probability between the image and its flipped "
            "copy, over the foreground (2 forward passes; the whole pool)",
        ),
        "entropy": Measure(
            "entropy", "forward", "mean binary entropy of the cell probability over the foreground"
        ),
        "flow-error": Measure(
            "flow_error",
            "segment",
            "mean per-object flow error: Cellpose's flows vs the flows of its own masks "
            "(Stringer et al. 2021; masks reconstructed, on a shortlist)",
        ),
        "tta": Measure(
            "tta",
            "tta",
            "instance disagreement between predictions of flipped copies (4x; on a shortlist)",
        ),
        "count": Measure(
            "count", "tta", "spread of object counts across flipped copies (4x; on a shortlist)"
        ),
    },
    "classification": {
        "least-confident": Measure(
            "least-confident",
            "forward",
            "1 - max class probability (Settles 2009; modAL uncertainty_sampling)",
        ),
        "margin": Measure(
            "margin", "forward", "1 - gap between the two most likely classes (modAL margin)"
        ),
        "entropy": Measure(
            "entropy", "forward", "entropy of the class probabilities (modAL entropy_sampling)"
        ),
        "committee": Measure(
            "committee", "forward", "BALD disagreement of a bootstrap committee (Houlsby 2011)"
        ),
    },
}
SHORTLIST_BY = {"segmentation": "flip", "classification": "entropy"}
"""The forward-pass measure that shortlists images for a measure of a costlier tier."""


def tier_keys(task: str, tier: str) -> set[str]:
    """The measure keys a pass of ``tier`` (forward, segment, tta) computes for ``task``.

    >>> sorted(tier_keys("segmentation", "tta"))
    ['count', 'tta']
    """
    return {m.key for m in TASK_MEASURES[task].values() if m.tier == tier}


def shortlist_key(task: str) -> str:
    """The key of :data:`SHORTLIST_BY`'s measure (what a costlier measure's shortlist ranks by)."""
    return TASK_MEASURES[task][SHORTLIST_BY[task]].key


SELECTORS = {
    "diversity": "top shortlist, then k-center greedy from the labeled images",
    "clue": "k-means weighted by the measure, the image nearest each centre (Prabhu 2021)",
}
DEFAULTS = {"segmentation": "auto", "classification": "entropy+diversity"}
AUTO = {"segmentation": ("typiclust", "flip+clue"), "classification": ("typiclust", "entropy+clue")}
"""``auto``: coverage (the first) while fewer than ``score.coverage_until`` images are
labeled, then uncertainty (the second): typical images win at low budgets, uncertain ones
later (Hacohen et al. 2022)."""


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy name: ``<measure>[+diversity|+clue][+groups]``, ``random``,
    ``diversity``, ``typiclust`` or ``auto``."""

    name: str
    measure: str  # a key of TASK_MEASURES[task], or "random"
    selector: str  # top | diversity | clue | random | kcenter | typiclust
    groups: bool = False  # batch slots per metadata group (see group_quotas)
    tier: str = "forward"

    @property
    def random(self) -> bool:
        return self.measure == "random"

    @property
    def diversity(self) -> bool:
        return self.selector in ("diversity", "kcenter")

    @property
    def expensive(self) -> bool:
        return self.tier != "forward"


def available(task: str) -> dict[str, str]:
    """Strategy name -> one-line description, for ``loop strategies``; ``+groups`` may follow
    any name but ``auto``."""
    first, then = AUTO[task]
    out = {
        "auto": f"{first} while few images are labeled (score.coverage_until), then {then}",
        "random": "uniform random batch (the control arm)",
        "diversity": "k-center greedy on the embedding from the labeled images (Sener 2018)",
        "typiclust": "typical images of uncovered clusters (Hacohen et al. 2022; low budgets)",
    }
    for measure, info in TASK_MEASURES[task].items():
        out[measure] = info.doc
        for selector, doc in SELECTORS.items():
            out[f"{measure}+{selector}"] = f"{measure}: {doc}"
    return out


def parse(name: str, task: str, *, labeled: int | None = None, coverage_until: int = 16):
    """Parse ``name`` for ``task``; ``auto`` resolves by the ``labeled`` count.

    Raises
    ------
    UnknownStrategy
        For a name `loop strategies` does not list for the task.

    >>> parse("flow-error+diversity", "segmentation").diversity
    True
    >>> parse("auto", "segmentation", labeled=4).selector
    'typiclust'
    >>> parse("flip+clue+groups", "segmentation").groups
    True
    """
    known = available(task)
    base, groups = (name[: -len("+groups")], True) if name.endswith("+groups") else (name, False)
    if base not in known or (groups and base == "auto"):
        raise UnknownStrategy(
            f"unknown strategy {name!r} for {task}; choose one of {', '.join(known)}, "
            "optionally followed by +groups (see `loop strategies`)"
        )
    if base == "auto":
        first, then = AUTO[task]
        chosen = first if labeled is not None and labeled < coverage_until else then
        return parse(chosen, task)
    measure, _, extra = base.partition("+")
    if measure in ("random", "diversity", "typiclust"):
        selector = {"random": "random", "diversity": "kcenter", "typiclust": "typiclust"}[measure]
        return Strategy(name, "random", selector, groups)
    tier = TASK_MEASURES[task][measure].tier
    return Strategy(name, measure, extra or "top", groups, tier)


def check_groups(strategy: Strategy, groups) -> None:
    """Refuse a ``+groups`` strategy when the study names no metadata groups.

    Raises
    ------
    UnknownStrategy
        For ``...+groups`` without ``groups``.
    """
    if strategy.groups and not groups:
        raise UnknownStrategy(
            f'strategy {strategy.name!r} needs metadata groups: set groups = ["modality"] '
            "(a metadata key given at ingest) in loop.toml"
        )


def select(
    strategy: Strategy,
    scores: np.ndarray | None,
    embeddings: np.ndarray,
    k: int,
    *,
    shortlist: int = 4,
    centers: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    labeled_groups=(),
    rng=None,
) -> np.ndarray:
    """Pick ``k`` indices of the scored images with ``strategy``.

    Parameters
    ----------
    scores : ndarray of shape (n,) or None
        The strategy's measure per image (ignored by random, diversity and typiclust).
    embeddings : ndarray of shape (n, d)
    centers : ndarray of shape (m, d), optional
        The labeled images' embeddings (k-center and TypiClust start from them).
    groups : ndarray of shape (n,), optional
        A metadata group per image; with ``strategy.groups`` each group gets batch slots in
        proportion to its share of the uncertainty (:func:`group_quotas`, counting
        ``labeled_groups``, the groups of the labeled images) and is selected on its own.
    rng : Generator or int, optional
        Random choices (random, k-means starts, the first pick of pure diversity).

    Returns
    -------
    ndarray of shape (min(k, n),)
    """
    rng = _as_rng(rng)
    n = len(embeddings)
    if strategy.groups and groups is not None and n:
        weights = np.ones(n) if strategy.random or scores is None else np.asarray(scores, float)
        picked = []
        quotas = group_quotas(groups, weights, k, labeled=labeled_groups)
        for group, quota in quotas.items():
            members = np.flatnonzero(np.asarray(groups) == group)
            part = select(
                Strategy(strategy.name, strategy.measure, strategy.selector, False, strategy.tier),
                None if scores is None else np.asarray(scores)[members],
                np.asarray(embeddings)[members],
                quota,
                shortlist=shortlist,
                centers=centers,
                rng=rng,
            )
            picked.extend(members[part].tolist())
        return np.array(picked, dtype=int)
    if strategy.selector == "random":
        return random_k(n, k, rng)
    if strategy.selector == "typiclust":
        return typiclust(embeddings, k, centers=centers, rng=rng)
    if strategy.selector == "kcenter":
        has_centers = centers is not None and len(centers)
        first = 0 if has_centers or not n else int(rng.integers(n))
        return k_center_greedy(embeddings, k, centers=centers, first=first)
    if strategy.selector == "diversity":
        return uncertainty_diversity(scores, embeddings, k, shortlist=shortlist, centers=centers)
    if strategy.selector == "clue":
        return clue(scores, embeddings, k, rng=rng)
    return top_k(scores, k)
