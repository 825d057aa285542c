"""The detector family through a study: boxes ingested (a CSV; instance masks turned into
boxes), bad boxes left out with a reason, trained, evaluated per class and per group, and a
folder predicted to CSV through the CLI."""

import csv

import numpy as np
import pytest
import tifffile
from test_centernet import squares
from typer.testing import CliRunner

from loop.cli import app
from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.errors import TaskMismatch
from loop.learn.evaluate import evaluate
from loop.learn.labels import boxes_of, training_labels
from loop.learn.train import train
from loop.study import init_study

CONFIG = """
task = "detection"
groups = ["part"]
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
min_steps = 250
max_steps = 250
val_fraction = 0.0
[augment]
intensity = false
noise = false
blur = false
"""
NAMES = ("small", "large")


@pytest.fixture
def square_folder(tmp_path):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    rows, meta = ["image,class,x1,y1,x2,y2"], ["id,part"]
    for i in range(9):
        image, boxes, classes = squares(i)
        tifffile.imwrite(images / f"s{i}.tif", image)
        rows += [
            f"s{i}.tif,{NAMES[k]},{','.join(map(str, map(int, b)))}" for b, k in zip(boxes, classes)
        ]
        meta.append(f"s{i},{'test' if i >= 6 else 'train'}")
    rows.append("s0.tif,dust,1,1,5,5")  # a class the study lacks
    rows.append("s1.tif,small,60,60,90,90")  # outside the 64 x 64 image
    (tmp_path / "data" / "boxes.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "data" / "meta.csv").write_text("\n".join(meta) + "\n")
    return tmp_path / "data"


@pytest.fixture
def square_study(tmp_path, square_folder):
    (tmp_path / "detection.toml").write_text(CONFIG)
    with init_study(tmp_path / "study", config=tmp_path / "detection.toml") as study:
        report = ingest(
            study,
            square_folder / "images",
            boxes=square_folder / "boxes.csv",
            metadata=square_folder / "meta.csv",
        )
        yield study, report


def test_boxes_are_ingested_and_bad_ones_left_out_with_a_reason(square_study):
    study, report = square_study
    assert report.valid == 9 and report.with_truth == 9
    assert len(report.box_notes) == 2
    assert "'dust' is not one of" in report.box_notes[0]
    assert "outside the 64 x 64 image" in report.box_notes[1]
    image = study.store.image_by_path(str(study.path.parent / "data" / "images"), "s2.tif")
    label = study.store.truth(image["id"])
    assert label["kind"] == "boxes" and label["n_objects"] == 3
    boxes, classes = boxes_of(study, image, label)
    assert np.array_equal(boxes, squares(2)[1]) and classes.tolist() == squares(2)[2].tolist()


def test_boxes_for_another_task_are_refused(tmp_path, square_folder):
    with init_study(tmp_path / "seg") as study:
        with pytest.raises(TaskMismatch, match="--boxes is for detection studies"):
            ingest(study, square_folder / "images", boxes=square_folder / "boxes.csv")


def test_instance_masks_become_boxes(tmp_path, square_folder):
    masks = tmp_path / "masks"
    masks.mkdir()
    image, boxes, _ = squares(3)
    mask = np.zeros(image.shape, np.uint16)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int), start=1):
        mask[y1:y2, x1:x2] = i
    tifffile.imwrite(masks / "s3.tif", mask)
    (tmp_path / "detection.toml").write_text(CONFIG)
    with init_study(tmp_path / "study", config=tmp_path / "detection.toml") as study:
        ingest(study, square_folder / "images", masks=masks)
        image_row = study.store.image_by_path(str(square_folder / "images"), "s3.tif")
        got, classes = boxes_of(study, image_row, study.store.truth(image_row["id"]))
        assert np.array_equal(got, boxes) and classes.tolist() == [0, 0, 0]


@pytest.mark.slow
def test_train_evaluate_and_predict(square_study, square_folder, tmp_path):
    study, _ = square_study
    split_study(study, test=0, initial=6, test_where=["part=test"])
    assert len(training_labels(study)) == 6
    report = train(study)
    assert report.status == "accepted" and report.steps == 250
    figures = evaluate(study)
    assert figures["f1"] >= 0.7, figures
    assert set(figures["per_class"]) == set(NAMES)
    assert {"precision", "recall", "mean_ap", "count_mae"} <= set(figures)
    assert figures["per_group"]["part=test"]["n_images"] == 3
    runner = CliRunner()
    out = tmp_path / "pred"
    result = runner.invoke(
        app, ["predict", str(study.path), str(square_folder / "images"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 9 and {"count.small", "count.large"} <= set(rows[0])
    found = list(csv.DictReader(open(out / "detections.csv")))
    assert {r["class"] for r in found} <= set(NAMES)
    per_image = sum(int(r["count.small"]) + int(r["count.large"]) for r in rows)
    assert per_image == len(found) and per_image >= 20


@pytest.mark.slow
def test_points_train_and_evaluate_by_distance(square_folder, tmp_path):
    """A study of points (``[detection] shape = "point"``): the CSV's boxes read as their
    centres, the detector trained on spots, matched by distance within the radius."""
    (tmp_path / "p.toml").write_text(
        CONFIG.replace("scale = 1.0", 'scale = 1.0\nshape = "point"\npoint_radius = 4.0')
    )
    with init_study(tmp_path / "points", config=tmp_path / "p.toml") as study:
        ingest(study, square_folder / "images", boxes=square_folder / "boxes.csv",
               metadata=square_folder / "meta.csv")  # fmt: skip
        image = study.store.image_by_path(str(square_folder / "images"), "s2.tif")
        points, _ = boxes_of(study, image, study.store.truth(image["id"]))
        assert (points[:, :2] == points[:, 2:]).all()
        centres = (squares(2)[1][:, :2] + squares(2)[1][:, 2:]) / 2
        assert np.allclose(points[:, :2], centres)
        split_study(study, test=0, initial=6, test_where=["part=test"])
        assert train(study).status == "accepted"
        figures = evaluate(study)
        assert figures["f1"] >= 0.7, figures
