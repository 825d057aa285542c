"""Agreement and consensus of several annotators' boxes: hand-worked cases and properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loop.core.box_fusion import fuse_boxes, pair_agreement
from loop.core.boxes import overlap


def test_pair_agreement_counts_unmatched_boxes():
    got = pair_agreement([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 1], [[1, 1, 10, 10]], [1])
    assert got["matched"] == 1 and got["only_a"] == 1 and got["only_b"] == 0
    assert got["f1"] == pytest.approx(2 / 3)
    assert got["pairs"].tolist() == [[0, 1]]
    assert pair_agreement([], [], [], [])["f1"] == 1.0


def test_fusion_keeps_majority_boxes_with_median_coordinates():
    a = ([[0, 0, 10, 10], [40, 40, 50, 50]], [0, 1])
    b = ([[2, 0, 12, 10]], [0])
    c = ([[1, 1, 11, 11], [80, 80, 90, 90]], [1])  # class 1 for the shared box: outvoted
    c = (c[0], [1, 1])
    boxes, classes, support = fuse_boxes([a, b, c])
    assert boxes.tolist() == [[1, 0, 11, 10]]
    assert classes.tolist() == [0]
    assert support.tolist() == [3]
    # quorum 1 keeps every box once
    assert len(fuse_boxes([a, b, c], quorum=1)[0]) == 3
    assert fuse_boxes([], quorum=1)[0].shape == (0, 4)


boxes = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(4, 30), st.integers(4, 30)),
    max_size=6,
).map(lambda rows: np.array([[x, y, x + w, y + h] for x, y, w, h in rows], float).reshape(-1, 4))


@settings(max_examples=40, deadline=None)
@given(boxes, st.integers(1, 4))
def test_identical_annotators_agree_and_their_consensus_is_their_drawing(drawn, n):
    classes = np.arange(len(drawn)) % 2
    sets = [(drawn, classes)] * n
    fused, kinds, support = fuse_boxes(sets, quorum=n)
    # boxes that overlap one another may join one cluster; every fused box is one of theirs
    assert all((np.abs(drawn - b).sum(axis=1) == 0).any() for b in fused)
    assert (support == n).all() and len(fused) == len(drawn)
    assert pair_agreement(drawn, classes, drawn, classes)["f1"] == 1.0


@settings(max_examples=40, deadline=None)
@given(boxes, boxes, st.sampled_from([None, 5.0]))
def test_agreement_is_symmetric(a, b, radius):
    ca, cb = np.zeros(len(a), int), np.zeros(len(b), int)
    ab = pair_agreement(a, ca, b, cb, radius=radius)
    ba = pair_agreement(b, cb, a, ca, radius=radius)
    assert ab["f1"] == pytest.approx(ba["f1"]) and ab["matched"] == ba["matched"]
    assert np.allclose(overlap(a, b, radius), overlap(b, a, radius).T)


def test_points_fuse_by_distance():
    sets = [(np.array([[10, 10, 10, 10]], float), [0]), (np.array([[13, 14, 13, 14]], float), [0])]
    fused, _, support = fuse_boxes(sets, quorum=2, radius=5.0)  # 5 px apart: one object
    assert support.tolist() == [2] and fused.tolist() == [[11.5, 12, 11.5, 12]]
    assert len(fuse_boxes(sets, quorum=2, radius=2.0)[0]) == 0  # too far apart for radius 2
