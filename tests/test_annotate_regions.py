"""Region tasks through a real Label Studio: chosen regions pushed with their context and
frame, annotated by simulated experts (objects touching the frame, whole), pulled, and merged
into one partial label per image that trains on its known pixels only."""

from __future__ import annotations

import base64
import csv
import io
import json

import numpy as np
import pytest
from conftest import one_dsb_study, remote_env
from PIL import Image
from scipy import ndimage as ndi
from typer.testing import CliRunner

from loop.annotate.preannotations import preannotation_of
from loop.annotate.pull import pull
from loop.annotate.regions import agree_regions, chosen_regions, push_regions
from loop.cli import app
from loop.cli.wiring import add_annotators, connect, simulate
from loop.core.images import read_mask
from loop.core.regions import touching
from loop.errors import PushRefused
from loop.noise import PROFILES
from loop.study import open_study
from loop.types import Prediction

pytestmark = pytest.mark.slow
TOML = 'task = "segmentation"\n[regions]\nsize = 128\nper_image = 2\n'


def test_regions_from_choice_to_a_partial_label(ls_study, tmp_path, monkeypatch):
    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    folder = one_dsb_study(tmp_path / "regions", TOML, tmp_path / "data")
    runner = CliRunner()
    result = runner.invoke(
        app, ["score", str(folder), "--strategy", "random@region", "--k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    with open_study(folder) as study:
        (image,) = study.store.images()
        shape = (image["height"], image["width"])
        truth = read_mask(study.store.truth(image["id"])["mask_path"], shape)
        regions = chosen_regions(study)
        assert len(regions) == 2 and {i for i, _ in regions} == {image["id"]}
        model = np.where(ndi.binary_erosion(truth > 0), truth, 0)
        tool = connect(study)
        add_annotators(study, tool, ["rae", "sol"])
        report = push_regions(
            study,
            tool,
            regions,
            overlap=2,
            context=32,
            predictions=lambda _im: Prediction(mask=model, model_version="eroded"),
        )
        assert report.created == 2
        again = push_regions(study, tool, regions, overlap=2, context=32)
        assert (again.created, again.already) == (0, 2)
        with pytest.raises(PushRefused, match="lies outside image"):
            push_regions(study, tool, [(image["id"], [500, 600, 128, 128])])
        tasks = list(study.store.db["tasks"].rows_where("purpose = 'region'", order_by="id"))
        for task, (_, box) in zip(tasks, regions):
            tile, frame = json.loads(task["tile"]), json.loads(task["region"])
            assert frame == box
            assert tile[0] == max(0, box[0] - 32) and tile[2] <= box[2] + 64
            local = (box[0] - tile[0], box[1] - tile[1], box[2], box[3])
            pre = preannotation_of(study, task["id"])  # only the model's objects at the frame
            crop = model[tile[0] : tile[0] + tile[2], tile[1] : tile[1] + tile[3]]
            assert np.array_equal(pre > 0, touching(crop, local) > 0)
            data = tool._json("GET", f"/api/tasks/{task['external_id']}", what="read")["data"]
            assert data["loop_region"] == list(local)
            encoded = data["image"].split("base64,")[1]  # a remote server: the PNG inline
            pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
            assert pixels.shape[:2] == (tile[2], tile[3])
            assert pixels[local[0], local[1] + 5].tolist() == [255, 208, 0]  # the frame
        sim = simulate(study, tool, {"rae": PROFILES["perfect"], "sol": PROFILES["perfect"]})
        assert sim.annotated == {"rae": 2, "sol": 2}
        pulled = pull(study, tool)
        assert pulled.new == 4 and pulled.malformed == []
        for row in study.store.db["annotations"].rows:  # each annotation's effort is counted
            assert row["effort"] is not None
        merged = agree_regions(study, min_agreement=0.5, min_annotations=2)
        assert sorted(merged.fused) == [t["id"] for t in tasks] and not merged.low
        assert agree_regions(study).already == 2  # merged once
        label = next(study.store.db["labels"].rows_where("source = 'consensus'"))
        mask = read_mask(study.resolve(label["mask_path"]), shape)
        known = read_mask(study.resolve(label["known_path"]), shape) > 0
        expected = np.zeros(shape, bool)
        for task, (_, box) in zip(tasks, regions):
            r, c, h, w = box
            assert known[r : r + h, c : c + w].all()
            tile = json.loads(task["tile"])
            part = truth[tile[0] : tile[0] + tile[2], tile[1] : tile[1] + tile[3]]
            local = (r - tile[0], c - tile[1], h, w)
            view = expected[tile[0] : tile[0] + tile[2], tile[1] : tile[1] + tile[3]]
            view |= touching(part, local) > 0
        assert np.array_equal(mask > 0, expected)  # the objects touching the frames, once
        assert (known >= (mask > 0)).all() and 0 < label["known_fraction"] < 1
        assert json.loads(label["provenance"])["regions"] == [t["id"] for t in tasks]
        assert study.store.image(image["id"])["split"] == "labeled"
        tool.close()
    # loop status counts them; loop export writes the known mask beside the label TIFF
    shown = runner.invoke(app, ["status", str(folder)])
    assert "regions: 2 done region tasks; 1 partial labels" in shown.stdout
    out = tmp_path / "export"
    assert runner.invoke(app, ["export", str(folder), str(out)]).exit_code == 0
    (label_tif,) = [p for p in out.glob("*.tif") if not p.stem.endswith("_known")]
    known_tif = out / f"{label_tif.stem}_known.tif"
    assert np.array_equal(read_mask(known_tif, shape) > 0, known)
    row = next(csv.DictReader(open(out / "provenance.csv")))
    assert row["known_file"] == known_tif.name and 0 < float(row["known_fraction"]) < 1


def _region_task(study, image, region, tile, masks, *, project="p1"):
    """A region task with the given annotators' masks (in tile coordinates), as pull leaves
    it."""
    from loop.core.images import write_labels
    from loop.store import dumps, utcnow

    now = utcnow()
    task_id = (
        study.store.db["tasks"]
        .insert(
            {
                "image_id": image["id"],
                "purpose": "region",
                "tool": "labelstudio",
                "project": project,
                "external_id": f"x{region}",
                "overlap": len(masks),
                "tile": dumps(tile),
                "region": dumps(region),
                "status": "done",
                "created_at": now,
                "updated_at": now,
            }
        )
        .last_pk
    )
    for name, mask in masks.items():
        path = study.path / "annotations" / f"{task_id}_{name}.tif"
        path.parent.mkdir(exist_ok=True)
        write_labels(path, mask)
        study.store.db["annotations"].insert(
            {
                "task_id": task_id,
                "image_id": image["id"],
                "annotator": name,
                "mask_path": str(path),
                "status": "current",
            }  # fmt: skip
        )
    return task_id


def test_odd_region_annotations_each_have_a_recorded_outcome(tmp_path):
    """Objects drawn far from the frame are left out and counted; a region with no object is
    known background; a region of an image that changed since its push is set aside with its
    annotations, and the region can be asked for again."""
    from loop.store import regions as rq

    folder = one_dsb_study(tmp_path / "odd", TOML, tmp_path / "data")
    with open_study(folder) as study:
        (image,) = study.store.images()
        shape = (image["height"], image["width"])
        tile, frame = [0, 0, 96, 96], [16, 16, 32, 32]
        drawn = np.zeros((96, 96), np.int32)
        drawn[20:30, 20:30] = 1  # at the frame
        drawn[85:95, 85:95] = 2  # far from it: not asked for
        odd = _region_task(study, image, frame, tile, {"a": drawn, "b": drawn.copy()})
        empty = np.zeros((96, 96), np.int32)
        blank = _region_task(study, image, [64, 64, 32, 32], [32, 32, 96, 96],
                             {"a": empty, "b": empty.copy()})  # fmt: skip
        report = agree_regions(study, min_agreement=0.5, min_annotations=2)
        assert sorted(report.fused) == sorted([odd, blank])
        assert report.outside == {odd: 2} and report.empty == [blank]
        assert any("drawn away from the frame" in line for line in report.lines())
        assert any("no object at the frame" in line for line in report.lines())
        label = study.store.db["labels"].rows_where("known_path IS NOT NULL")
        (label,) = list(label)
        mask = read_mask(study.resolve(label["mask_path"]), shape)
        known = read_mask(study.resolve(label["known_path"]), shape) > 0
        assert mask.max() == 1 and mask[85:95, 85:95].max() == 0  # the far object left out
        assert known[64:96, 64:96].all() and not mask[64:96, 64:96].any()  # known background
        assert not known[85:90, 0:10].any()
        # the image changes after a third region was pushed: that task is set aside
        late = _region_task(study, image, [0, 64, 32, 32], [0, 32, 96, 96],
                            {"a": empty, "b": empty.copy()})  # fmt: skip
        study.store.record_change(image["id"], "content", "old", "new")
        again = agree_regions(study, min_agreement=0.5, min_annotations=2)
        assert again.stale == [late] and again.fused == []
        assert any("changed since they were pushed" in line for line in again.lines())
        assert study.store.db["tasks"].get(late)["status"] == "stale"
        assert study.store.db["annotations"].count_where("task_id = ?", [late]) == 2
        where = {"tool": "labelstudio", "project": "p1"}
        assert rq.region_task_of(study.store, image["id"], "[0, 64, 32, 32]", **where) is None
        assert agree_regions(study).stale == []  # set aside once, not reported forever


def test_semantic_regions_become_a_class_map_known_over_the_regions(
    ls_study, tmp_path, monkeypatch
):
    """Pixel classes in regions: the annotators paint the frame, the consensus of each region
    is merged into the image's partial class map, known over the regions exactly (the
    painting around the frame is not used), and an arm's view keeps only its own regions."""
    from loop.learn.labels import arm_view, classmap_of, target_of

    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    toml = (
        'task = "semantic"\n[labels]\nclasses = ["background", "nucleus", "boundary"]\n'
        'masks = "instances"\n[regions]\nsize = 64\n'
    )
    folder = one_dsb_study(tmp_path / "sem", toml, tmp_path / "data")
    with open_study(folder) as study:
        (image,) = study.store.images()
        truth = classmap_of(study, image, study.store.truth(image["id"]))
        classes = study.config.labels.classes
        tool = connect(study)
        add_annotators(study, tool, ["rg-ann", "rg-bo"])
        boxes = [[0, 0, 64, 64], [64, 128, 64, 64]]

        def painted(_image):
            return Prediction(mask=truth, labels=classes, model_version="truth")

        regions = [(image["id"], box) for box in boxes]
        push_regions(study, tool, regions, overlap=2, context=16, predictions=painted)
        profiles = {"rg-ann": PROFILES["perfect"], "rg-bo": PROFILES["perfect"]}
        simulate(study, tool, profiles, seed=0)
        assert pull(study, tool).new == 4
        merged = agree_regions(study, min_agreement=0.5, min_annotations=2)
        assert len(merged.fused) == 2 and set(merged.agreement.values()) == {1.0}
        label = study.store.db["labels"].rows_where("source = 'consensus'").__next__()
        partial = target_of(study, image, label)
        expected = np.zeros(truth.shape, bool)
        for r, c, h, w in boxes:
            expected[r : r + h, c : c + w] = True
        assert np.array_equal(partial.known, expected)
        assert np.array_equal(partial.mask[expected], truth[expected])
        assert label["known_fraction"] == pytest.approx(expected.mean())
        mine = arm_view(study, image, label, [boxes[0]])
        view = target_of(study, image, mine)
        assert view.known.sum() == 64 * 64
        tool.close()
