import json

import numpy as np
import pytest
from conftest import REPO

from connectors.ls_results import (
    KEY_FIELD,
    class_to_results,
    label_config,
    mask_to_results,
    results_to_class,
    results_to_mask,
    results_to_objects,
    task_payload,
)
from loop.data.synthetic import synthetic_nuclei
from loop.errors import MalformedAnnotation
from loop.types import LabelSpec, Prediction, ToolTask

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
    seg = label_config("BrushLabels")
    assert "<BrushLabels" in seg and 'value="$image"' in seg
    cls = label_config("Choices", ["A & B", "C"])
    assert '<Choice value="A &amp; B"/>' in cls and 'choice="single"' in cls
    with pytest.raises(MalformedAnnotation, match="needs its classes"):
        label_config("Choices", [])
    with pytest.raises(MalformedAnnotation, match="no labeling config for the control 'Polygon"):
        label_config("PolygonLabels")


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
    # a type in other letter case is a region of that tool all the same, never "no object"
    for kind in ("PolygonLabels", "BrushLabels", "RectangleLabels", "Polygon"):
        odd = {**polygon, "type": kind}
        with pytest.raises(MalformedAnnotation, match=f"region p1 is a {kind} region"):
            results_to_mask([*results, odd], (6, 7))
    with pytest.raises(MalformedAnnotation, match="typed 'Choices', not 'choices'"):
        results_to_class([{**class_to_results("A")[0], "type": "Choices"}])
    # results that are not regions (a comment) are ignored
    comment = {"id": "c", "type": "textarea", "value": {"text": ["unsure"]}}
    assert results_to_mask([*results, comment], (6, 7)).max() == len(results)
    two = class_to_results("A") + class_to_results("B")
    with pytest.raises(MalformedAnnotation, match="several classes chosen"):
        results_to_class(two)


def test_empty_annotation_is_an_empty_mask():
    assert results_to_mask([], (4, 5)).max() == 0
    assert results_to_class([]) is None


def test_labels_have_the_studys_name_colour_and_a_doubtful_twin():
    from connectors.ls_results import label_values
    from loop.types import LabelSpec

    spec = LabelSpec(name="nucleus", colour="#00c8ff", unsure_name="nucleus?")
    config = label_config("BrushLabels", labels=spec, keep=["Object", "nucleus"])
    assert label_values(config) == ["nucleus", "nucleus?", "Object"]  # old ones kept, once
    assert 'value="nucleus" background="#00c8ff"' in config
    assert 'value="nucleus?" background="#ffb000"' in config
    assert label_values(label_config("BrushLabels")) == ["Object"]  # the default
    mask = small_mask()
    results = mask_to_results(mask, label="nucleus", unsure=[9], unsure_label="nucleus?")
    names = {r["id"]: r["value"]["brushlabels"] for r in results}
    assert names == {"obj4": ["nucleus"], "obj9": ["nucleus?"]}
    # without an unsure label every object keeps the object's name
    plain = mask_to_results(mask, label="nucleus", unsure=[9])
    assert {r["value"]["brushlabels"][0] for r in plain} == {"nucleus"}
    # whatever their label, brush regions come back as objects
    assert results_to_mask(results, mask.shape).max() == 2


def test_other_kinds_of_object_are_labels_and_come_back_by_name():
    from connectors.ls_results import label_values, results_to_objects
    from loop.types import LabelSpec

    spec = LabelSpec(name="nucleus", unsure_name="nucleus?", others=(("mitosis", "#ff4fd8"),))
    config = label_config("BrushLabels", labels=spec)
    assert label_values(config) == ["nucleus", "mitosis", "nucleus?"]
    assert 'value="mitosis" background="#ff4fd8"' in config
    results = mask_to_results(small_mask(), label="nucleus")
    results[1]["value"]["brushlabels"] = ["mitosis"]  # an annotator relabels object 9
    mask, names = results_to_objects(results, (6, 7))
    assert names == ["nucleus", "mitosis"]
    assert np.array_equal(mask == 2, small_mask() == 9)  # object k is region k, in order


def test_task_state_reads_who_saved_an_annotation_last():
    from connectors.ls_results import task_state

    def task(updated_by):
        ann = {"id": 5, "completed_by": 3, "result": [], "updated_by": updated_by}
        return {"id": 9, "data": {"loop_task_id": 1}, "annotations": [ann]}

    for given, editor in ((4, "4"), ({"id": 4}, "4"), ([{"user_id": 4}], "4"), (None, None)):
        (ann,) = task_state(task(given)).annotations
        assert (ann.user_external_id, ann.editor_external_id) == ("3", editor)
    assert task_state({"id": 2, "data": {}, "annotations": []}).key is None


def test_a_task_imports_with_its_data_and_each_prediction():
    """Our key and image in the data, the tile and reviewer when given, and each prediction
    with its own region ids (two annotators' masks side by side must not share an id)."""
    mask = np.zeros((6, 8), np.uint16)
    mask[1:3, 1:4], mask[4:6, 5:8] = 1, 2
    task = ToolTask(
        key=7,
        image_id=3,
        name="a",
        image_url="/data/local-files/?d=media/a.png",
        height=6,
        width=8,
        predictions=(
            Prediction(mask=mask, score=0.25, model_version="m1", unsure=(2,)),
            Prediction(klass="Monocyte"),
        ),
        reviewer="lead@lab.org",
        tile=(0, 0, 6, 8),
        info={"round": 2},
    )
    payload = task_payload(task, LabelSpec(name="Nucleus", unsure_name="Nucleus?"))
    assert payload["data"] == {
        "image": "/data/local-files/?d=media/a.png",
        KEY_FIELD: 7,
        "loop_image_id": 3,
        "name": "a",
        "round": 2,
        "reviewer": "lead@lab.org",
        "loop_tile": [0, 0, 6, 8],
    }
    first, second = payload["predictions"]
    assert (first["model_version"], first["score"]) == ("m1", 0.25) and "score" not in second
    assert [r["value"]["brushlabels"] for r in first["result"]] == [["Nucleus"], ["Nucleus?"]]
    assert all(r["id"].startswith("pred0-") for r in first["result"])
    np.testing.assert_array_equal(results_to_objects(first["result"], (6, 8))[0] > 0, mask > 0)
    assert second["result"] == class_to_results("Monocyte")
