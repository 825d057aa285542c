"""Simulated annotators' boxes: noise by profile, and corrections of the model's boxes that
keep what is close enough, delete false boxes and draw missed ones."""

import numpy as np

from connectors.simulated_boxes import corrected_boxes, noisy_boxes
from loop.core.boxes import box_iou
from loop.core.effort import box_edits
from loop.noise import NoiseProfile

TRUTH = (np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 5, 60, 15]], float), np.array([0, 1, 0]))
SHAPE = (64, 64)


def test_a_perfect_annotator_copies_the_truth():
    boxes, classes = noisy_boxes(*TRUTH, 2, SHAPE, NoiseProfile(), np.random.default_rng(0))
    assert np.array_equal(boxes, TRUTH[0]) and classes.tolist() == [0, 1, 0]


def test_noise_moves_misses_adds_and_flips():
    jitter = NoiseProfile(jitter=(0, 2))
    boxes, _ = noisy_boxes(*TRUTH, 2, SHAPE, jitter, np.random.default_rng(1))
    assert len(boxes) == 3 and np.abs(boxes - TRUTH[0]).max() <= 2
    assert box_iou(boxes, TRUTH[0]).diagonal()[1] > 0.6  # 2 px off a 20 px box
    missing = noisy_boxes(
        *TRUTH, 2, SHAPE, NoiseProfile(miss=1.0, miss_small=1.0), np.random.default_rng(0)
    )
    assert len(missing[0]) == 0
    extra = noisy_boxes(
        *TRUTH, 2, SHAPE, NoiseProfile(false_positive=2.0), np.random.default_rng(0)
    )
    assert len(extra[0]) > 3 and (extra[0] >= 0).all() and (extra[0][:, 2:] <= 64).all()
    flipped = noisy_boxes(*TRUTH, 2, SHAPE, NoiseProfile(flip=1.0), np.random.default_rng(0))
    assert flipped[1].tolist() == [1, 0, 1]


def test_a_correction_keeps_close_boxes_and_deletes_false_ones():
    pre = (np.array([[0, 0, 10, 11], [30, 50, 40, 60]], float), np.array([1, 0]))
    profile = NoiseProfile(accept=0.8)
    boxes, classes = corrected_boxes(pre, TRUTH, 2, SHAPE, profile, np.random.default_rng(0))
    edits = box_edits(pre[0], pre[1], boxes, classes)
    # the close box kept where it was, with the true class; the false one deleted; two drawn
    assert [0, 0, 10, 11] in boxes.tolist()
    assert [30, 50, 40, 60] not in boxes.tolist()
    assert (edits.accepted, edits.corrected, edits.deleted, edits.drawn) == (0, 1, 1, 2)
    assert corrected_boxes(None, TRUTH, 2, SHAPE, profile, np.random.default_rng(0))[0].shape == (
        3,
        4,
    )


def test_an_overlooked_false_box_stays():
    pre = (np.array([[30, 50, 40, 60]], float), np.array([0]))
    boxes, _ = corrected_boxes(
        pre, TRUTH, 2, SHAPE, NoiseProfile(miss=1.0), np.random.default_rng(0)
    )
    assert boxes.tolist() == [[30, 50, 40, 60]]
