"""``loop score --strategy NAME@region``: regions measured once per model and image, the batch
the best regions of the pool, at most ``[regions] per_image`` of one image, recorded."""

import json

import numpy as np
from conftest import cli_seg_study
from typer.testing import CliRunner

from loop.cli import app
from loop.core.regions import grid
from loop.study import open_study

runner = CliRunner()


def regions_study(tmp_path, nuclei_folder):
    study = cli_seg_study(tmp_path / "study", nuclei_folder)
    toml = study / "loop.toml"
    toml.write_text(toml.read_text() + "[regions]\nsize = 16\nper_image = 2\n")
    return study


def score(study, *args):
    result = runner.invoke(app, ["score", str(study), "--json", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_flip_regions_are_the_best_of_the_pool_capped_per_image(tmp_path, nuclei_folder):
    study = regions_study(tmp_path, nuclei_folder)
    assert runner.invoke(app, ["train", str(study)]).exit_code == 0
    first = score(study, "--strategy", "flip@region", "--k", 3)
    assert first["strategy"] == "flip@region" and first["scored"] == 2  # the two pool images
    chosen = first["chosen"]
    assert len(chosen) == 3
    per_image = np.bincount([c["image_id"] for c in chosen])
    assert per_image.max() <= 2
    with open_study(study) as s:
        stored = {r["image_id"]: r for r in s.store.db["region_scores"].rows}
        assert len(stored) == 2
        values = []
        for image_id, row in stored.items():
            image = s.store.image(image_id)
            cells = json.loads(row["values"])
            assert [c[:4] for c in cells] == grid(image["height"], image["width"], 16).tolist()
            assert json.loads(row["measures"]) == ["flip", "entropy"]
            values += [(c[4], image_id, c[:4]) for c in cells]
        # best first, and no allowed region beats the last one chosen
        scores = [c["score"] for c in chosen]
        assert scores == sorted(scores, reverse=True)
        picked = {(c["image_id"], tuple(c["region"])) for c in chosen}
        for value, image_id, box in values:
            full = sum(1 for c in chosen if c["image_id"] == image_id) >= 2
            if (image_id, tuple(box)) not in picked and not full:
                assert value <= scores[-1] + 1e-3
        selection = next(s.store.db["selections"].rows_where("strategy = 'flip@region'"))
        assert json.loads(selection["regions"]) == [[c["image_id"], *c["region"]] for c in chosen]
    # a re-run measures nothing again and records nothing new
    again = score(study, "--strategy", "flip@region", "--k", 3)
    assert again["scored"] == 0 and again["chosen"] == chosen
    with open_study(study) as s:
        assert s.store.db["selections"].count_where("strategy = 'flip@region'") == 1
    table = runner.invoke(app, ["score", str(study), "--strategy", "entropy@region", "--k", 2])
    assert table.exit_code == 0 and "region (row, col, h, w)" in table.stdout


def test_random_regions_need_no_model_and_a_bad_name_is_one_error(tmp_path, nuclei_folder):
    study = regions_study(tmp_path, nuclei_folder)
    drawn = score(study, "--strategy", "random@region", "--k", 4, "--seed", 1)["chosen"]
    assert len(drawn) == 4 and all(c["score"] is None for c in drawn)
    assert np.bincount([c["image_id"] for c in drawn]).max() <= 2
    result = runner.invoke(app, ["score", str(study), "--strategy", "flop@region"])
    assert result.exit_code == 1
    assert "unknown region strategy 'flop@region' for segmentation; choose one of" in result.stderr
    result = runner.invoke(app, ["score", str(study), "--strategy", "flip+groups@region"])
    assert result.exit_code == 1 and "groups" in result.stderr


def test_typical_regions_need_no_model_and_are_seeded(tmp_path, nuclei_folder):
    study = regions_study(tmp_path, nuclei_folder)
    first = score(study, "--strategy", "typiclust@region", "--k", 3, "--seed", 2)
    again = score(study, "--strategy", "typiclust@region", "--k", 3, "--seed", 2)
    assert first["chosen"] == again["chosen"] and first["scored"] == 0
    chosen = first["chosen"]
    assert len(chosen) == 3 and all(c["score"] is None for c in chosen)
    assert np.bincount([c["image_id"] for c in chosen]).max() <= 2
    with open_study(study) as s:
        pool = {im["id"]: im for im in s.store.images("split = 'pool'")}
        for c in chosen:  # whole grid regions of pool images
            image = pool[c["image_id"]]
            cells = grid(image["height"], image["width"], 16).tolist()
            assert c["region"] in cells
        row = next(s.store.db["selections"].rows_where("strategy = 'typiclust@region'"))
        assert json.loads(row["regions"]) == [[c["image_id"], *c["region"]] for c in chosen]


def test_pool_sample_bounds_the_images_whose_regions_are_measured(tmp_path, nuclei_folder):
    study = regions_study(tmp_path, nuclei_folder)
    toml = study / "loop.toml"
    toml.write_text(toml.read_text() + "[score]\npool_sample = 1\n")
    assert runner.invoke(app, ["train", str(study)]).exit_code == 0
    first = score(study, "--strategy", "flip@region", "--k", 3, "--seed", 4)
    assert first["scored"] == 1 and len({c["image_id"] for c in first["chosen"]}) == 1
    with open_study(study) as s:
        assert s.store.db["region_scores"].count == 1
    again = score(study, "--strategy", "flip@region", "--k", 3, "--seed", 4)
    assert again["chosen"] == first["chosen"]  # the same sample for the same model and seed
    # the features of every region (typiclust@region) come from the sample too
    typical = score(study, "--strategy", "typiclust@region", "--k", 3, "--seed", 4)["chosen"]
    assert len({c["image_id"] for c in typical}) == 1
