"""Detection through the real Label Studio: the model's boxes pushed as pre-annotations and
read back exact to the pixel, three simulated annotators correcting them, pairwise agreement
and a majority consensus of boxes, effort counted from the edits, a rotated box recorded as
malformed (never lost), and `loop run` rounds recorded with their F1."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tifffile
from conftest import remote_env
from test_centernet import squares
from typer.testing import CliRunner

from connectors.ls_boxes import results_to_boxes
from loop.cli import app
from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.reports.status import round_summaries
from loop.store.boxes import read_boxes_file
from loop.study import init_study, open_study

NAMES = ("dr-ann", "dr-bo", "dr-cy")
TOML = f"""\
task = "detection"
[labels]
object = "small"
others = ["large"]
[detection]
features = [8, 8, 16, 16, 32, 8]
crop = 64
tile = 64
dropout = 0.0
scale = 1.0
channels = 1
learning_rate = 0.005
min_steps = 150
max_steps = 150
val_fraction = 0.0
[augment]
intensity = false
noise = false
blur = false
[score]
k = 3
[rounds]
min_agreement = 0.0
annotators = [{", ".join(f'"{n}"' for n in NAMES)}]
"""


@pytest.fixture(scope="module")
def remote(ls_study):
    return remote_env(ls_study)


def _run(root, remote, toml: str):
    """A detection study of 14 square images (3 test, 5 labeled) under ``root`` after `loop
    run --rounds 1` with simulated annotators on the session's server."""
    images = root / "data" / "images"
    images.mkdir(parents=True)
    rows = ["image,class,x1,y1,x2,y2"]
    for i in range(14):
        image, boxes, classes = squares(300 + i)
        tifffile.imwrite(images / f"q{i:02d}.tif", image)
        rows += [
            f"q{i:02d}.tif,{('small', 'large')[k]},{','.join(str(int(v)) for v in b)}"
            for b, k in zip(boxes, classes, strict=True)
        ]
    (root / "data" / "boxes.csv").write_text("\n".join(rows) + "\n")
    folder = root / "study"
    init_study(folder).close()
    (folder / "loop.toml").write_text(toml)
    with open_study(folder) as study:
        ingest(study, images, boxes=root / "data" / "boxes.csv")
        split_study(study, test=3, initial=5, seed=0)
    result = CliRunner().invoke(
        app, ["run", str(folder), "--rounds", "1", "--annotators", "simulated"], env=remote
    )
    assert result.exit_code == 0, result.output
    return folder, result.output


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, remote):
    return _run(tmp_path_factory.mktemp("detection"), remote, TOML)


def test_rounds_are_recorded_with_the_boxes_f1(detection_run):
    folder, output = detection_run
    assert "held-out AP@0.5 of the boxes" in output
    with open_study(folder) as study:
        rows = round_summaries(study)
        assert [r["status"] for r in rows] == ["done", "evaluated"]
        assert all(r["score"] is not None for r in rows)
        assert 0.5 <= rows[0]["agreement"] <= 1
        assert rows[1]["n_labeled"] == 8


def test_preannotations_round_trip_and_effort_is_counted(detection_run, remote):
    folder, _ = detection_run
    headers = {"Authorization": f"Token {remote['LABEL_STUDIO_API_KEY']}"}
    with open_study(folder) as study, httpx.Client(base_url=remote["LABEL_STUDIO_URL"]) as web:
        tasks = list(study.store.db["tasks"].rows_where("purpose = 'annotate'"))
        assert len(tasks) == 3
        for task in tasks:
            image = study.store.image(task["image_id"])
            served = web.get(f"/api/tasks/{task['external_id']}", headers=headers).json()
            kept = folder / "preannotations" / f"{task['id']}.json"
            pre, _ = read_boxes_file(kept, ("small", "large"))
            pushed = served["predictions"][0]["result"]
            back, _ = results_to_boxes(pushed, (image["height"], image["width"]))
            assert np.allclose(back, pre, atol=0.01)  # exact to the pixel (1/100)
            assert len(served["annotations"]) == 3
        annotations = list(study.store.db["annotations"].rows)
        assert len(annotations) == 9 and all(a["status"] == "current" for a in annotations)
        for a in annotations:
            edits = json.loads(a["edits"])
            assert a["effort"] is not None and sum(edits.values()) >= a["n_objects"]


def test_consensus_is_a_box_label_near_the_truth(detection_run):
    folder, _ = detection_run
    with open_study(folder) as study:
        labels = list(study.store.db["labels"].rows_where("source = 'consensus'"))
        assert len(labels) == 3
        for label in labels:
            assert label["kind"] == "boxes" and label["mask_path"].endswith(".json")
            boxes, classes = read_boxes_file(study.resolve(label["mask_path"]), ("small", "large"))
            assert len(boxes) == label["n_objects"] >= 2
            assert json.loads(label["provenance"])["annotators"] == list(NAMES)


def test_a_rotated_box_is_recorded_as_malformed_and_kept(detection_run, remote):
    folder, _ = detection_run
    headers = {"Authorization": f"Token {remote['LABEL_STUDIO_API_KEY']}"}
    with open_study(folder) as study:
        task = next(iter(study.store.db["tasks"].rows_where("purpose = 'annotate'")))
        image = study.store.image(task["image_id"])
    rotated = {
        "id": "r1",
        "from_name": "boxes",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": image["width"],
        "original_height": image["height"],
        "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 45,
                  "rectanglelabels": ["small"]},
    }  # fmt: skip
    with httpx.Client(base_url=remote["LABEL_STUDIO_URL"], headers=headers) as web:
        made = web.post(f"/api/tasks/{task['external_id']}/annotations", json={"result": [rotated]})
        assert made.status_code == 201, made.text
    result = CliRunner().invoke(app, ["pull", str(folder)], env=remote)
    assert result.exit_code == 0, result.output
    assert "rotated by 45 degrees" in result.output
    with open_study(folder) as study:
        rows = list(study.store.db["annotations"].rows_where("status = 'malformed'"))
        assert len(rows) == 1 and json.loads(rows[0]["result"])["result"][0]["id"] == "r1"
        assert rows[0]["mask_path"] is None


def test_export_writes_coco_and_csv_that_ingest_reads_back(detection_run, tmp_path):
    from loop.data.box_files import read_boxes

    folder, _ = detection_run
    result = CliRunner().invoke(app, ["export", str(folder), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    coco = read_boxes(tmp_path / "out" / "coco.json")
    table = read_boxes(tmp_path / "out" / "boxes.csv")
    with open_study(folder) as study:
        for label in study.store.db["labels"].rows_where("source = 'consensus'"):
            image = study.store.image(label["image_id"])
            boxes, classes = read_boxes_file(study.resolve(label["mask_path"]), ("small", "large"))
            expected = [(("small", "large")[k], *b) for b, k in zip(boxes.tolist(), classes)]
            assert coco.of(image["path"]) == expected == table.of(image["path"])


def test_the_report_draws_boxes_on_test_images(detection_run, tmp_path):
    from loop.reports.html import write_report

    folder, _ = detection_run
    with open_study(folder) as study:
        written = write_report(study, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert "worst test image, F1" in html
    assert list((tmp_path / "report").glob("gallery-*.png"))
    assert written.hint


def test_a_study_of_points_goes_round_with_key_points(tmp_path_factory, remote):
    """``[detection] shape = "point"``: the model's points pushed as key points, corrected by
    the simulated annotators, fused by distance into a consensus of points."""
    toml = TOML.replace("scale = 1.0", 'scale = 1.0\nshape = "point"\npoint_radius = 4.0')
    toml = toml.replace('"dr-ann", "dr-bo", "dr-cy"', '"dp-ann", "dp-bo", "dp-cy"')
    folder, output = _run(tmp_path_factory.mktemp("points"), remote, toml)
    headers = {"Authorization": f"Token {remote['LABEL_STUDIO_API_KEY']}"}
    with open_study(folder) as study, httpx.Client(base_url=remote["LABEL_STUDIO_URL"]) as web:
        task = next(iter(study.store.db["tasks"].rows_where("purpose = 'annotate'")))
        served = web.get(f"/api/tasks/{task['external_id']}", headers=headers).json()
        kinds = {r["type"] for a in served["annotations"] for r in a["result"]}
        assert kinds == {"keypointlabels"}
        labels = list(study.store.db["labels"].rows_where("source = 'consensus'"))
        assert len(labels) == 3
        for label in labels:
            points, _ = read_boxes_file(study.resolve(label["mask_path"]), ("small", "large"))
            assert len(points) >= 2 and (points[:, :2] == points[:, 2:]).all()
        rows = round_summaries(study)
        assert rows[0]["agreement"] >= 0.5 and rows[-1]["score"] is not None


def test_a_round_of_regions_merges_partial_box_labels(detection_run, remote):
    """`loop round --strategy entropy@region` on the detection study (run last: it adds
    labels): regions chosen by the detector's doubt, pushed as region tasks with the boxes
    that touch each frame, annotated, fused and merged into partial box labels (known over
    the regions) that train the next model."""
    folder, _ = detection_run
    toml = folder / "loop.toml"
    toml.write_text(toml.read_text() + "\n[regions]\nsize = 32\nper_image = 2\ncontext = 8\n")
    args = ["round", str(folder), "--strategy", "entropy@region", "--annotators", "simulated"]
    result = CliRunner().invoke(app, args, env=remote)  # round 2: regions, end to end
    assert result.exit_code == 0, result.output
    with open_study(folder) as study:
        tasks = list(study.store.db["tasks"].rows_where("purpose = 'region'"))
        assert tasks and all(t["status"] == "done" for t in tasks)
        partial = list(study.store.db["labels"].rows_where("known_path IS NOT NULL"))
        assert partial and all(p["kind"] == "boxes" for p in partial)
        assert all(0 < p["known_fraction"] < 1 for p in partial)
        for p in partial:
            boxes, _ = read_boxes_file(study.resolve(p["mask_path"]), ("small", "large"))
            assert len(boxes) == p["n_objects"]
        current = study.store.db["annotations"].rows_where("status = 'current'")
        assert all(a["effort"] is not None for a in current)  # (the rotated box has none)
    trained = CliRunner().invoke(app, ["train", str(folder), "--json"], env=remote)
    assert trained.exit_code == 0, trained.output
    with open_study(folder) as study:  # the partial labels trained the new model
        model = study.store.db["models"].get(json.loads(trained.stdout)["model_id"])
        assert {p["image_id"] for p in partial} <= set(json.loads(model["train_image_ids"]))
