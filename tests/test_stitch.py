"""Tiled images: tiles pushed as tasks, each annotator's tiles stitched back (real Label Studio,
the session's server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DSB, remote_env

from loop.annotate.pull import pull
from loop.annotate.push import push, select_for_push
from loop.cli.wiring import add_annotators, connect, connect_as, simulate
from loop.core.images import read_mask
from loop.faults import CRASH_EXIT_CODE
from loop.noise import PROFILES
from loop.study import init_study, open_study

pytestmark = pytest.mark.slow
TILED = ("2c83c86dd4", "449f417107")  # 520 x 696 fluorescence, 24 and 34 nuclei
TILE_PROFILES = {"tia": "perfect", "tom": "average", "tess": "sloppy"}


def test_large_images_go_as_tiles_and_come_back_stitched(ls_study, tmp_path, monkeypatch):
    """Two 520x696 DSB images as tiles of at most 256 px (3 x 3, 32 px shared) and a 256²
    one whole, with the ground truth as pre-annotation; a push killed after Label Studio made
    the tasks is resumed; three simulated annotators; the noise-free one's stitched masks are
    the ground truth; a tile redrawn makes a new version of the image's annotation."""
    from loop.annotate.consensus import agree
    from loop.core.tiles import Tiling
    from loop.data.ingest import ingest

    data = tmp_path / "data"
    for folder in ("images", "masks"):
        (data / folder).mkdir(parents=True)
    names = [p.stem for p in sorted((DSB / "images").glob("*.png")) if p.stem.startswith(TILED)]
    names.append(sorted((DSB / "images").glob("*.png"))[0].stem)  # 256 x 256
    for name in names:
        (data / "images" / f"{name}.png").write_bytes((DSB / "images" / f"{name}.png").read_bytes())
        (data / "masks" / f"{name}.tif").write_bytes((DSB / "masks" / f"{name}.tif").read_bytes())
    env = remote_env(ls_study)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    study_dir = tmp_path / "tiled"
    with init_study(study_dir) as study:
        ingest(study, data / "images", masks=data / "masks")
    killed = subprocess.run(
        [sys.executable, "-m", "loop.cli", "push", str(study_dir), "--limit", "3"]
        + ["--overlap", "3", "--tile", "256", "--predictions", str(data / "masks")],
        env={**os.environ, "LOOP_CRASH_AT": "push.created"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    with open_study(study_dir) as study:
        db = study.store.db
        assert db["tasks"].count_where("purpose = 'tile' AND status = 'pending'") == 18
        tool = connect(study)
        images = select_for_push(study, split="pool")
        resumed = push(study, tool, images, overlap=3, tiling=Tiling(tile=256))
        assert (resumed.adopted, resumed.created, resumed.already) == (19, 0, 3)
        project = next(db["tool_projects"].rows)["project"]
        in_tool = [t for page in tool.iter_tasks(project) for t in page]
        assert len(in_tool) == 19 and len({t.key for t in in_tool}) == 19
        tiles = list(db["tasks"].rows_where("purpose = 'tile'", order_by="id"))
        boxes = [json.loads(t["tile"]) for t in tiles[:9]]
        assert boxes[0] == [0, 0, 195, 254] and boxes[-1] == [325, 442, 195, 254]
        # a tile task shows the tile and the model's prediction cut to it
        task = tool._json("GET", f"/api/tasks/{tiles[4]['external_id']}", what="get a task")
        assert task["data"]["loop_tile"] == boxes[4] and "rows 163-358" in task["data"]["name"]
        region = task["predictions"][0]["result"][0]
        assert (region["original_height"], region["original_width"]) == (195, 254)
        assert list(
            (study.path / "labelstudio" / "public" / "media").glob("*_tile_163_222_195x254.png")
        )

        add_annotators(study, tool, list(TILE_PROFILES))  # accounts of the shared server
        sim = simulate(study, tool, {n: PROFILES[p] for n, p in TILE_PROFILES.items()}, seed=0)
        assert sim.annotated == {"tia": 19, "tom": 19, "tess": 19}
        first = pull(study, tool)
        assert (first.new, first.stitched, first.malformed) == (57, 6, [])
        parents = {
            r["image_id"]: r for r in db["tasks"].rows_where("purpose = 'annotate'", order_by="id")
        }
        assert all(p["status"] == "done" for p in parents.values())
        for image_id, parent in parents.items():
            found = db["annotations"].rows_where("task_id = ?", [parent["id"]])
            rows = {a["annotator"]: a for a in found}
            assert set(rows) == set(TILE_PROFILES)
            image = study.store.image(image_id)
            truth = read_mask(
                study.store.truth(image_id)["mask_path"], (image["height"], image["width"])
            )
            got = read_mask(study.resolve(rows["tia"]["mask_path"]), truth.shape)
            # the same objects, up to their numbering
            pairs = np.unique(np.stack([truth.ravel(), got.ravel()]), axis=1)
            assert len(pairs.T) == len(np.unique(truth)) == len(np.unique(got))
            if image["width"] == 696:
                lead = sum(
                    a["lead_time"]
                    for a in db.query(
                        "SELECT a.lead_time FROM annotations a JOIN tasks t ON t.id = a.task_id "
                        "WHERE t.purpose = 'tile' AND t.image_id = ? AND a.annotator = 'tia'",
                        [image_id],
                    )
                )
                assert rows["tia"]["lead_time"] == pytest.approx(lead)
        # loop status counts images (not tiles) and whole-image annotations
        from loop.reports.status import study_status

        shown = study_status(study).annotation
        assert shown.pop("regions") == {
            "tasks": {},
            "partial_labels": 0,
            "mean_known_fraction": None,
        }
        effort = shown.pop("effort")  # tile by tile: each tile task had its pre-annotation
        assert set(effort) == {"tess", "tia", "tom"}
        assert all(e["annotations"] == 19 and e["effort"] > 0 for e in effort.values())
        assert shown == {
            "images_pushed": 3,
            "tasks": {"done": 3},
            "tiles": 18,
            "annotations": {"tess": 3, "tia": 3, "tom": 3},
            "too_few_annotations": 0,  # stitched tiles are valid annotations
            "unmapped_tasks": 0,
            "malformed": {},
            "edited": {},
        }
        # agreement sees one annotation per annotator per image
        report = agree(study, write=False)
        assert len(report.tasks) == 3 and all(len(t.annotators) == 3 for t in report.tasks)
        assert all(0 < t.agreement <= 1 and t.consensus > 0 for t in report.tasks)
        # tia (noise-free) agrees with the others' consensus at least as well as tess (sloppy)
        assert all(t.per_annotator["tia"] >= t.per_annotator["tess"] for t in report.tasks)

        again = pull(study, tool, full=True)  # every task read again: nothing changes
        assert (again.new, again.updated, again.stitched, again.unchanged) == (0, 0, 0, 57)
        # tom redraws one tile: empty
        tom_tile = next(
            db.query(
                "SELECT a.* FROM annotations a JOIN tasks t ON t.id = a.task_id "
                "WHERE t.purpose = 'tile' AND a.annotator = 'tom' AND a.n_objects > 0"
            )
        )
        tom = connect_as(study, "tom", tool)
        tom._json(
            "PATCH",
            f"/api/annotations/{tom_tile['external_id']}",
            what="update",
            json={"result": []},
        )
        tom.close()
        changed = pull(study, tool)
        assert (changed.updated, changed.stitched) == (1, 1)
        parent = parents[tom_tile["image_id"]]
        stitched = next(
            db["annotations"].rows_where("task_id = ? AND annotator = 'tom'", [parent["id"]])
        )
        assert stitched["version"] == 2
        versions = db["annotation_versions"]
        old = next(versions.rows_where("task_id = ? AND annotator = 'tom'", [parent["id"]]))
        assert stitched["n_objects"] < old["n_objects"]
        tool.close()


def test_tiles_done_by_different_people_are_reported_then_finished(ls_study, tmp_path, monkeypatch):
    """With more annotators than the overlap, the queue may give an image's tiles to different
    people: every tile has its 2 annotations, yet only one person did the whole image. Pull
    says so and who can finish it; once gus annotates his missing tiles (from the task view,
    tasks that are already full), he gets his stitched annotation and the image is done."""
    from connectors.ls_results import mask_to_results
    from loop.core.tiles import Tiling, crop
    from loop.data.ingest import ingest

    data = tmp_path / "data"
    for folder in ("images", "masks"):
        (data / folder).mkdir(parents=True)
    name = next(p.stem for p in (DSB / "images").glob(f"{TILED[0]}*.png"))
    (data / "images" / f"{name}.png").write_bytes((DSB / "images" / f"{name}.png").read_bytes())
    (data / "masks" / f"{name}.tif").write_bytes((DSB / "masks" / f"{name}.tif").read_bytes())
    study_dir = tmp_path / "gaps"
    with init_study(study_dir) as study:
        ingest(study, data / "images", masks=data / "masks")
    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    with open_study(study_dir) as study:
        db = study.store.db
        tool = connect(study)
        push(study, tool, select_for_push(study, split="pool"), overlap=2, tiling=Tiling())
        tiles = list(db["tasks"].rows_where("purpose = 'tile'", order_by="id"))
        assert len(tiles) == 9
        add_annotators(study, tool, ["gia", "gus", "gil"])
        image = db["images"].get(tiles[0]["image_id"])
        truth = read_mask(study.store.truth(image["id"])["mask_path"])

        def annotate(who, some):
            client = connect_as(study, who, tool)
            for t in some:
                mask = crop(truth, tuple(json.loads(t["tile"])))
                client.annotate(t["external_id"], mask_to_results(mask), lead_time=10.0)
            client.close()

        annotate("gia", tiles)
        annotate("gus", tiles[:5])
        annotate("gil", tiles[5:])
        first = pull(study, tool)
        assert first.new == 18 and first.stitched == 1 and len(first.tile_gaps) == 1
        gap = first.tile_gaps[0]
        assert "every tile has its 2 annotations, but 1 annotator(s) did all 9 tiles" in gap
        assert "gia 9/9, gil 4/9, gus 5/9" in gap and "Ask gil or gus" in gap
        parent = next(db["tasks"].rows_where("purpose = 'annotate'"))
        assert db["tasks"].get(parent["id"])["status"] == "open"

        annotate("gus", tiles[5:])  # the tiles already have 2 annotations each
        second = pull(study, tool)
        assert (second.new, second.stitched, second.tile_gaps) == (4, 1, [])
        assert db["tasks"].get(parent["id"])["status"] == "done"
        whole = {
            a["annotator"]: a for a in db["annotations"].rows_where("task_id = ?", [parent["id"]])
        }
        assert set(whole) == {"gia", "gus"}  # gil's tiles are kept, not stitched
        got = read_mask(study.resolve(whole["gus"]["mask_path"]), truth.shape)
        assert len(np.unique(np.stack([truth.ravel(), got.ravel()]), axis=1).T) == len(
            np.unique(truth)
        )
        tool.close()
