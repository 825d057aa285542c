"""Boxes to and from Label Studio ``rectanglelabels`` results: exact to the pixel, and every
malformed region refused with its reason."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ls_boxes import boxes_to_results, results_to_boxes
from connectors.ls_results import label_config
from loop.errors import MalformedAnnotation
from loop.types import LabelSpec

SHAPE = (480, 640)


def test_round_trip_by_hand():
    results = boxes_to_results([[260, 177, 491, 376]], ["WBC"], SHAPE, scores=[0.91])
    value = results[0]["value"]
    assert value["x"] == pytest.approx(100 * 260 / 640)
    assert value["height"] == pytest.approx(100 * 199 / 480)
    assert results[0]["score"] == 0.91
    boxes, names = results_to_boxes(results, SHAPE)
    assert names == ["WBC"]
    assert np.allclose(boxes, [[260, 177, 491, 376]])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 440), st.integers(1, 40), st.integers(1, 40)),
        max_size=8,
    )
)
def test_round_trip_is_exact_to_the_pixel(rows):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rows], float).reshape(-1, 4)
    names = [f"c{i % 3}" for i in range(len(boxes))]
    back, got = results_to_boxes(boxes_to_results(boxes, names, SHAPE), SHAPE)
    assert got == names
    assert np.array_equal(np.round(back), boxes)


def test_other_results_are_ignored_and_other_regions_refused():
    text = {"type": "textarea", "value": {"text": ["note"]}}
    assert results_to_boxes([text], SHAPE)[0].shape == (0, 4)
    brush = {"id": "b1", "type": "brushlabels", "value": {}}
    with pytest.raises(MalformedAnnotation, match="b1 is a brushlabels region"):
        results_to_boxes([brush], SHAPE)
    with pytest.raises(MalformedAnnotation, match="must be a list"):
        results_to_boxes({"a": 1}, SHAPE)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"original_width": 100}, "drawn on a 480x100 image"),
        ({"value": {"x": 1, "y": 1, "width": 2, "rectanglelabels": ["a"]}}, "not a rectangle"),
        ({"value": {"x": 1, "y": 1, "width": 2, "height": 2}}, "not a rectangle"),
        ({"value": {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": []}}, "not a"),
        (
            {
                "value": {
                    "x": 1,
                    "y": 1,
                    "width": 2,
                    "height": 2,
                    "rotation": 30,
                    "rectanglelabels": ["a"],
                }
            },
            "rotated by 30 degrees",
        ),
        (
            {"value": {"x": "nan", "y": 1, "width": 2, "height": 2, "rectanglelabels": ["a"]}},
            "no usable coordinates",
        ),
        (
            {"value": {"x": 1, "y": 1, "width": -2, "height": 2, "rectanglelabels": ["a"]}},
            "no usable coordinates",
        ),
    ],
)
def test_malformed_rectangles_are_refused(change, match):
    (result,) = boxes_to_results([[10, 10, 20, 20]], ["a"], SHAPE)
    result.update(change)
    with pytest.raises(MalformedAnnotation, match=match):
        results_to_boxes([result], SHAPE)


def test_label_config_for_boxes():
    spec = LabelSpec(name="RBC", colour="#ff0000", others=(("WBC", "#00ff00"),))
    config = label_config("RectangleLabels", labels=spec)
    assert '<RectangleLabels name="boxes" toName="image">' in config
    assert 'value="WBC"' in config and 'value="RBC"' in config


def test_points_round_trip_as_key_points():
    points = [[10, 20, 10, 20], [30.5, 5, 30.5, 5]]
    results = boxes_to_results(points, ["a", "b"], SHAPE, points=True, scores=[0.5, 0.9])
    assert {r["type"] for r in results} == {"keypointlabels"}
    assert results[1]["score"] == 0.9
    back, names = results_to_boxes(results, SHAPE)
    assert names == ["a", "b"] and np.allclose(back, points)
    bad = dict(results[0], value={"x": 1, "keypointlabels": ["a"]})
    with pytest.raises(MalformedAnnotation, match="not a point with a label"):
        results_to_boxes([bad], SHAPE)
    with pytest.raises(MalformedAnnotation, match="drawn on a 480x10 image"):
        results_to_boxes([dict(results[0], original_width=10)], SHAPE)
    assert "<KeyPointLabels" in label_config("KeyPointLabels", labels=LabelSpec(name="a"))
