import numpy as np
import pytest
from conftest import clusters

from loop.config import ScoreConfig
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


def test_registry_parse_and_errors():
    assert st.DEFAULTS["segmentation"] in st.available("segmentation")
    assert st.DEFAULTS["classification"] in st.available("classification")
    s = st.parse("tta+diversity", "segmentation")
    assert s.expensive and s.diversity and s.measure == "tta"
    with pytest.raises(UnknownStrategy, match="unknown strategy 'margin' for segmentation"):
        st.parse("margin", "segmentation")


def test_the_model_free_embedding_is_a_suffix():
    s = st.parse("typiclust@image", "segmentation")
    assert (s.selector, s.embedding, s.groups) == ("typiclust", "image", False)
    g = st.parse("flip+clue+groups@image", "segmentation")
    assert (g.measure, g.selector, g.groups, g.embedding) == ("flip", "clue", True, "image")
    assert st.parse("flip", "segmentation").embedding == "model"
    assert "typiclust@image" in st.available("segmentation")
    for bad in ("typiclust@pixels", "auto@image", "random@image"):
        with pytest.raises(UnknownStrategy, match=r"then by @image for the model-free embedding"):
            st.parse(bad, "segmentation")


def test_region_strategies_by_task():
    typical = st.parse("typiclust+groups@region", "semantic")
    assert (typical.unit, typical.selector, typical.groups, typical.random) == (
        "region",
        "typiclust",
        True,
        True,  # no model needed: nothing is measured
    )
    assert {"typiclust@region", "random@region"} <= set(st.available("detection"))
    with pytest.raises(UnknownStrategy, match="unknown region strategy 'typiclust@region' for"):
        st.parse("typiclust@region", "classification")  # no regions in a crop to classify


def test_select_dispatch():
    emb = np.arange(20, dtype=float)[:, None]
    scores = np.arange(20, dtype=float)
    assert st.select(st.parse("entropy", "classification"), scores, emb, 3).tolist() == [19, 18, 17]
    assert len(set(st.select(st.parse("random", "classification"), None, emb, 5, rng=1))) == 5
    assert len(st.select(st.parse("diversity", "classification"), None, emb, 4, rng=0)) == 4


def test_groups_keep_a_rare_group_in_the_batch():
    emb, which = clusters([45, 5])
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
    # the default switch is at 32 labels: at 16 the bench found coverage still ahead
    assert ScoreConfig().coverage_until == 32
    assert st.parse("auto", "segmentation", labeled=16).selector == "typiclust"
    assert st.parse("auto", "segmentation", labeled=32).selector == "clue"
    late = st.parse("auto", "segmentation", labeled=16, coverage_until=16)
    assert (late.measure, late.selector, late.tier) == ("flip", "clue", "forward")
    # a study with metadata groups: both stages keep each group's share of the batch
    early = st.parse("auto", "segmentation", labeled=8, coverage_until=16, groups=True)
    assert (early.name, early.selector, early.groups) == ("typiclust+groups", "typiclust", True)
    late = st.parse("auto", "segmentation", labeled=16, coverage_until=16, groups=True)
    assert (late.name, late.measure, late.selector, late.groups) == (
        "flip+clue+groups",
        "flip",
        "clue",
        True,
    )
    assert st.parse("flow-error+diversity", "segmentation").tier == "segment"
    with pytest.raises(UnknownStrategy, match=r"optionally followed by \+groups"):
        st.parse("auto+groups", "segmentation")
    with pytest.raises(UnknownStrategy, match="unknown strategy 'flip' for classification"):
        st.parse("flip", "classification")


def test_groups_need_configured_groups():
    st.check_groups(st.parse("flip+clue", "segmentation"), ())  # nothing to check
    with pytest.raises(UnknownStrategy, match=r"needs metadata groups: set groups = \["):
        st.check_groups(st.parse("random+groups", "segmentation"), ())
