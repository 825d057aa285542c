import numpy as np
import pytest

from loop.core.metrics import classification_scores, segmentation_scores, summarize_segmentation


def squares(n, shift=0, size=4):
    mask = np.zeros((8, 8 * n), int)
    for i in range(n):
        mask[2 : 2 + size, 8 * i + shift : 8 * i + shift + size] = i + 1
    return mask


def test_identical_masks_score_one():
    s = segmentation_scores(squares(3), squares(3))
    assert s["ap50"] == s["ap75"] == s["ap90"] == s["dice"] == s["f1"] == 1.0
    assert s["matched_iou"] == 1.0


def test_known_shift_gives_expected_iou_and_ap():
    # a 4x4 square shifted by one column: intersection 12, union 20 -> IoU 0.6
    s = segmentation_scores(squares(3), squares(3, shift=1))
    assert s["matched_iou"] == pytest.approx(0.6)
    assert s["ap50"] == 1.0 and s["ap75"] == 0.0  # 0 TP at 0.75: 0 / (3 + 3)


def test_missed_and_extra_objects():
    truth, pred = squares(4), squares(4)
    pred[pred == 4] = 0  # one missed
    pred[0, 0] = 9  # one false positive (tiny)
    s = segmentation_scores(truth, pred)
    assert s["ap50"] == pytest.approx(3 / (4 + 4 - 3))
    assert s["precision"] == pytest.approx(3 / 4) and s["recall"] == pytest.approx(3 / 4)


def test_empty_prediction_and_empty_truth():
    empty = np.zeros((8, 8), int)
    assert segmentation_scores(empty, empty)["ap50"] == 1.0
    s = segmentation_scores(squares(1), np.zeros((8, 8), int))
    assert s["ap50"] == 0.0 and s["recall"] == 0.0 and np.isnan(s["matched_iou"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_scores(np.zeros((4, 4), int), np.zeros((4, 5), int))


def test_summary_per_group_means():
    rows = [
        segmentation_scores(squares(2), squares(2)),
        segmentation_scores(squares(2), 0 * squares(2)),
    ]
    summary = summarize_segmentation(rows, ["a", "b"])
    assert summary["ap50"] == pytest.approx(0.5)
    assert summary["per_group"]["a"]["ap50"] == 1.0 and summary["per_group"]["b"]["ap50"] == 0.0
    assert summary["n_images"] == 2


def test_classification_against_sklearn():
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    rng = np.random.default_rng(0)
    truth = rng.choice(list("abc"), 200)
    pred = np.where(rng.random(200) < 0.7, truth, rng.choice(list("abc"), 200))
    s = classification_scores(truth, pred, groups=["g1"] * 100 + ["g2"] * 100)
    assert s["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert s["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert s["kappa"] == pytest.approx(cohen_kappa_score(truth, pred))
    assert s["per_group"]["g2"]["n_images"] == 100


def test_classification_length_mismatch():
    with pytest.raises(ValueError, match="2 true classes but 1 predictions"):
        classification_scores(["a", "b"], ["a"])


def test_flagged_errors_count_the_wrong_objects_in_the_flagged_set():
    from loop.core.metrics import flagged_errors

    truth = np.zeros((20, 20), int)
    truth[2:6, 2:6], truth[10:14, 10:14] = 1, 2
    pred = truth.copy()
    pred[15:18, 2:5] = 7  # a false object
    pred[10:14, 10:14] = 0
    pred[10:11, 10:14] = 2  # a quarter of a nucleus: wrong at IoU 0.5
    counts = flagged_errors(truth, pred, [7, 99])  # 99 is no object of pred
    assert counts == {"objects": 3, "wrong": 2, "flagged": 1, "wrong_flagged": 1}
    assert flagged_errors(truth, np.zeros_like(truth), [])["objects"] == 0
