"""Batch selectors (loop/core/selectors.py) on arrays."""

import numpy as np
from conftest import clusters

from loop.core import selectors as st


def test_top_k_ties_and_nan():
    assert st.top_k(np.array([0.5, np.nan, 0.5, 0.9]), 3).tolist() == [1, 3, 0]


def test_random_is_seeded():
    assert st.random_k(100, 5, 3).tolist() == st.random_k(100, 5, 3).tolist()
    assert st.random_k(100, 5, 3).tolist() != st.random_k(100, 5, 4).tolist()


def test_k_center_spreads_overclusters():
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(c, 0.01, (20, 2)) for c in (0, 5, 10)])
    picks = st.k_center_greedy(clusters, 3)
    assert sorted(set(picks // 20)) == [0, 1, 2]
    with_centers = st.k_center_greedy(clusters, 2, centers=clusters[:1])
    assert not set(with_centers // 20) & {0}


def test_uncertainty_diversity_avoids_duplicates():
    # the 10 most uncertain images are near-copies; diversity must not take them all
    emb = np.concatenate([np.zeros((10, 2)), np.eye(2) * 5, np.ones((1, 2)) * -5])
    scores = np.concatenate([np.full(10, 1.0), [0.9, 0.8, 0.7]])
    plain = st.top_k(scores, 4)
    diverse = st.uncertainty_diversity(scores, emb, 4, shortlist=4)
    assert set(plain) <= set(range(10))
    assert diverse[0] == 0 and len(set(diverse) & set(range(10))) == 1


def test_uncertainty_diversity_starts_from_the_labeled_images():
    emb, which = clusters([10, 10, 10])
    scores = np.where(which == 0, 1.0, 0.5)  # the labeled cluster looks most uncertain
    picked = st.uncertainty_diversity(scores, emb, 2, shortlist=15, centers=emb[:1])
    assert not (which[picked] == 0).any()  # what is labeled is not asked for again
    assert st.uncertainty_diversity(scores, emb, 2, shortlist=15)[0] == 0  # no centers: hardest


def test_typiclust_covers_the_big_clusters_first_and_skips_labeled_ones():
    emb, which = clusters([40, 30, 3, 20])
    picked = st.typiclust(emb, 3, rng=0)
    assert sorted(which[picked]) == [0, 1, 3]  # the 3 largest, not the outlier group
    # with an image of cluster 0 labeled, the next batch goes elsewhere
    again = st.typiclust(emb[1:], 2, centers=emb[:1], rng=0)
    assert sorted(which[1:][again]) == [1, 3]
    assert st.typiclust(emb, 0).size == 0


def test_clue_follows_uncertainty_and_stays_diverse():
    emb, which = clusters([30, 30, 30])
    scores = np.where(which == 2, 1.0, 0.01)
    picked = st.clue(scores, emb, 2, rng=0)
    assert len(set(picked)) == 2 and which[picked[0]] == 2  # the heaviest centre first
    spread = st.clue(np.ones(90), emb, 3, rng=0)
    assert sorted(which[spread]) == [0, 1, 2]


def test_group_quotas_follow_the_share_of_uncertainty():
    groups = np.array(["f"] * 90 + ["t"] * 10)
    assert st.group_quotas(groups, np.ones(100), 10) == {"f": 9, "t": 1}
    uncertain_tissue = np.where(groups == "t", 9.0, 1.0)
    assert st.group_quotas(groups, uncertain_tissue, 10) == {"f": 5, "t": 5}
    assert st.group_quotas(groups[-3:], np.ones(3), 10) == {"t": 3}  # never more than there are
    # shares count the labeled images too: a group under-labeled so far catches up
    assert st.group_quotas(groups, np.ones(100), 2) == {"f": 2}
    assert st.group_quotas(groups, np.ones(100), 2, labeled=["f"] * 12) == {"f": 1, "t": 1}
