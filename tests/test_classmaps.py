"""Class maps: reading label images as classes, Dice/IoU/kappa by hand-worked cases, the
pooled summary and the per-pixel majority."""

import numpy as np
import pytest

from loop.core.classmaps import (
    class_index,
    class_scores,
    confusion,
    from_instances,
    from_regions,
    fuse,
    majority,
    pixel_entropy,
    pixel_kappa,
    summarize_classes,
    with_unsure,
)

CLASSES = ["bg", "nucleus", "boundary"]


def test_binary_255_images_are_two_classes_and_ignore_marks_unknown_pixels():
    index, known = class_index(np.array([[0, 255]]), 2)
    assert index.tolist() == [[0, 1]] and known.all()
    index, known = class_index(np.array([[0, 1, 9]]), 2, ignore=9)
    assert index.tolist() == [[0, 1, 0]] and known.tolist() == [[True, True, False]]


def test_a_value_outside_the_class_table_is_one_clear_error():
    with pytest.raises(ValueError, match=r"values 3, 4 are not classes: expected 0..2"):
        class_index(np.array([[0, 3, 4]]), 3)
    with pytest.raises(ValueError, match=r"or 9 \(unlabeled\)"):
        class_index(np.array([[0, 5]]), 2, ignore=9)


def test_instances_become_object_and_boundary_classes():
    mask = np.zeros((7, 7), int)
    mask[1:6, 1:6] = 4
    index, _ = class_index(mask, 3, instances=True)
    assert index[3, 3] == 1 and index[1, 3] == 2 and index[0, 0] == 0
    assert set(np.unique(from_instances(mask, 2))) == {0, 1}
    with pytest.raises(ValueError, match="2 classes .* or 3"):
        from_instances(mask, 4)


def test_dice_and_iou_by_hand():
    truth = np.array([[0, 1, 1, 1], [0, 0, 2, 2]])
    pred = np.array([[0, 1, 1, 0], [0, 1, 2, 0]])
    # nucleus: tp 2, fp 1, fn 1 -> dice 4/6, iou 2/4; boundary: tp 1, fn 1 -> 2/3, 1/2
    s = class_scores(truth, pred, CLASSES)
    assert s["per_class"]["nucleus"]["dice"] == pytest.approx(4 / 6)
    assert s["per_class"]["nucleus"]["iou"] == pytest.approx(0.5)
    assert s["per_class"]["boundary"]["dice"] == pytest.approx(2 / 3)
    assert s["mean_dice"] == pytest.approx((4 / 6 + 2 / 3) / 2)
    assert s["pixel_accuracy"] == pytest.approx(5 / 8)


def test_unknown_pixels_count_nowhere_and_absent_classes_have_no_dice():
    truth = np.array([[1, 1, 0]])
    pred = np.array([[1, 0, 0]])
    known = np.array([[True, False, True]])
    s = class_scores(truth, pred, CLASSES, known)
    assert s["per_class"]["nucleus"]["dice"] == 1.0
    assert s["per_class"]["boundary"]["dice"] is None
    assert s["mean_dice"] == 1.0  # the absent class is left out of the mean


def test_the_summary_pools_pixels_not_image_means():
    a = class_scores(np.ones((1, 10), int), np.ones((1, 10), int), CLASSES)  # perfect, 10 px
    b = class_scores(np.array([[1, 0]]), np.array([[0, 1]]), CLASSES)  # all wrong, 2 px
    pooled = summarize_classes([a, b], CLASSES, groups=["x", "y"])
    # nucleus: tp 10, fp 1, fn 1 -> 20/22 (the image mean would be 0.5)
    assert pooled["per_class"]["nucleus"]["dice"] == pytest.approx(20 / 22)
    assert pooled["n_images"] == 2 and pooled["per_group"]["y"]["mean_dice"] == 0.0


def test_confusion_refuses_maps_of_different_shapes():
    with pytest.raises(ValueError, match="class maps of shapes"):
        confusion(np.zeros((2, 2)), np.zeros((2, 3)), 2)


def test_kappa_is_one_when_equal_and_zero_at_chance():
    a = np.array([0, 0, 1, 1])
    assert pixel_kappa(a, a, 2) == 1.0
    assert pixel_kappa(a, np.array([0, 1, 0, 1]), 2) == pytest.approx(0.0)
    assert np.isnan(pixel_kappa(a, a, 2, known=np.zeros(4, bool)))


def test_majority_takes_the_most_voted_class_ties_to_the_lower():
    maps = [np.array([2, 1, 0]), np.array([2, 0, 1]), np.array([1, 0, 2])]
    index, support = majority(maps, 3)
    assert index.tolist() == [2, 0, 0]
    assert support.round(2).tolist() == [0.67, 0.67, 0.33]
    with pytest.raises(ValueError, match="majority of no class maps"):
        majority([], 2)


def test_entropy_is_zero_when_sure_and_one_when_uniform():
    p = np.array([[[1.0, 1 / 3]], [[0.0, 1 / 3]], [[0.0, 1 / 3]]])
    assert pixel_entropy(p).round(6).tolist() == [[0.0, 1.0]]


def test_regions_painted_with_class_names_become_a_class_map():
    regions = np.array([[0, 1, 2, 2]])
    assert from_regions(regions, ["boundary", "nucleus"], CLASSES).tolist() == [[0, 2, 1, 1]]
    with pytest.raises(ValueError, match="painted as 'bg', which is no class to paint"):
        from_regions(regions, ["bg", "nucleus"], CLASSES)
    with pytest.raises(ValueError, match="painted as 'mito'"):
        from_regions(regions, ["mito", "nucleus"], CLASSES)


def test_majority_and_staple_recover_the_truth_from_two_careful_and_one_careless():
    truth = np.zeros((20, 20), int)
    truth[5:15, 5:15] = 1
    careless = np.where(np.random.default_rng(0).random(truth.shape) < 0.3, 1 - truth, truth)
    maps = [truth, truth, careless]
    assert np.array_equal(fuse(maps, 2), truth)
    assert np.array_equal(fuse(maps, 2, method="staple"), truth)
    with pytest.raises(ValueError, match="no fusion 'mean' of class maps"):
        fuse(maps, 2, method="mean")


def test_a_class_table_maps_label_values_to_classes():
    index, known = class_index(np.array([[0, 128, 255, 7]]), 3, values=[0, 128, 255], ignore=7)
    assert index.tolist() == [[0, 1, 2, 0]] and known.tolist() == [[True, True, True, False]]
    with pytest.raises(ValueError, match=r"values 64 are not in the class table"):
        class_index(np.array([[0, 64]]), 3, values=[0, 128, 255])


def test_doubtful_paint_is_named_apart_and_read_back_as_its_class():
    mask, names = with_unsure(np.array([[0, 1, 2]]), np.array([[0.1, 0.2, 0.9]]), CLASSES, 0.5)
    assert mask.tolist() == [[0, 4, 2]] and names[4] == "nucleus?"
    regions = np.array([[0, 1, 2]])
    assert from_regions(regions, ["nucleus?", "boundary"], CLASSES).tolist() == [[0, 1, 2]]
    with pytest.raises(ValueError, match="painted as 'bg\\?'"):
        from_regions(regions, ["bg?", "boundary"], CLASSES)
    same, plain = with_unsure(np.array([[1]]), np.array([[0.1]]), CLASSES, 0.0)
    assert same.tolist() == [[1]] and plain == tuple(CLASSES)
