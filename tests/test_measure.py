"""Per-object measurements: one label image (against numbers worked out by hand), a folder of
label images, and a folder segmented by a tiny trained model through the CLI."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import cli_seg_study
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from loop.cli import app
from loop.core.images import file_sha256, read_mask
from loop.core.objects import measure_objects
from loop.data.synthetic import synthetic_nuclei
from loop.errors import MeasureError, NoModel
from loop.learn.measure import measure_folder


@pytest.fixture
def two_objects():
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[2:6, 3:9] = 4  # 4 x 6 rectangle, inside
    labels[10:20, 25:30] = 7  # 10 x 5, on the bottom and right edges
    image = np.zeros((20, 30, 2), dtype=np.uint16)
    image[..., 0] = np.arange(30)[None, :]  # channel 0: the column index
    image[..., 1] = 100
    return labels, image


def test_shape_size_and_border(two_objects):
    labels, _ = two_objects
    rows = measure_objects(labels)
    assert [r["label"] for r in rows] == [4, 7]
    first, second = rows
    assert (first["area"], second["area"]) == (24, 50)
    assert (first["centroid_row"], first["centroid_col"]) == pytest.approx((3.5, 5.5))
    assert (first["bbox_min_row"], first["bbox_min_col"]) == (2, 3)
    assert (first["bbox_max_row"], first["bbox_max_col"]) == (6, 9)
    assert (first["touches_border"], second["touches_border"]) == (False, True)
    assert first["equivalent_diameter"] == pytest.approx(np.sqrt(4 * 24 / np.pi))
    assert first["major_axis_length"] > first["minor_axis_length"]
    assert first["solidity"] == pytest.approx(1.0)


def test_intensities_per_channel_and_micrometres(two_objects):
    labels, image = two_objects
    rows = measure_objects(labels, image, pixel_size=0.5)
    first = rows[0]
    # channel 0 is the column index: columns 3..8 -> mean 5.5, min 3, max 8, sum 4 * 33
    assert first["c0_intensity_mean"] == pytest.approx(5.5)
    assert (first["c0_intensity_min"], first["c0_intensity_max"]) == (3.0, 8.0)
    assert first["c0_intensity_integrated"] == pytest.approx(4 * sum(range(3, 9)))
    assert first["c1_intensity_mean"] == 100 and first["c1_intensity_integrated"] == 2400
    assert first["area_um2"] == pytest.approx(24 * 0.25)
    assert first["perimeter_um"] == pytest.approx(first["perimeter"] * 0.5)
    one = measure_objects(labels, image[..., 1])[1]
    assert one["intensity_mean"] == 100 and "c0_intensity_mean" not in one


def test_model_probability_is_the_mean_inside_each_object(two_objects):
    labels, _ = two_objects
    probability = np.zeros(labels.shape)
    probability[labels == 4] = 0.9
    probability[labels == 7] = 0.3
    rows = measure_objects(labels, probability=probability)
    assert [r["model_probability"] for r in rows] == pytest.approx([0.9, 0.3])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    channels=st.integers(0, 3),
    rows_a_band=st.integers(1, 45),
)
def test_per_object_stats_are_each_objects_own(seed, shape, channels, rows_a_band):
    """Against the obvious reference (each object's pixels picked by its mask): any labels,
    any subset of them asked for, any band height, one or more channels."""
    from loop.core import objects

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, shape) * rng.integers(0, 2, shape)  # holes of background
    image = rng.normal(0, 100, shape if channels == 0 else (*shape, channels))
    present = np.unique(labels)[1:]
    ids = np.sort(rng.choice(present, rng.integers(0, present.size + 1), replace=False))
    saved = objects.BAND_VALUES
    objects.BAND_VALUES = rows_a_band * shape[1]
    try:
        got = objects.per_object_stats(labels, image, ids)
    finally:
        objects.BAND_VALUES = saved
    pixels = image[..., None] if channels == 0 else image
    for k, stats in enumerate(got):
        for label, (mean, low, high, total) in zip(ids, stats, strict=True):
            values = pixels[..., k][labels == label]
            assert (low, high) == (values.min(), values.max())
            assert total == pytest.approx(values.sum()) and mean == pytest.approx(values.mean())


def test_bad_inputs_are_refused(two_objects):
    labels, image = two_objects
    assert measure_objects(np.zeros((5, 5), int)) == []
    with pytest.raises(MeasureError, match=r"the image has shape \(20, 29\) but the labels"):
        measure_objects(labels, image[:, :29])
    with pytest.raises(MeasureError, match=r"the probability has shape \(3, 3\)"):
        measure_objects(labels, probability=np.zeros((3, 3)))
    with pytest.raises(MeasureError, match="--pixel-size 0: give micrometres per pixel"):
        measure_objects(labels, pixel_size=0)


def _folder(tmp_path, n=3):
    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    (images / "plate1").mkdir(parents=True)
    masks.joinpath("plate1").mkdir(parents=True)
    for i in range(n):
        image, mask = synthetic_nuclei((64, 64), 3 + i, radius=(4, 7), rng=i)
        tifffile.imwrite(images / "plate1" / f"w{i}.tif", image)
        tifffile.imwrite(masks / "plate1" / f"w{i}.tif", mask.astype(np.uint16))
    return images, masks


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_folder_of_label_images(seg_study, tmp_path):
    images, masks = _folder(tmp_path)
    (images / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    tifffile.imwrite(images / "no-mask.tif", np.zeros((8, 8), np.uint8))
    report = measure_folder(seg_study, images, tmp_path / "out", masks=masks, pixel_size=0.65)
    objects = _csv(tmp_path / "out" / "objects.csv")
    per_image = {r["file"]: r for r in _csv(tmp_path / "out" / "images.csv")}
    expected = {
        f"plate1/w{i}.tif": int(read_mask(masks / "plate1" / f"w{i}.tif").max()) for i in range(3)
    }
    assert report.n_images == 3 and report.n_objects == sum(expected.values())
    assert len(objects) == report.n_objects and report.model_id is None
    for name, n in expected.items():
        assert int(per_image[name]["n_objects"]) == n
        assert sum(r["file"] == name for r in objects) == n
        assert per_image[name]["sha256"] == file_sha256(images / name)
    # bad files are listed with their reason, never fatal
    assert {f for f, _ in report.errors} == {"broken.tif", "no-mask.tif"}
    assert "no label image" in per_image["no-mask.tif"]["error"]
    assert per_image["broken.tif"]["error"] and not per_image["broken.tif"]["n_objects"]
    assert float(objects[0]["area_um2"]) == pytest.approx(float(objects[0]["area"]) * 0.65**2)
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["model"] is None and provenance["pixel_size_um"] == 0.65
    assert provenance["software"]["scikit-image"] and provenance["n_objects"] == len(objects)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_grey_and_colour_images_keep_all_their_columns(seg_study, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    grey, mask = synthetic_nuclei((48, 48), 3, radius=(4, 6), rng=0)
    tifffile.imwrite(images / "a_grey.tif", grey)
    tifffile.imwrite(images / "b_rgb.tif", np.stack([grey, grey // 2, grey // 4], axis=-1))
    for name in ("a_grey", "b_rgb"):
        tifffile.imwrite(masks / f"{name}.tif", mask.astype(np.uint16))
    measure_folder(seg_study, images, tmp_path / "out", masks=masks)
    objects = _csv(tmp_path / "out" / "objects.csv")
    grey_rows = [r for r in objects if r["file"] == "a_grey.tif"]
    rgb_rows = [r for r in objects if r["file"] == "b_rgb.tif"]
    assert len(grey_rows) == len(rgb_rows) == int(mask.max())
    assert all(r["intensity_mean"] and not r["c0_intensity_mean"] for r in grey_rows)
    assert all(r["c2_intensity_mean"] and not r["intensity_mean"] for r in rgb_rows)
    assert float(rgb_rows[0]["c0_intensity_mean"]) == pytest.approx(
        float(grey_rows[0]["intensity_mean"])
    )
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_folder_errors(seg_study, cls_study, tmp_path):
    images, masks = _folder(tmp_path, n=1)
    with pytest.raises(MeasureError, match="is inside"):
        measure_folder(seg_study, images, images / "results", masks=masks)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasureError, match="no image in"):
        measure_folder(seg_study, tmp_path / "empty", tmp_path / "out", masks=masks)
    with pytest.raises(MeasureError, match="is not a folder of images"):
        measure_folder(seg_study, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(MeasureError, match="this study's model gives classes, not outlines"):
        measure_folder(cls_study, images, tmp_path / "out")
    (tmp_path / "d.toml").write_text('task = "detection"\n')
    from loop.study import init_study

    with init_study(tmp_path / "det", config=tmp_path / "d.toml") as det_study:
        with pytest.raises(MeasureError, match="boxes \\(detections.csv\\) and counts"):
            measure_folder(det_study, images, tmp_path / "out")
    with pytest.raises(MeasureError, match="--pixel-size -1.0"):
        measure_folder(seg_study, images, tmp_path / "out", masks=masks, pixel_size=-1.0)
    with pytest.raises(NoModel, match="run `loop train` first"):
        measure_folder(seg_study, images, tmp_path / "out")


@pytest.mark.slow
def test_cli_measures_a_folder_with_the_trained_model(tmp_path, nuclei_folder):
    runner = CliRunner()
    study = cli_seg_study(tmp_path / "s", nuclei_folder)
    assert runner.invoke(app, ["train", str(study)]).exit_code == 0
    out = tmp_path / "measured"
    result = runner.invoke(
        app, ["measure", str(study), str(nuclei_folder / "images"), "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout holds the JSON alone
    per_image = _csv(out / "images.csv")
    assert summary["images"] == len(per_image) == len(list((nuclei_folder / "images").iterdir()))
    objects = _csv(out / "objects.csv")
    assert summary["objects"] == len(objects) == sum(int(r["n_objects"]) for r in per_image)
    for r in per_image:  # the label image written is the one measured
        assert read_mask(out / r["labels"]).max() == int(r["n_objects"])
    provenance = json.loads((out / "provenance.json").read_text())
    model = provenance["model"]
    assert model["id"] == summary["model_id"] and all(
        r["model_id"] == str(model["id"]) for r in objects
    )
    assert model["sha256"] == file_sha256(study / model["path"])
    assert model["trained_with"]["cellpose"].startswith("3.") and model["train_image_ids"]
    from loop.models.cellpose_seg import device_of

    assert provenance["software"]["torch"] and provenance["device"] == str(device_of(None))
    if objects:
        assert 0 <= float(objects[0]["model_probability"]) <= 1
    # --profile: where the time went, per stage, on stderr and in the JSON
    again = runner.invoke(
        app,
        ["measure", str(study), str(nuclei_folder / "images"), "-o", str(out), "--json"]
        + ["--profile"],
    )
    assert again.exit_code == 0, again.stderr
    profile = json.loads(again.stdout)["profile"]
    workers, driver = profile["workers"], profile["driver"]
    assert profile["images"] == len(per_image) and profile["engine"] == {"kind": "process"}
    assert {"read", "normalise", "network", "dynamics", "measure", "write"} <= set(workers)
    assert set(driver) == {"start", "wait", "journal", "tables"}
    # in this process, waiting for a result is doing the work: it holds every worker stage
    assert sum(workers.values()) <= driver["wait"] <= profile["seconds"]
    assert "workers (summed over them):" in again.stderr and "network" in again.stderr
    # a bad pixel size is a clean error
    bad = runner.invoke(
        app,
        ["measure", str(study), str(nuclei_folder / "images"), "-o", str(out), "--pixel-size", "0"],
    )
    assert bad.exit_code == 1 and "--pixel-size 0.0: give micrometres per pixel" in bad.stderr


def test_images_sharing_passes_are_measured_as_each_alone(tmp_path, nuclei_folder, passes):
    """``model.images_per_pass = 4`` (the GPU's way, here on the CPU): the images of a list
    go through the network together, yet the tables are those of one image a pass (the
    probabilities to float rounding); a corrupt file among them is a skipped row, an image
    too large for one pass (``whole_up_to = 0``: 224 px) is segmented alone, in tiles, and
    the profile still holds every stage."""
    import shutil

    from loop.study import open_study

    study_path = cli_seg_study(tmp_path / "s", nuclei_folder)
    trained = CliRunner().invoke(app, ["train", str(study_path), "--steps", "150"])
    assert trained.exit_code == 0, trained.output
    folder = tmp_path / "images"
    shutil.copytree(nuclei_folder / "images", folder)
    (folder / "img2b.tif").write_bytes(b"not a TIFF")
    large, _ = synthetic_nuclei((240, 240), 30, rng=9)
    tifffile.imwrite(folder / "img9.tif", large)
    with open_study(study_path) as study:
        tiles = replace(study.config.model, whole_up_to=0)
        study.config = replace(study.config, model=tiles)
        measure_folder(study, folder, tmp_path / "alone")
        study.config = replace(study.config, model=replace(tiles, images_per_pass=4))
        passes.clear()
        shared = measure_folder(study, folder, tmp_path / "shared")
    # the large image as it is read (tiles of 224 px), then the six small ones, four a pass
    assert passes == [(1, 240, 240), (4, 48, 64), (2, 48, 64)]
    assert [f for f, _ in shared.errors] == ["img2b.tif"] and shared.n_objects > 0
    assert _csv(tmp_path / "shared" / "images.csv") == _csv(tmp_path / "alone" / "images.csv")
    rows, expected = (
        _csv(tmp_path / "shared" / "objects.csv"),
        _csv(tmp_path / "alone" / "objects.csv"),
    )
    assert len(rows) == len(expected) == shared.n_objects
    for got, want in zip(rows, expected):
        p, q = float(got.pop("model_probability")), float(want.pop("model_probability"))
        assert got == want and np.isclose(p, q, atol=1e-4)
    assert {"read", "normalise", "network", "dynamics", "measure", "write"} <= set(
        shared.profile["workers"]
    )


@pytest.mark.slow
def test_on_a_dask_cluster_the_tables_are_the_same(tmp_path, nuclei_folder):
    """`loop measure --workers 2` (a LocalCluster) and `--scheduler` (a `dask scheduler` and a
    `dask worker` started here, on 127.0.0.1) write the same tables and label images as one
    process, and provenance.json says where the work ran."""
    import filecmp
    import subprocess
    import sys
    import time

    from connectors.labelstudio_server import free_port

    runner = CliRunner()
    study = cli_seg_study(tmp_path / "s", nuclei_folder)
    trained = runner.invoke(app, ["train", str(study), "--steps", "150"])
    assert trained.exit_code == 0, trained.output

    def measure(name, *extra):
        out = tmp_path / name
        args = ["measure", str(study), str(nuclei_folder / "images"), "-o", str(out), "--json"]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.stderr
        return out, json.loads(result.stdout)

    one, summary = measure("one")
    assert summary["objects"] > 0  # the model finds nuclei: there is something to compare
    port = free_port()
    bin_dir = Path(sys.executable).parent
    scheduler = subprocess.Popen(
        [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port)]
        + ["--no-dashboard"],
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [bin_dir / "dask", "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1"]
        + ["--host", "127.0.0.1", "--no-dashboard"],
        stderr=subprocess.DEVNULL,
    )
    try:
        two, profiled = measure("two", "--workers", "2", "--profile")
        time.sleep(1)
        remote, _ = measure("remote", "--scheduler", f"tcp://127.0.0.1:{port}")
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)
    for other, engine in ((two, "dask-local"), (remote, "dask")):
        assert _csv(other / "images.csv") == _csv(one / "images.csv"), engine
        rows, expected = _csv(other / "objects.csv"), _csv(one / "objects.csv")
        assert len(rows) == len(expected)
        for got, want in zip(rows, expected):
            # the network's probabilities are float sums whose order follows torch's threads
            # (1 per worker here, 2 in one process): equal to ~1e-8, the masks exactly
            p, q = float(got.pop("model_probability")), float(want.pop("model_probability"))
            assert got == want and np.isclose(p, q, rtol=1e-6, atol=0), engine
        for r in _csv(one / "images.csv"):
            assert filecmp.cmp(one / r["labels"], other / r["labels"], shallow=False)
        assert json.loads((other / "provenance.json").read_text())["engine"]["kind"] == engine
    assert json.loads((one / "provenance.json").read_text())["engine"] == {"kind": "process"}
    # the workers' stages travel back with their rows: the driver adds them up
    profile = profiled["profile"]
    assert profile["engine"] == {"kind": "dask-local", "workers": 2}
    assert {"read", "network", "dynamics", "measure", "model load"} <= set(profile["workers"])


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_is_redone_without_duplicate_rows(
    seg_study, tmp_path, nuclei_folder, monkeypatch
):
    """Chunks of 3 images on 2 workers: the first worker to finish the second image of a
    chunk dies (``kill -9``-like, after that image's work); the chunk is run again elsewhere,
    and the tables are those of one process, every row once."""
    from loop.learn.engine import Engine

    images, masks = nuclei_folder / "images", nuclei_folder / "masks"
    measure_folder(seg_study, images, tmp_path / "one", masks=masks)
    marker = tmp_path / "a-worker-died"
    monkeypatch.setenv("LOOP_CRASH_AT", "measure.worker:2")  # the workers inherit it
    monkeypatch.setenv("LOOP_CRASH_ONCE", str(marker))
    engine = Engine(workers=2, chunk=3, in_flight=1)  # one chunk at a time: no bystander
    report = measure_folder(seg_study, images, tmp_path / "two", masks=masks, engine=engine)
    assert marker.exists()  # a worker did die mid-chunk
    assert not report.errors and report.n_images == 6
    assert _csv(tmp_path / "two" / "images.csv") == _csv(tmp_path / "one" / "images.csv")
    rows = _csv(tmp_path / "two" / "objects.csv")
    assert rows == _csv(tmp_path / "one" / "objects.csv") and rows
    assert len({(r["file"], r["label"]) for r in rows}) == len(rows)


@pytest.mark.slow
def test_a_large_image_is_segmented_in_tiles_and_stitched(tmp_path, nuclei_folder):
    """With ``model.predict_tile = 64`` above 96 px, a 200 x 240 image goes as 5 x 6 tiles
    sharing 24 px; the stitched objects are the whole image's (object F1 at IoU 0.5 >= 0.9),
    none cut in two at a seam, and the measurements follow."""
    from loop.core.agreement import object_f1
    from loop.learn.predict import predict_one
    from loop.learn.registry import load_model
    from loop.study import open_study

    runner = CliRunner()
    study = cli_seg_study(tmp_path / "s", nuclei_folder)
    assert runner.invoke(app, ["train", str(study), "--steps", "150"]).exit_code == 0
    big = tmp_path / "big"
    big.mkdir()
    image, _truth = synthetic_nuclei((200, 240), 40, radius=(4, 7), rng=7)
    tifffile.imwrite(big / "plate.tif", image, tile=(64, 64))  # read tile by tile (lazily)
    store = zarr.open_group(str(big / "plate.ome.zarr"), mode="w")  # the same, as OME-Zarr
    store.create_array("0", shape=image.shape, chunks=(64, 64), dtype=image.dtype)[:] = image
    store.attrs["multiscales"] = [{"axes": ["y", "x"], "datasets": [{"path": "0"}]}]
    with open_study(study) as s:
        row = s.store.db["models"].get(1)
        model = load_model(s, row)
        whole = predict_one("cellpose", model, image, s.config.model)
        tiled_config = replace(
            s.config.model, predict_tile=64, predict_tile_above=96, predict_tile_overlap=24
        )
        tiled = predict_one("cellpose", model, image, tiled_config)
    assert tiled.measures["tiles"] == 30 and "tiles" not in whole.measures
    assert whole.masks.max() > 10
    assert object_f1(whole.masks, tiled.masks)["f1_50"] >= 0.9
    toml = study / "loop.toml"
    toml.write_text(
        toml.read_text() + "predict_tile = 64\npredict_tile_above = 96\npredict_tile_overlap = 24\n"
    )
    out = tmp_path / "m"
    result = runner.invoke(app, ["measure", str(study), str(big), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    zarr_row, tiff_row = _csv(out / "images.csv")
    assert int(tiff_row["n_objects"]) == int(zarr_row["n_objects"]) == tiled.masks.max()
    assert (zarr_row["height"], zarr_row["width"]) == ("200", "240")
    assert zarr_row["labels"] == "labels/plate.ome.tif"
    rows = _csv(out / "objects.csv")
    by_file = [
        [{k: v for k, v in r.items() if k != "file"} for r in rows if r["file"] == f]
        for f in ("plate.ome.zarr", "plate.tif")
    ]
    assert by_file[0] == by_file[1]


def test_provenance_says_where_the_work_ran():
    from loop.learn.engine import Engine
    from loop.learn.measure import _engine_provenance

    assert _engine_provenance(Engine()) == {"kind": "process"}
    assert _engine_provenance(Engine(workers=1, cluster=True))["kind"] == "dask-local"
    assert _engine_provenance(Engine(workers=3)) == {"kind": "dask-local", "workers": 3}
    remote = Engine(scheduler="tcp://head:8786")
    assert _engine_provenance(remote) == {"kind": "dask", "scheduler": "tcp://head:8786"}


def test_a_killed_measure_goes_on_where_it_stopped(tmp_path):
    """Killed (``kill -9``-like) after 3 of 6 images, the same command again measures only
    the other 3 and writes the tables a run that never stopped writes; other settings start
    afresh."""
    import os
    import subprocess
    import sys

    from loop.faults import CRASH_EXIT_CODE
    from loop.learn.measure_journal import JOURNAL
    from loop.study import init_study, open_study

    init_study(tmp_path / "study", task="segmentation").close()
    images, masks = _folder(tmp_path, n=6)
    (images / "broken.tif").write_bytes(b"II*\x00 not really a tiff")  # a skipped row, kept
    args = [str(tmp_path / "study"), str(images), "--masks", str(masks), "--pixel-size", "0.5"]
    killed = subprocess.run(
        [sys.executable, "-m", "loop.cli", "measure", *args, "-o", str(tmp_path / "out")],
        env={**os.environ, "LOOP_CRASH_AT": "measure.image:3"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    assert not (tmp_path / "out" / "objects.csv").exists()
    with open(tmp_path / "out" / JOURNAL / "images.jsonl", "ab") as handle:
        handle.write(b'{"key": "cut short by the ki')  # a line the kill interrupted
    with open_study(tmp_path / "study") as study:
        resumed = measure_folder(study, images, tmp_path / "out", masks=masks, pixel_size=0.5)
        tables = {n: (tmp_path / "out" / n).read_bytes() for n in ("objects.csv", "images.csv")}
        fresh = measure_folder(study, images, tmp_path / "fresh", masks=masks, pixel_size=0.5)
        other = measure_folder(study, images, tmp_path / "out", masks=masks, pixel_size=0.25)
    assert (resumed.reused, fresh.reused, other.reused) == (3, 0, 0)
    assert resumed.n_objects == fresh.n_objects > 0 and len(resumed.errors) == 1
    for name, content in tables.items():  # the same bytes as a run that never stopped
        assert content == (tmp_path / "fresh" / name).read_bytes()
    assert not (tmp_path / "out" / JOURNAL).exists() and not (tmp_path / "fresh" / JOURNAL).exists()
    assert float(_csv(tmp_path / "out" / "objects.csv")[0]["area_um2"]) == pytest.approx(
        float(_csv(tmp_path / "out" / "objects.csv")[0]["area"]) * 0.25**2
    )


def test_huge_headers_are_skipped_and_missing_chunks_said_while_the_run_goes_on(
    seg_study, tmp_path
):
    import zarr
    from test_images import _tiff_claiming

    images, masks = _folder(tmp_path)
    _tiff_claiming(images / "bomb.tif", 100_000, 100_000)
    zarr.create_array(
        str(images / "huge.zarr"), shape=(10**6, 10**6), chunks=(4096, 4096), dtype="u1"
    )
    good = tifffile.imread(images / "plate1" / "w0.tif")
    cut = zarr.create_array(
        str(images / "cut.zarr"), shape=good.shape, chunks=(16, 16), dtype=good.dtype
    )
    cut[:] = good
    next(
        p for p in (images / "cut.zarr").rglob("*") if p.is_file() and "c" in p.parts[-3:]
    ).unlink()
    tifffile.imwrite(masks / "cut.tif", read_mask(masks / "plate1" / "w0.tif"))
    report = measure_folder(seg_study, images, tmp_path / "out", masks=masks)
    per_image = {r["file"]: r for r in _csv(tmp_path / "out" / "images.csv")}
    assert report.n_images == 4  # the three plates and the cut store
    assert {f for f, _ in report.errors} == {"bomb.tif", "huge.zarr"}
    assert "100,000 x 100,000 pixels" in per_image["bomb.tif"]["error"]
    assert "1,000,000 x 1,000,000 pixels" in per_image["huge.zarr"]["error"]
    assert [f for f, _ in report.warnings] == ["cut.zarr"]
    assert per_image["cut.zarr"]["warning"].startswith("1 of ")
    assert per_image["cut.zarr"]["n_objects"]
