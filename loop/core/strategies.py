"""Query strategies: uncertainty measures as plain functions on arrays, and the registry that
names each strategy, its measure and its selector (the selectors: :mod:`loop.core.selectors`).

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
Stringer, C. et al. (2021). Cellpose. Nat. Methods 18, 100-106 (flow error as a mask check).
Danka, T., Horvath, P. (2018). modAL: a modular active learning framework for Python.
arXiv:1805.00979.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from loop.core.selectors import (
    _as_rng,
    clue,
    group_quotas,
    k_center_greedy,
    random_k,
    steady,
    top_k,
    typiclust,
    uncertainty_diversity,
)
from loop.errors import UnknownStrategy
from loop.tasks import REGISTERED

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

# --- the registry ---------------------------------------------------------------------------


TASK_MEASURES = {name: task.measures for name, task in REGISTERED.items()}
"""Each task's uncertainty measures by name (:attr:`loop.tasks.base.Task.measures`)."""
SHORTLIST_BY = {name: task.shortlist_by for name, task in REGISTERED.items()}
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
EMBEDDINGS = {
    "model": "the model's own (Cellpose's style vector, the classifier's scaled features)",
    "image": "model-free appearance features (loop.core.features.appearance_embedding)",
}
"""What diversity, coverage and clustering measure distances on: ``NAME@image`` chooses the
model-free one (for a cold start, when the model has learnt too little to embed well)."""
REGION_MEASURES = ("flip", "entropy")
"""Measures a region strategy ranks by (per region, :func:`loop.models.cellpose_regions.
region_measures`); ``random@region`` draws regions uniformly."""
DEFAULTS = {name: task.default_strategy for name, task in REGISTERED.items()}
AUTO = {name: task.auto for name, task in REGISTERED.items()}
"""``auto``: coverage (the first) while fewer than ``score.coverage_until`` (32) images are
labeled, then uncertainty (the second): typical images win at low budgets, uncertain ones
later (Hacohen et al. 2022); on our bench a switch at 16 labels was too early. With metadata
``groups`` both stages give each group its share of the batch (``+groups``): coverage by group
was the best arm of the mixed-modality bench from 8 to 20 labels (docs: benchmarks)."""


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy name: ``<measure>[+diversity|+clue][+groups]``, ``random``,
    ``diversity``, ``typiclust`` or ``auto``."""

    name: str
    measure: str  # a key of TASK_MEASURES[task], or "random"
    selector: str  # top | diversity | clue | random | kcenter | typiclust
    groups: bool = False  # batch slots per metadata group (see group_quotas)
    tier: str = "forward"
    embedding: str = "model"  # model | image (see EMBEDDINGS)
    unit: str = "image"  # image | region (``NAME@region``: regions of images, ranked)

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
    any name but ``auto``, then ``@image`` (the model-free embedding, :data:`EMBEDDINGS`)."""
    first, then = AUTO[task]
    out = {
        "auto": f"{first} while few images are labeled (score.coverage_until), then {then}; "
        "both by group when the study names metadata groups",
        "random": "uniform random batch (the control arm)",
        "diversity": "k-center greedy on the embedding from the labeled images (Sener 2018)",
        "typiclust": "typical images of uncovered clusters (Hacohen et al. 2022; low budgets)",
        "typiclust@image": "typiclust on model-free appearance features (no model needed)",
        "diversity@image": "k-center greedy on model-free appearance features (no model needed)",
    }
    for measure, info in TASK_MEASURES[task].items():
        out[measure] = info.doc
        for selector, doc in SELECTORS.items():
            out[f"{measure}+{selector}"] = f"{measure}: {doc}"
    if REGISTERED[task].regions:
        out["random@region"] = "uniform random regions ([regions] size), at most per_image each"
        out["typiclust@region"] = (
            "typical regions of uncovered clusters of model-free region features (coverage; "
            "no model needed), at most per_image each"
        )
        for measure in REGION_MEASURES:
            out[f"{measure}@region"] = (
                f"the regions with the highest {measure}, at most [regions] per_image of one image"
            )
    return out


def parse(
    name: str,
    task: str,
    *,
    labeled: int | None = None,
    coverage_until: int = 32,
    groups: bool = False,
):
    """Parse ``name`` for ``task``; ``auto`` resolves by the ``labeled`` count, and both its
    stages keep each group's share of the batch (``+groups``) when the study names metadata
    ``groups``.

    Raises
    ------
    UnknownStrategy
        For a name `loop strategies` does not list for the task.

    >>> parse("flow-error+diversity", "segmentation").diversity
    True
    >>> parse("auto", "segmentation", labeled=4).selector
    'typiclust'
    >>> parse("auto", "segmentation", labeled=4, groups=True).name
    'typiclust+groups'
    >>> parse("auto", "segmentation", labeled=32, groups=True).name
    'flip+clue+groups'
    >>> parse("flip+clue+groups", "segmentation").groups
    True
    >>> parse("typiclust@image", "segmentation").embedding
    'image'
    >>> parse("flip+groups@region", "segmentation").unit
    'region'
    >>> parse("random@region", "segmentation").random
    True
    >>> parse("typiclust+groups@region", "segmentation").selector
    'typiclust'
    """
    known = available(task)
    if name.endswith("@region"):
        measure = name.removesuffix("@region")
        by_group = measure.endswith("+groups")
        measure = measure.removesuffix("+groups")
        if f"{measure}@region" not in known:
            raise UnknownStrategy(
                f"unknown region strategy {name!r} for {task}; choose one of "
                + ", ".join(n for n in known if n.endswith("@region"))
                + " (+groups may come before @region; see `loop strategies`)"
            )
        if measure == "typiclust":  # coverage on model-free features of each region
            return Strategy(name, "random", "typiclust", by_group, embedding="image", unit="region")
        selector = "random" if measure == "random" else "top"
        return Strategy(name, measure, selector, by_group, unit="region")
    base, at, embedding = name.partition("@")
    embedding = embedding if at else "model"
    by_group = base.endswith("+groups")
    base = base[: -len("+groups")] if by_group else base
    if (
        base not in known
        or (by_group and base == "auto")
        or embedding not in EMBEDDINGS
        or (at and base in ("auto", "random"))
    ):
        raise UnknownStrategy(
            f"unknown strategy {name!r} for {task}; choose one of {', '.join(known)}, "
            "optionally followed by +groups, then by @image for the model-free embedding "
            "(not after auto or random; see `loop strategies`)"
        )
    if base == "auto":
        first, then = AUTO[task]
        stage = first if labeled is not None and labeled < coverage_until else then
        return parse(f"{stage}+groups" if groups else stage, task)
    measure, _, extra = base.partition("+")
    if measure in ("random", "diversity", "typiclust"):
        selector = {"random": "random", "diversity": "kcenter", "typiclust": "typiclust"}[measure]
        return Strategy(name, "random", selector, by_group, embedding=embedding)
    tier = TASK_MEASURES[task][measure].tier
    return Strategy(name, measure, extra or "top", by_group, tier, embedding)


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

    Notes
    -----
    Scores, embeddings and centers are first rounded to :data:`~loop.core.selectors.
    STEADY_BITS` significant bits (:func:`~loop.core.selectors.steady`), so that the batch
    does not depend on float noise of where the pool was measured.
    """
    rng = _as_rng(rng)
    scores, embeddings, centers = steady(scores), steady(embeddings), steady(centers)
    n = len(embeddings)
    if strategy.groups and groups is not None and n:
        weights = np.ones(n) if strategy.random or scores is None else np.asarray(scores, float)
        picked = []
        quotas = group_quotas(groups, weights, k, labeled=labeled_groups)
        for group, quota in quotas.items():
            members = np.flatnonzero(np.asarray(groups) == group)
            part = select(
                replace(strategy, groups=False),
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
