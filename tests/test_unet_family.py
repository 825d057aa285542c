"""The U-Net family through a study: semantic ground truth ingested (binary, class indices,
instances, ignore values; bad masks skipped with a reason), trained, validated, evaluated per
class and per group, and its recipe."""

import numpy as np
import pytest
import tifffile
from test_unet import blobs

from loop.config import StudyConfig
from loop.config_parse import parse_config
from loop.config_view import LabelsConfig
from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.learn.evaluate import evaluate
from loop.learn.train import train
from loop.models.base import n_steps
from loop.models.family import family_for_task
from loop.study import init_study

CONFIG = """
task = "semantic"
groups = ["part"]
[labels]
classes = ["background", "disc"]
[unet]
features = [4, 4, 8, 8, 16, 4]
crop = 32
tile = 64
dropout = 0.0
min_steps = 150
max_steps = 150
val_fraction = 0.0
"""


@pytest.fixture
def disc_folder(tmp_path):
    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rows = ["id,part"]
    for i in range(8):
        image, classes = blobs(i)
        tifffile.imwrite(images / f"d{i}.tif", image)
        tifffile.imwrite(masks / f"d{i}.tif", (classes * 255).astype(np.uint8))  # 0/255
        rows.append(f"d{i},{'test' if i >= 5 else 'train'}")
    tifffile.imwrite(images / "bad.tif", image)
    tifffile.imwrite(masks / "bad.tif", (classes * 7).astype(np.uint8))  # 7 is no class
    (tmp_path / "data" / "meta.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data"


@pytest.fixture
def disc_study(tmp_path, disc_folder):
    (tmp_path / "semantic.toml").write_text(CONFIG)
    with init_study(tmp_path / "study", config=tmp_path / "semantic.toml") as study:
        report = ingest(
            study,
            disc_folder / "images",
            masks=disc_folder / "masks",
            metadata=disc_folder / "meta.csv",
        )
        assert report.valid == 8
        yield study, report


def test_a_mask_with_a_value_outside_the_class_table_is_skipped_with_its_reason(disc_study):
    study, report = disc_study
    (skipped,) = report.skipped
    assert skipped.reason == "bad-mask" and "values 7 are not classes" in skipped.message


@pytest.mark.slow
def test_train_and_evaluate_per_class_and_per_group(disc_study):
    study, _ = disc_study
    split_study(study, test=0, initial=5, test_where=["part=test"])
    report = train(study)
    assert report.status == "accepted" and report.steps == 150
    figures = evaluate(study)
    assert figures["n_images"] == 3 and figures["per_class"]["disc"]["dice"] > 0.8
    assert figures["mean_dice"] == figures["per_class"]["disc"]["dice"]
    assert figures["per_group"]["part=test"]["n_images"] == 3
    again = evaluate(study)  # cached per model
    assert again["mean_dice"] == figures["mean_dice"]


def test_ground_truth_with_ignored_pixels_is_partial(tmp_path, disc_folder):
    labels = LabelsConfig(classes=("background", "disc"), ignore=9)
    mask = np.zeros((64, 64), np.uint8)
    mask[:10] = 9
    tifffile.imwrite(disc_folder / "masks" / "d0.tif", mask)
    (tmp_path / "c.toml").write_text(CONFIG.replace("[labels]\n", "[labels]\nignore = 9\n"))
    with init_study(tmp_path / "s2", config=tmp_path / "c.toml") as study:
        assert study.config.labels.ignore == labels.ignore
        ingest(study, disc_folder / "images", masks=disc_folder / "masks")
        from loop.learn.labels import target

        image = study.store.images("name = 'd0'")[0]
        truth = study.store.truth(image["id"])
        partial = target(study, image, truth, "classmap")
        assert partial.known[:10].sum() == 0 and partial.known[10:].all()


def test_the_step_budget_follows_the_images_and_a_warm_start_takes_fewer():
    config = parse_config(CONFIG.replace("min_steps = 150", "min_steps = 10"))
    family = family_for_task("semantic")
    cold = family.recipe(config, n_train=4, seed=None, steps=None, parent=None, extend=False)
    warm = family.recipe(config, n_train=4, seed=None, steps=None, parent={"id": 1}, extend=False)
    assert cold.steps == 40 and warm.steps == 20 and warm.warm and not cold.warm
    assert cold.params["classes"] == ["background", "disc"]
    assert (
        n_steps(1000, StudyConfig(task="semantic", labels=config.labels).unet, warm=False) == 1200
    )


@pytest.mark.slow
def test_predict_and_measure_write_class_maps_and_class_areas(disc_study, disc_folder, tmp_path):
    from loop.core.images import read_mask
    from loop.learn.measure import measure_folder
    from loop.learn.predict import predict_folder

    study, _ = disc_study
    split_study(study, test=0, initial=5, test_where=["part=test"])
    train(study)
    rows = predict_folder(study, disc_folder / "images", tmp_path / "pred")
    row = next(r for r in rows if r["file"] == "d6.tif")
    classes = read_mask(tmp_path / "pred" / row["labels"])
    assert set(np.unique(classes)) <= {0, 1}
    assert row["fraction.disc"] == pytest.approx(float((classes == 1).mean()), abs=1e-6)
    header = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()[0]
    assert "fraction.background,fraction.disc" in header

    report = measure_folder(study, disc_folder / "images", tmp_path / "meas", pixel_size=0.5)
    images = (tmp_path / "meas" / "images.csv").read_text().splitlines()
    assert "area.disc,fraction.disc,area_um2.disc" in images[0]
    objects = (tmp_path / "meas" / "objects.csv").read_text().splitlines()
    assert objects[0].startswith("file,class,label") and report.n_objects == len(objects) - 1
    assert all(",disc," in line for line in objects[1:])


def test_measuring_label_images_with_a_value_that_is_no_class_skips_them(disc_study, tmp_path):
    from loop.learn.measure import measure_folder

    study, _ = disc_study
    folder, masks = tmp_path / "m" / "images", tmp_path / "m" / "masks"
    folder.mkdir(parents=True)
    masks.mkdir()
    image, classes = blobs(3)
    tifffile.imwrite(folder / "a.tif", image)
    tifffile.imwrite(masks / "a.tif", (classes * 5).astype(np.uint8))
    report = measure_folder(study, folder, tmp_path / "out", masks=masks)
    ((name, why),) = report.errors
    assert name == "a.tif" and "has value 5, but the study has 2 classes" in why


def test_pre_annotations_from_a_folder_name_the_classes_and_refuse_other_values(
    disc_study, disc_folder
):
    from loop.cli.annotate import _predictions_from
    from loop.errors import PushRefused

    study, _ = disc_study
    image = study.store.images("name = 'd0'")[0]
    (disc_folder / "masks" / "d0.tif").rename(disc_folder / "masks" / "keep.tif")
    tifffile.imwrite(disc_folder / "masks" / "d0.tif", np.ones((64, 64), np.uint8))
    predicted = _predictions_from(disc_folder / "masks", study)(image)
    assert predicted.labels == ("background", "disc") and predicted.mask.max() == 1
    tifffile.imwrite(disc_folder / "masks" / "d0.tif", np.full((64, 64), 3, np.uint8))
    with pytest.raises(PushRefused, match="has value 3, but the study has 2 classes"):
        _predictions_from(disc_folder / "masks", study)(image)
