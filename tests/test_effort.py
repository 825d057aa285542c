"""Expert effort: the edits from a pre-annotation to an annotation, on hand-made cases."""

import numpy as np
import pytest

from loop.core.effort import Edits, EffortWeights, edits, effort, from_scratch


def square(image, label, r, c, size=6):
    image[r : r + size, c : c + size] = label
    return image


@pytest.fixture
def pre():
    """Four pre-drawn 6x6 objects in a 40x40 image."""
    image = np.zeros((40, 40), np.int32)
    for label, (r, c) in enumerate([(2, 2), (2, 20), (20, 2), (20, 20)], start=1):
        square(image, label, r, c)
    return image


def test_accepting_everything_is_all_accepted_whatever_the_label_numbers(pre):
    relabelled = np.where(pre > 0, 5 - pre, 0)
    assert edits(pre, relabelled) == Edits(accepted=4)


def test_a_moved_boundary_is_corrected_and_a_missed_object_drawn(pre):
    post = pre.copy()
    post[2:8, 8] = 1  # one column more: IoU 36/42
    square(post, 9, 30, 30, 5)  # a missed object
    assert edits(pre, post) == Edits(accepted=3, corrected=1, drawn=1)


def test_a_deleted_false_object(pre):
    post = np.where(pre == 3, 0, pre)
    assert edits(pre, post) == Edits(accepted=3, deleted=1)


def test_one_object_split_in_three_is_two_split_events(pre):
    post = pre.copy()
    post[2:4, 20:26], post[4:6, 20:26], post[6:8, 20:26] = 7, 8, 9
    assert edits(pre, post) == Edits(accepted=3, split=2)


def test_two_objects_merged_into_one(pre):
    post = np.where(pre == 2, 0, pre)
    post[post == 1] = 0
    post[2:8, 2:26] = 1  # one outline over both and the gap between them
    assert edits(pre, post) == Edits(accepted=2, merged=1)


def test_from_scratch_and_nothing_kept():
    empty = np.zeros((20, 20), np.int32)
    drawn = square(square(empty.copy(), 1, 0, 0), 2, 10, 10)
    assert edits(empty, drawn) == Edits(drawn=2)
    assert edits(drawn, empty) == Edits(deleted=2)
    assert edits(empty, empty) == Edits()
    assert effort(edits(empty, drawn)) == from_scratch(2) == 20.0


def test_effort_weights_each_edit(pre):
    post = pre.copy()
    post[post == 4] = 0  # deleted
    square(post, 9, 30, 30, 5)  # drawn
    counts = edits(pre, post)
    assert counts == Edits(accepted=3, deleted=1, drawn=1)
    assert effort(counts) == pytest.approx(3 * 0.2 + 1 * 1.0 + 1 * 10.0)
    flat = EffortWeights(accepted=0, corrected=1, deleted=1, drawn=1, split=1, merged=1)
    assert effort(counts, flat) == 2.0


def test_shapes_must_agree(pre):
    with pytest.raises(ValueError, match="label images differ in shape"):
        edits(pre, pre[:10])


def test_the_weights_come_from_loop_toml():
    from loop.config_parse import parse_config

    config = parse_config("[effort]\ndrawn = 4\naccepted = 0\n")
    assert config.effort == EffortWeights(drawn=4.0, accepted=0.0)
    assert effort(Edits(accepted=10, drawn=2), config.effort) == 8.0


def test_class_edits_count_painted_areas_per_class():
    from loop.core.effort import class_edits

    pre = np.zeros((10, 10), int)
    pre[0:4, 0:4] = 1
    pre[6:10, 6:10] = 2
    assert class_edits(pre, pre).as_dict()["accepted"] == 2
    post = pre.copy()
    post[6:10, 6:10] = 0  # erased
    post[0:4, 6:9] = 2  # a missed area painted
    post[0:4, 3] = 0  # the first area trimmed by a column: still the same area
    counts = class_edits(pre, post)
    assert (counts.deleted, counts.drawn, counts.corrected, counts.accepted) == (1, 1, 1, 0)


def test_box_edits_by_hand():
    from loop.core.effort import box_edits

    pre = [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]
    post = [[0, 0, 10, 10], [21, 20, 30, 30], [80, 80, 90, 90]]
    got = box_edits(pre, [0, 0, 0], post, [0, 1, 0])
    assert (got.accepted, got.corrected, got.deleted, got.drawn) == (1, 1, 1, 1)
    assert box_edits([], [], [], []).as_dict() == {k: 0 for k in got.as_dict()}
