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
