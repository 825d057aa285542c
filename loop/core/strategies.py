"""Query strategies: uncertainty measures and batch selectors, as plain functions on arrays.

A strategy is ``<measure>`` or ``<measure>+diversity``: the measure ranks the unlabeled
images (higher = more worth annotating), the selector picks a batch of ``k``. ``+diversity``
first keeps the ``shortlist * k`` most uncertain images, then picks ``k`` of them by k-center
greedy on an image embedding (Cellpose's style vector, or the classifier's features), so a
batch is not ``k`` copies of the same hard image. ``random`` is the control arm.

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

    The most uncertain image is picked first; labeled images' embeddings (``centers``) are
    not used to start, so the batch still begins at the hardest image.

    Returns
    -------
    ndarray of shape (min(k, n),)
        Indices into ``scores``.
    """
    candidates = top_k(scores, max(k, shortlist * k))
    picked = k_center_greedy(np.asarray(embeddings)[candidates], k, first=0)
    return candidates[picked]


# --- the registry ---------------------------------------------------------------------------

TASK_MEASURES = {
    "segmentation": {
        "flow-error": "mean per-object flow error: Cellpose's flows vs the flows of its own "
        "masks (Stringer et al. 2021)",
        "entropy": "mean binary entropy of the cell probability over the foreground",
        "tta": "instance disagreement between predictions of flipped copies (4x cost; on a "
        "shortlist)",
        "count": "spread of object counts across flipped copies (4x cost; on a shortlist)",
    },
    "classification": {
        "least-confident": "1 - max class probability (Settles 2009; modAL uncertainty_sampling)",
        "margin": "1 - gap between the two most likely classes (modAL margin_sampling)",
        "entropy": "entropy of the class probabilities (modAL entropy_sampling)",
        "committee": "BALD disagreement of a bootstrap committee (Houlsby et al. 2011)",
    },
}
EXPENSIVE = {"tta", "count"}
DEFAULTS = {"segmentation": "flow-error+diversity", "classification": "entropy+diversity"}


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy name."""

    name: str
    measure: str  # a key of TASK_MEASURES[task], or "random"
    diversity: bool
    expensive: bool

    @property
    def random(self) -> bool:
        return self.measure == "random"


def available(task: str) -> dict[str, str]:
    """Strategy name -> one-line description, for ``loop strategies``."""
    out = {
        "random": "uniform random batch (the control arm)",
        "diversity": "k-center greedy on the embedding alone (Sener & Savarese 2018)",
    }
    for measure, doc in TASK_MEASURES[task].items():
        out[measure] = doc
        out[f"{measure}+diversity"] = f"top {measure} shortlist, then k-center greedy"
    return out


def parse(name: str, task: str) -> Strategy:
    """Parse ``name`` for ``task``.

    Raises
    ------
    UnknownStrategy
        For a name `loop strategies` does not list for the task.

    >>> parse("flow-error+diversity", "segmentation").diversity
    True
    """
    known = available(task)
    if name not in known:
        raise UnknownStrategy(
            f"unknown strategy {name!r} for {task}; choose one of {', '.join(known)} "
            "(see `loop strategies`)"
        )
    measure, _, extra = name.partition("+")
    if measure == "diversity":
        return Strategy(name, "random", True, False)
    return Strategy(name, measure, extra == "diversity", measure in EXPENSIVE)


def select(
    strategy: Strategy,
    scores: np.ndarray | None,
    embeddings: np.ndarray,
    k: int,
    *,
    shortlist: int = 4,
    rng=None,
) -> np.ndarray:
    """Pick ``k`` indices of the scored images with ``strategy``.

    Parameters
    ----------
    scores : ndarray of shape (n,) or None
        The strategy's measure per image (ignored by random and pure diversity).
    embeddings : ndarray of shape (n, d)
    rng : Generator or int, optional
        Used by random (and to pick the first image of pure diversity).
    """
    n = len(embeddings)
    if strategy.random and not strategy.diversity:
        return random_k(n, k, rng)
    if strategy.random:  # pure diversity
        return k_center_greedy(embeddings, k, first=int(_as_rng(rng).integers(n)) if n else 0)
    if strategy.diversity:
        return uncertainty_diversity(scores, embeddings, k, shortlist=shortlist)
    return top_k(scores, k)
