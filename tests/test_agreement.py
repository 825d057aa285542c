import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from loop.core.agreement import (
    cohen_kappa,
    fleiss_kappa,
    iou_matrix,
    krippendorff_alpha,
    match,
    object_f1,
    percent_agreement,
)
from loop.data.synthetic import synthetic_nuclei


def square(shape=(30, 30), top=5, left=5, size=10, label=1):
    m = np.zeros(shape, np.int32)
    m[top : top + size, left : left + size] = label
    return m


def test_identical_annotations_agree_fully():
    _, mask = synthetic_nuclei((96, 96), 15, rng=0)
    scores = object_f1(mask, mask)
    assert scores["f1_50"] == 1.0 and scores["dice"] == 1.0 and scores["mean_matched_iou"] == 1.0
    assert all(v == 1.0 for v in scores["f1"].values())
    assert cohen_kappa(list("abcab"), list("abcab")) == 1.0
    assert krippendorff_alpha([list("abca"), list("abca")]) == 1.0


def test_known_shift_and_erosion():
    a = square()
    shifted = square(left=6)  # 10x9 overlap, union 10x11
    iou, _, _ = iou_matrix(a, shifted)
    assert iou[0, 0] == pytest.approx(90 / 110)
    eroded = square(top=6, left=6, size=8)
    assert object_f1(a, eroded)["mean_matched_iou"] == pytest.approx(64 / 100)
    assert object_f1(a, eroded)["dice"] == pytest.approx(2 * 64 / 164)
    # an IoU of 0.64 counts at 0.5 and 0.6, not at 0.7
    f1 = object_f1(a, eroded)["f1"]
    assert (f1[0.5], f1[0.6], f1[0.7]) == (1.0, 1.0, 0.0)


def test_missed_and_extra_objects():
    a = square() + square(top=18, left=18, size=8, label=2)
    b = square()
    scores = object_f1(a, b)
    assert scores["f1_50"] == pytest.approx(2 * 1 / 3)
    assert (scores["n_a"], scores["n_b"]) == (2, 1)


def test_matching_is_one_to_one():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    rows, cols, ious = match(iou)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert ious.sum() == pytest.approx(1.65)


def test_empty_annotations():
    empty = np.zeros((10, 10), int)
    assert object_f1(empty, empty)["f1_50"] == 1.0
    assert object_f1(square((10, 10), 1, 1, 3), empty)["f1_50"] == 0.0


def test_different_sizes_are_an_error():
    with pytest.raises(ValueError, match=r"label images differ in shape: \(30, 30\) vs \(31, 30\)"):
        object_f1(square(), square((31, 30)))


def test_kappa_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, 200)
    y = np.where(rng.random(200) < 0.7, x, rng.integers(0, 4, 200))
    assert cohen_kappa(x.tolist(), y.tolist()) == pytest.approx(cohen_kappa_score(x, y))
    with pytest.raises(ValueError, match="raters labelled 2 and 1 items"):
        cohen_kappa([1, 2], [1])
    with pytest.raises(ValueError, match="no items"):
        cohen_kappa([], [])


def test_alpha_matches_the_krippendorff_package():
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 40)
    ratings = []
    for _ in range(4):
        r = np.where(rng.random(40) < 0.75, truth, rng.integers(0, 3, 40)).astype(float)
        r[rng.random(40) < 0.15] = np.nan
        ratings.append(r)
    expected = krippendorff.alpha(
        reliability_data=np.array(ratings), level_of_measurement="nominal"
    )
    ours = krippendorff_alpha([[None if np.isnan(v) else int(v) for v in r] for r in ratings])
    assert ours == pytest.approx(expected)


def test_fleiss_and_alpha_errors():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))
    with pytest.raises(ValueError, match="every rater needs a rating"):
        krippendorff_alpha([[1, 2], [1]])
    with pytest.raises(ValueError, match="at least two raters"):
        krippendorff_alpha([[1, None], [None, 2]])
    with pytest.raises(ValueError, match="no item has two ratings"):
        percent_agreement([[1, None], [None, 2]])


def test_percent_agreement():
    assert percent_agreement([["a", "a", "b"], ["a", "b", "b"], ["a", None, "b"]]) == pytest.approx(
        6 / 7
    )
