"""Boxes: IoU, matching, detection metrics, agreement and fusion against hand-worked cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loop.core.boxes import (
    as_boxes,
    average_precision,
    box_iou,
    count_errors,
    detection_counts,
    from_instances,
    match_greedy,
    match_optimal,
    scores_from_counts,
    summarize_detection,
)


def test_iou_by_hand():
    # 10x10 and a 10x10 shifted by 5: overlap 50, union 150
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10], [10, 0, 20, 10]])
    assert iou[0].tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_iou_of_empty_and_degenerate_boxes():
    assert box_iou([], [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]]).tolist() == [[0.0]]


boxes = st.lists(
    st.tuples(*[st.integers(0, 50)] * 2, *[st.integers(1, 30)] * 2).map(
        lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
    ),
    max_size=6,
)


@settings(max_examples=50, deadline=None)
@given(boxes, boxes)
def test_iou_is_symmetric_and_bounded(a, b):
    iou = box_iou(a, b)
    assert np.allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1 + 1e-12)).all()
    if a:
        assert np.allclose(np.diag(box_iou(a, a)), 1.0)


def test_greedy_matching_takes_boxes_by_falling_score():
    # two predictions on one true box: the higher-scored one matches even with less overlap
    iou = np.array([[0.55, 0.95]])
    assert match_greedy(iou, [0.9, 0.3]).tolist() == [0, -1]
    assert match_greedy(iou, [0.1, 0.3]).tolist() == [-1, 0]
    # below the threshold: no match
    assert match_greedy(np.array([[0.49]]), [1.0]).tolist() == [-1]
    assert match_greedy(np.zeros((0, 2)), [0.5, 0.4]).tolist() == [-1, -1]


def test_optimal_matching_maximises_total_iou():
    # greedy would give box 0 to column 0 (0.8) and leave box 1 unmatched (0.6 < 0.7 unused)
    iou = np.array([[0.8, 0.75], [0.7, 0.0]])
    rows, cols = match_optimal(iou, threshold=0.5)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]


def test_counts_per_class_by_hand():
    truth = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    truth_classes = [0, 0, 1]
    pred = [[0, 0, 10, 10], [21, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]]
    pred_classes = [0, 1, 1, 1]  # the second is right in place, wrong in class
    counts = detection_counts(truth, truth_classes, pred, pred_classes, [0.9, 0.8, 0.7, 0.6], 2)
    assert counts["tp"].tolist() == [1, 1]
    assert counts["fp"].tolist() == [0, 2]
    assert counts["fn"].tolist() == [1, 0]
    assert counts["ranked"][1][:, 1].tolist() == [0.0, 1.0, 0.0]


def test_average_precision_by_hand():
    # two true boxes; ranked hits: yes, no, yes -> precision 1 to recall 0.5, 2/3 to 1.0
    ranked = [np.array([[0.9, 1], [0.8, 0]]), np.array([[0.7, 1]])]
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert average_precision(ranked, 2) == pytest.approx(expected)
    # a class never found: 0; a class without truth: undefined
    assert average_precision([np.zeros((0, 2))], 3) == 0.0
    assert average_precision([np.array([[0.5, 0]])], 0) is None


def test_scores_and_count_errors_by_hand():
    assert scores_from_counts(0, 0, 0) == {"precision": None, "recall": None, "f1": None}
    assert scores_from_counts(1, 1, 2) == {"precision": 0.5, "recall": 0.333, "f1": 0.4}
    assert count_errors([4, 2, 0], [3, 2, 2]) == {"count_mae": 1.0, "count_mre": 0.125}
    assert count_errors([], []) == {"count_mae": None, "count_mre": None}


def test_summary_pools_counts_over_images():
    a = detection_counts([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0], [0.9], 2)
    b = detection_counts([[0, 0, 10, 10]], [1], [], [], [], 2)
    summary = summarize_detection([a, b], ["cell", "debris"])
    assert summary["per_class"]["cell"]["f1"] == 1.0
    assert summary["per_class"]["debris"]["recall"] == 0.0
    assert summary["per_class"]["debris"]["ap50"] == 0.0
    assert summary["f1"] == pytest.approx(0.667, abs=1e-3)
    assert summary["mean_ap"] == 0.5
    assert summary["count_mae"] == 0.5


def test_boxes_from_instances():
    mask = np.zeros((20, 30), np.int32)
    mask[2:5, 3:9] = 4
    mask[10:20, 25:30] = 9
    boxes, labels = from_instances(mask)
    assert labels.tolist() == [4, 9]
    assert boxes.tolist() == [[3, 2, 9, 5], [25, 10, 30, 20]]
    assert from_instances(np.zeros((3, 3), int))[0].shape == (0, 4)


def test_as_boxes_refuses_ragged_input():
    with pytest.raises(ValueError, match="reshape"):
        as_boxes([1, 2, 3])
