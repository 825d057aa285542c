import numpy as np
import pytest

from loop.core import strategies as st
from loop.errors import UnknownStrategy


def test_measures_match_modal():
    from modAL.uncertainty import classifier_entropy, classifier_margin, classifier_uncertainty
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    model = LogisticRegression().fit(x, y)
    proba = model.predict_proba(x)
    assert np.allclose(st.least_confident(proba), classifier_uncertainty(model, x))
    assert np.allclose(st.entropy(proba), classifier_entropy(model, x))
    # modAL's margin is p1 - p2 (low = uncertain); ours is 1 - margin (high = uncertain)
    assert np.allclose(st.margin(proba), 1 - classifier_margin(model, x))


def test_committee_disagreement():
    agree = np.array([[[0.9, 0.1]], [[0.9, 0.1]]])
    disagree = np.array([[[0.99, 0.01]], [[0.01, 0.99]]])
    assert st.committee_disagreement(agree)[0] == pytest.approx(0.0)
    assert st.committee_disagreement(disagree)[0] > 0.5


def test_top_k_ties_and_nan():
    assert st.top_k(np.array([0.5, np.nan, 0.5, 0.9]), 3).tolist() == [1, 3, 0]


def test_random_is_seeded():
    assert st.random_k(100, 5, 3).tolist() == st.random_k(100, 5, 3).tolist()
    assert st.random_k(100, 5, 3).tolist() != st.random_k(100, 5, 4).tolist()


def test_k_center_spreads_over_clusters():
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


def test_registry_parse_and_errors():
    assert st.DEFAULTS["segmentation"] in st.available("segmentation")
    assert st.DEFAULTS["classification"] in st.available("classification")
    s = st.parse("tta+diversity", "segmentation")
    assert s.expensive and s.diversity and s.measure == "tta"
    with pytest.raises(UnknownStrategy, match="unknown strategy 'margin' for segmentation"):
        st.parse("margin", "segmentation")


def test_select_dispatch():
    emb = np.arange(20, dtype=float)[:, None]
    scores = np.arange(20, dtype=float)
    assert st.select(st.parse("entropy", "classification"), scores, emb, 3).tolist() == [19, 18, 17]
    assert len(set(st.select(st.parse("random", "classification"), None, emb, 5, rng=1))) == 5
    assert len(st.select(st.parse("diversity", "classification"), None, emb, 4, rng=0)) == 4


def _clusters(sizes, rng=0, spread=0.05):
    rng = np.random.default_rng(rng)
    parts = [rng.normal(5.0 * i, spread, (n, 3)) for i, n in enumerate(sizes)]
    return np.concatenate(parts), np.repeat(np.arange(len(sizes)), sizes)


def test_uncertainty_diversity_starts_from_the_labeled_images():
    emb, which = _clusters([10, 10, 10])
    scores = np.where(which == 0, 1.0, 0.5)  # the labeled cluster looks most uncertain
    picked = st.uncertainty_diversity(scores, emb, 2, shortlist=15, centers=emb[:1])
    assert not (which[picked] == 0).any()  # what is labeled is not asked for again
    assert st.uncertainty_diversity(scores, emb, 2, shortlist=15)[0] == 0  # no centers: hardest


def test_typiclust_covers_the_big_clusters_first_and_skips_labeled_ones():
    emb, which = _clusters([40, 30, 3, 20])
    picked = st.typiclust(emb, 3, rng=0)
    assert sorted(which[picked]) == [0, 1, 3]  # the 3 largest, not the outlier group
    # with an image of cluster 0 labeled, the next batch goes elsewhere
    again = st.typiclust(emb[1:], 2, centers=emb[:1], rng=0)
    assert sorted(which[1:][again]) == [1, 3]
    assert st.typiclust(emb, 0).size == 0


def test_clue_follows_uncertainty_and_stays_diverse():
    emb, which = _clusters([30, 30, 30])
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


def test_groups_keep_a_rare_group_in_the_batch():
    emb, which = _clusters([45, 5])
    groups = np.where(which == 0, "fluo", "tissue")
    scores = np.where(which == 0, 1.0, 0.9)  # uncertainty alone picks only fluorescence
    plain = st.select(st.parse("flip", "segmentation"), scores, emb, 4)
    grouped = st.select(
        st.parse("flip+groups", "segmentation"),
        scores,
        emb,
        4,
        groups=groups,
        labeled_groups=["fluo"] * 4,
    )
    assert (which[plain] == 0).all()
    assert (which[grouped] == 1).sum() >= 1 and len(set(grouped)) == 4


def test_auto_switches_from_coverage_to_uncertainty():
    assert st.parse("auto", "segmentation", labeled=8, coverage_until=16).selector == "typiclust"
    late = st.parse("auto", "segmentation", labeled=16, coverage_until=16)
    assert (late.measure, late.selector, late.tier) == ("flip", "clue", "forward")
    assert st.parse("flow-error+diversity", "segmentation").tier == "segment"
    with pytest.raises(UnknownStrategy, match=r"optionally followed by \+groups"):
        st.parse("auto+groups", "segmentation")
    with pytest.raises(UnknownStrategy, match="unknown strategy 'flip' for classification"):
        st.parse("flip", "classification")


def test_groups_need_configured_groups():
    st.check_groups(st.parse("flip+clue", "segmentation"), ())  # nothing to check
    with pytest.raises(UnknownStrategy, match=r"needs metadata groups: set groups = \["):
        st.check_groups(st.parse("random+groups", "segmentation"), ())
