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
    assert report.decision.startswith("accepted") or report.model_id
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
