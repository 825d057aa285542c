import json

import numpy as np
import pytest
from conftest import REPO

from connectors.ls_results import (
    class_to_results,
    label_config,
    mask_to_results,
    results_to_class,
    results_to_mask,
)
from loop.data.synthetic import synthetic_nuclei
from loop.errors import MalformedAnnotation

GOLDEN = REPO / "tests" / "data"


def small_mask():
    mask = np.zeros((6, 7), np.int32)
    mask[1:3, 1:3] = 4
    mask[3:6, 4:7] = 9
    return mask


def test_brush_results_match_golden_json():
    golden = json.loads((GOLDEN / "ls_brush_results.json").read_text())
    assert mask_to_results(small_mask()) == golden
    assert np.array_equal(results_to_mask(golden, (6, 7)) > 0, small_mask() > 0)


def test_choices_result_matches_golden_json():
    golden = json.loads((GOLDEN / "ls_choices_results.json").read_text())
    assert class_to_results("Neutrophil") == golden
    assert results_to_class(golden) == "Neutrophil"


def test_label_image_round_trip_is_exact_up_to_relabelling():
    _, mask = synthetic_nuclei((96, 80), 15, rng=3)
    back = results_to_mask(mask_to_results(mask), mask.shape)
    assert back.max() == len(np.unique(mask)) - 1
    # the same partition: each object maps to exactly one object
    pairs = {(a, b) for a, b in zip(mask.ravel(), back.ravel())}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_label_configs():
    seg = label_config("segmentation")
    assert "<BrushLabels" in seg and 'value="$image"' in seg
    cls = label_config("classification", ["A & B", "C"])
    assert '<Choice value="A &amp; B"/>' in cls and 'choice="single"' in cls
    with pytest.raises(MalformedAnnotation, match="needs its classes"):
        label_config("classification", [])


def test_malformed_results():
    results = mask_to_results(small_mask())
    with pytest.raises(MalformedAnnotation, match="drawn on a 6x7 image, the study's image is 7x7"):
        results_to_mask(results, (7, 7))
    broken = [{**results[0], "value": {"format": "rle", "rle": results[0]["value"]["rle"][:5]}}]
    with pytest.raises(MalformedAnnotation, match="truncated"):
        results_to_mask(broken, (6, 7))
    with pytest.raises(MalformedAnnotation, match="has no RLE brush data"):
        results_to_mask([{**results[0], "value": {"format": "rle"}}], (6, 7))
    with pytest.raises(MalformedAnnotation, match="must be a list"):
        results_to_mask({"type": "brushlabels"}, (6, 7))
    with pytest.raises(MalformedAnnotation, match="must be a list"):
        results_to_class("A")
    polygon = {"id": "p1", "type": "polygonlabels", "value": {"points": [[1, 1], [3, 1], [2, 3]]}}
    with pytest.raises(MalformedAnnotation, match="region p1 is a polygonlabels region"):
        results_to_mask([*results, polygon], (6, 7))
    # results that are not regions (a comment) are ignored
    comment = {"id": "c", "type": "textarea", "value": {"text": ["unsure"]}}
    assert results_to_mask([*results, comment], (6, 7)).max() == len(results)
    two = class_to_results("A") + class_to_results("B")
    with pytest.raises(MalformedAnnotation, match="several classes chosen"):
        results_to_class(two)


def test_empty_annotation_is_an_empty_mask():
    assert results_to_mask([], (4, 5)).max() == 0
    assert results_to_class([]) is None
