"""Several kinds of object in one study (loop/core/object_classes.py)."""

import numpy as np

from loop.core.object_classes import (
    class_of_labels,
    counts,
    of_class,
    per_class_agreement,
    vote_classes,
)

MAIN = "nucleus"


def three_objects() -> np.ndarray:
    mask = np.zeros((12, 12), np.uint16)
    mask[1:4, 1:4], mask[1:4, 7:10], mask[7:11, 3:7] = 1, 2, 3
    return mask


def test_each_label_has_a_class_and_missing_ones_are_the_main_kind():
    mask = three_objects()
    assert class_of_labels(mask, None, default=MAIN) == {1: MAIN, 2: MAIN, 3: MAIN}
    named = class_of_labels(mask, [MAIN, "mitosis"], default=MAIN)
    assert named == {1: MAIN, 2: "mitosis", 3: MAIN}  # label 3 is past the list
    only = of_class(mask, [MAIN, "mitosis"], "mitosis", default=MAIN)
    assert only.dtype == mask.dtype and set(np.unique(only)) == {0, 2}
    assert np.array_equal(only == 2, mask == 2)
    assert not of_class(mask, None, "mitosis", default=MAIN).any()
    assert counts(mask, [MAIN, "mitosis"], default=MAIN) == {MAIN: 2, "mitosis": 1}


def test_agreement_per_class_compares_each_kind_on_its_own():
    mask = three_objects()
    masks = {"ann": mask, "bea": mask.copy(), "cat": mask.copy()}
    # same outlines; ann and bea call object 2 a mitosis, cat calls it a nucleus
    kinds = {"ann": [MAIN, "mitosis", MAIN], "bea": [MAIN, "mitosis", MAIN], "cat": None}
    out = per_class_agreement(masks, kinds, [MAIN, "mitosis", "apoptosis"], default=MAIN)
    # nucleus: ann|bea 1.0, ann|cat 2 of 2 vs 3 -> 0.8, bea|cat 0.8
    assert np.isclose(out[MAIN], (1.0 + 0.8 + 0.8) / 3)
    # mitosis: ann|bea agree (1.0); each of them against cat, who drew none: 0
    assert np.isclose(out["mitosis"], 1 / 3)
    assert out["apoptosis"] is None  # nobody drew one


def test_the_consensus_takes_each_objects_class_by_majority():
    mask = three_objects()
    masks = {"ann": mask, "bea": mask.copy(), "cat": mask.copy()}
    kinds = {"ann": [MAIN, "mitosis", MAIN], "bea": [MAIN, "mitosis", "mitosis"], "cat": None}
    assert vote_classes(mask, masks, kinds, default=MAIN) == [MAIN, "mitosis", MAIN]
    # a tie (one mitosis, one nucleus) and an object nobody drew go to the main kind
    fused = mask.copy()
    fused[5, 11] = 4
    two = {"ann": masks["ann"], "cat": masks["cat"]}
    assert vote_classes(fused, two, kinds, default=MAIN) == [MAIN, MAIN, MAIN, MAIN]
    # a poor overlap (IoU 0.2-0.33 when shifted by 2 px) is no vote; IoU 0.5-0.6 is one
    bea = ({"bea": mask}, {"bea": ["mitosis"] * 3})
    assert vote_classes(np.roll(mask, 2, axis=1), *bea, default=MAIN) == [MAIN] * 3
    assert vote_classes(np.roll(mask, 1, axis=0), *bea, default=MAIN) == ["mitosis"] * 3
