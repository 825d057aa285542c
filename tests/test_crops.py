"""What tile and region tasks show of a prediction: boxes moved into the tile and cut at its
edges, and of a region task only what touches the frame."""

import numpy as np

from loop.annotate.crops import at_frame, crop_boxes, cropped
from loop.models.centernet import Detected
from loop.models.centernet_family import region_detections
from loop.types import Boxes, Prediction

BOXES = Boxes(
    np.array([[0, 0, 10, 10], [40, 40, 60, 60], [100, 100, 110, 110]], float),
    ("a", "b", "a"),
    (200, 200),
    np.array([0.9, 0.5, 0.7]),
)


def test_boxes_in_a_tile_are_moved_and_cut():
    got = crop_boxes(BOXES, (30, 30, 40, 40))  # rows 30-70, cols 30-70
    assert got.boxes.tolist() == [[10, 10, 30, 30]]
    assert got.names == ("b",) and got.scores.tolist() == [0.5] and got.shape == (40, 40)
    (p,) = cropped((Prediction(boxes=BOXES),), (0, 0, 50, 50))
    assert p.boxes.boxes.tolist() == [[0, 0, 10, 10], [40, 40, 50, 50]]


def test_a_region_task_shows_the_boxes_that_touch_the_frame_whole():
    (p,) = cropped((Prediction(boxes=BOXES),), (0, 0, 120, 120))
    framed = at_frame(p, (45, 45, 20, 20))
    assert framed.boxes.boxes.tolist() == [[40, 40, 60, 60]]  # whole, not cut at the frame


def test_points_are_kept_where_they_fall():
    points = Boxes(np.array([[5, 5, 5, 5], [50, 50, 50, 50]], float), ("a", "a"), (64, 64),
                   points=True)  # fmt: skip
    got = crop_boxes(points, (40, 40, 20, 20))
    assert got.boxes.tolist() == [[10, 10, 10, 10]]


def test_region_measures_sum_the_detections_centred_in_each_region():
    found = Detected(
        boxes=np.array([[0, 0, 10, 10], [30, 30, 40, 40], [32, 32, 36, 36]], float),
        classes=np.zeros(3, int),
        scores=np.array([0.5, 0.99, 0.35]),
        doubt=np.array([0.2, 0.1, 0.3]),
        measures={},
        embedding=np.zeros(1),
        threshold=0.3,
    )
    values = region_detections(found, [[0, 0, 16, 16], [16, 16, 32, 32], [60, 60, 4, 4]])
    assert values[0, 0] > 0.99  # the entropy of a 0.5 score: one bit
    assert np.isclose(values[1, 1], 0.4)  # flip: 0.1 + 0.3
    assert values[1, 2] == 1  # 0.35 lies within 0.15 of the threshold
    assert values[2].tolist() == [0, 0, 0]
