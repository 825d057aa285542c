import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from conftest import DSB, needs
from PIL import Image

from loop.data.ingest import ingest
from loop.errors import DataRootNotFound, MetadataError, NothingIngested, TaskMismatch
from loop.faults import CRASH_EXIT_CODE
from loop.store.db import dump_tables
from loop.study import open_study


def test_ingest_images_masks_metadata(seg_study, nuclei_folder):
    report = ingest(
        seg_study,
        nuclei_folder / "images",
        masks=nuclei_folder / "masks",
        metadata=nuclei_folder / "meta.csv",
    )
    assert (report.added, report.updated, report.unchanged, report.with_truth) == (6, 0, 0, 6)
    assert report.skipped == [] and report.unmatched_rows == []
    rows = seg_study.store.images()
    assert [r["path"] for r in rows] == [f"img{i}.tif" for i in range(6)]
    assert {r["split"] for r in rows} == {"pool"}
    assert rows[0]["dtype"] == "uint16" and (rows[0]["height"], rows[0]["width"]) == (48, 64)
    assert [r["meta_instrument"] for r in rows] == ["scopeA", "scopeB"] * 3
    truth = seg_study.store.truth(rows[0]["id"])
    assert truth["kind"] == "mask" and truth["source"] == "truth" and truth["n_objects"] > 0


def test_second_ingest_adds_nothing(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    before = dump(seg_study.store.path)
    report = ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 6)
    assert dump(seg_study.store.path) == before


def test_changed_mask_and_metadata_are_versioned(seg_study, nuclei_folder):
    ingest(
        seg_study,
        nuclei_folder / "images",
        masks=nuclei_folder / "masks",
        metadata=nuclei_folder / "meta.csv",
    )
    mask = tifffile.imread(nuclei_folder / "masks" / "img2.tif")
    mask[mask == 1] = 0
    tifffile.imwrite(nuclei_folder / "masks" / "img2.tif", mask)
    (nuclei_folder / "meta.csv").write_text(
        (nuclei_folder / "meta.csv").read_text().replace("img4,scopeA", "img4,scopeC")
    )
    report = ingest(
        seg_study,
        nuclei_folder / "images",
        masks=nuclei_folder / "masks",
        metadata=nuclei_folder / "meta.csv",
    )
    assert (report.added, report.updated, report.unchanged) == (0, 2, 4)
    changes = list(seg_study.store.db["changes"].rows)
    assert sorted(c["field"] for c in changes) == ["mask", "metadata"]
    img2 = seg_study.store.image_by_path(str(nuclei_folder / "images"), "img2.tif")
    assert img2["version"] == 2
    assert seg_study.store.truth(img2["id"])["version"] == 2
    img4 = seg_study.store.image_by_path(str(nuclei_folder / "images"), "img4.tif")
    assert img4["meta_instrument"] == "scopeC" and img4["version"] == 2


def test_bad_files_are_skipped_with_reasons(seg_study, nuclei_folder, tmp_path):
    images, masks = nuclei_folder / "images", nuclei_folder / "masks"
    (images / "empty.png").write_bytes(b"")
    (images / "notes.tif").write_text("not an image")
    data = (images / "img0.tif").read_bytes()
    (images / "truncated.tif").write_bytes(data[: len(data) // 3])
    (images / "copy_of_img1.tif").write_bytes((images / "img1.tif").read_bytes())
    tifffile.imwrite(images / "wrongmask.tif", np.zeros((20, 20), np.uint16) + 5)
    tifffile.imwrite(masks / "wrongmask.tif", np.zeros((21, 20), np.uint16))
    tifffile.imwrite(images / "floatmask.tif", np.zeros((20, 20), np.uint16) + 6)
    tifffile.imwrite(masks / "floatmask.tif", np.full((20, 20), 0.5, np.float32))
    outside = tmp_path / "outside.tif"
    tifffile.imwrite(outside, np.ones((8, 8), np.uint16))
    os.symlink(outside, images / "link.tif")
    from test_images import _png_claiming, _tiff_claiming

    _png_claiming(images / "bomb.png", 100_000, 100_000)  # a header claiming 10^10 pixels
    _tiff_claiming(images / "bomb.tif", 100_000, 100_000)  # 9.3 GiB declared in 300 bytes

    report = ingest(seg_study, images, masks=masks)
    reasons = {os.path.basename(s.path): s.reason for s in report.skipped}
    assert reasons == {
        "empty.png": "empty",
        "notes.tif": "unreadable",
        "truncated.tif": "unreadable",
        "wrongmask.tif": "bad-mask",
        "floatmask.tif": "bad-mask",
        "link.tif": "outside-root",
        "bomb.png": "too-large",
        "bomb.tif": "too-large",
        # img1.tif sorts after copy_of_img1.tif, so the copy is ingested first
        "img1.tif": "duplicate",
    }
    assert report.added == 6
    messages = {os.path.basename(s.path): s.message for s in report.skipped}
    assert "differs from its image's" in messages["wrongmask.tif"]
    assert "same content" in messages["img1.tif"] and "copy_of_img1.tif" in messages["img1.tif"]
    assert "outside the data root" in messages["link.tif"]
    recorded = {
        os.path.basename(r["path"]): r["reason"] for r in seg_study.store.db["skipped"].rows
    }
    assert recorded == reasons

    # fixing a file and re-running clears its skip record
    (images / "empty.png").unlink()
    Image.fromarray(np.full((10, 10), 3, np.uint8)).save(images / "empty.png")
    report = ingest(seg_study, images, masks=masks)
    assert report.added == 1
    assert "empty.png" not in {
        os.path.basename(r["path"]) for r in seg_study.store.db["skipped"].rows
    }


def test_nothing_valid(seg_study, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"")
    with pytest.raises(NothingIngested, match="all 1 files under .* were skipped"):
        ingest(seg_study, tmp_path / "junk")
    (tmp_path / "none").mkdir()
    with pytest.raises(NothingIngested, match=r"no image files \(.tif"):
        ingest(seg_study, tmp_path / "none")


def test_bad_roots_and_task_mismatch(seg_study, cls_study, nuclei_folder, tmp_path):
    with pytest.raises(DataRootNotFound, match="is not a folder of images"):
        ingest(seg_study, tmp_path / "missing")
    with pytest.raises(DataRootNotFound, match="masks folder .* is not a folder"):
        ingest(seg_study, nuclei_folder / "images", masks=tmp_path / "nomasks")
    with pytest.raises(
        TaskMismatch, match="--masks is for segmentation, semantic or detection studies"
    ):
        ingest(cls_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    with pytest.raises(TaskMismatch, match="are for classification studies"):
        ingest(seg_study, nuclei_folder / "images", classes_from_folders=True)


def test_bad_metadata_table_is_an_error(seg_study, nuclei_folder):
    (nuclei_folder / "m.csv").write_text("batch\n1\n")
    with pytest.raises(MetadataError, match="none of the key columns"):
        ingest(seg_study, nuclei_folder / "images", metadata=nuclei_folder / "m.csv")


def test_sidecars_and_bad_sidecar(seg_study, nuclei_folder):
    (nuclei_folder / "images" / "img0.tif.json").write_text('{"condition": "drug"}')
    (nuclei_folder / "images" / "img1.json").write_text("{broken")
    report = ingest(seg_study, nuclei_folder / "images")
    assert [(os.path.basename(s.path), s.reason) for s in report.skipped] == [
        ("img1.tif", "bad-metadata")
    ]
    img0 = seg_study.store.image_by_path(str(nuclei_folder / "images"), "img0.tif")
    assert img0["meta_condition"] == "drug"


def test_classes_from_folders(cls_study, class_folder):
    (class_folder / "stray.png").write_bytes(
        (class_folder / "Monocyte" / "Mon_0.png").read_bytes()[:10]
    )
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(class_folder / "loose.png")
    report = ingest(cls_study, class_folder, classes_from_folders=True)
    assert report.added == 3 + 4 + 5 + 6
    assert {os.path.basename(s.path): s.reason for s in report.skipped} == {
        "loose.png": "no-class",
        "stray.png": "unreadable",
    }
    classes = [r["class"] for r in cls_study.store.db["labels"].rows_where("source = 'truth'")]
    assert classes.count("Neutrophil") == 6 and classes.count("Eosinophil") == 3


def test_classes_from_labels_table(cls_study, class_folder, tmp_path):
    (tmp_path / "labels.csv").write_text(
        "filename,category\nEos_0.png,EOSINOPHIL\nLym_1.png,LYMPHOCYTE\n"
    )
    report = ingest(cls_study, class_folder, labels=tmp_path / "labels.csv")
    assert report.with_truth == 2 and report.added == 18
    # a class that changes is recorded
    (tmp_path / "labels.csv").write_text(
        "filename,category\nEos_0.png,BASOPHIL\nLym_1.png,LYMPHOCYTE\n"
    )
    report = ingest(cls_study, class_folder, labels=tmp_path / "labels.csv")
    assert report.updated == 1
    change = next(iter(cls_study.store.db["changes"].rows))
    assert change["field"] == "class"
    assert json.loads(change["old"])["value"] == "EOSINOPHIL"


# --- crash safety ------------------------------------------------------------------------


def dump(db_path) -> dict:
    """Every table's rows, without ids and timestamps, for comparing two stores."""
    return dump_tables(db_path, leave_out=("id", "image_id"))


def cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "LOOP_CRASH_AT"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "loop.cli", *map(str, args)], env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("crash_at", ["ingest.image:3", "ingest.file:4"])
def test_killed_ingest_resumes_to_the_same_store(tmp_path, nuclei_folder, crash_at):
    args = [
        "ingest",
        nuclei_folder / "images",
        "--masks",
        nuclei_folder / "masks",
        "--metadata",
        nuclei_folder / "meta.csv",
    ]
    clean = cli(args[0], tmp_path / "clean", *args[1:])
    assert clean.returncode == 0, clean.stderr

    killed = cli(args[0], tmp_path / "killed", *args[1:], env_extra={"LOOP_CRASH_AT": crash_at})
    assert killed.returncode == CRASH_EXIT_CODE
    partial = dump(tmp_path / "killed" / "loop.db")
    # ingest.image:3 dies inside the 3rd file's transaction (2 whole files kept);
    # ingest.file:4 dies after the 4th file's commit (4 kept)
    assert len(partial["images"]) == (2 if crash_at == "ingest.image:3" else 4)
    # every image that made it has its truth: no half-written file
    assert len(partial["labels"]) == len(partial["images"])

    resumed = cli(args[0], tmp_path / "killed", *args[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert dump(tmp_path / "killed" / "loop.db") == dump(tmp_path / "clean" / "loop.db")


@needs(DSB)
def test_dsb_full_ingest_then_nothing(tmp_path):
    args = [
        "ingest",
        tmp_path / "dsb",
        DSB / "images",
        "--masks",
        DSB / "masks",
        "--metadata",
        DSB / "manifest.json",
        "--json",
    ]
    start = time.perf_counter()
    first = cli(*args)
    elapsed = time.perf_counter() - start
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["added"], summary["with_truth"], summary["skipped"]) == (664, 664, 0)
    print(f"ingest of 664 DSB images: {elapsed:.1f} s (target < 30 s; see make bench)")
    second = json.loads(cli(*args).stdout)
    assert (second["added"], second["updated"], second["unchanged"]) == (0, 0, 664)
    with open_study(tmp_path / "dsb") as study:
        assert study.store.count_by("meta_modality") == {
            "HE/IHC color": 107,
            "brightfield": 16,
            "fluorescence": 541,
        }


# --- metadata that once broke a study -----------------------------------------------------


def write_manifest(folder, rows) -> str:
    path = folder / "manifest.json"
    path.write_text(json.dumps(rows))
    return str(path)


def test_an_integer_past_64_bits_is_kept_as_text_and_a_rerun_adds_nothing(seg_study, nuclei_folder):
    big = 2**64 + 7
    rows = [{"id": f"img{i}", "serial": big if i == 0 else i, "gain": 1.5} for i in range(6)]
    manifest = write_manifest(nuclei_folder, rows)
    report = ingest(seg_study, nuclei_folder / "images", metadata=manifest)
    assert (report.added, report.skipped) == (6, [])
    image = seg_study.store.images()[0]
    assert image["meta_serial"] == str(big) and json.loads(image["metadata"])["serial"] == str(big)
    again = ingest(seg_study, nuclei_folder / "images", metadata=manifest)
    assert (again.unchanged, again.added, again.updated) == (6, 0, 0)


def test_a_table_of_thousands_of_keys_keeps_them_all_and_bricks_nothing(seg_study, nuclei_folder):
    from loop.store.db import MAX_META_COLUMNS

    rows = [{"id": f"img{i}", **{f"k{j}": j * i for j in range(1250)}} for i in range(6)]
    report = ingest(
        seg_study, nuclei_folder / "images", metadata=write_manifest(nuclei_folder, rows)
    )
    assert report.added == 6 and report.skipped == []
    assert len(seg_study.store.meta_columns()) == MAX_META_COLUMNS
    assert len(report.without_column) == 1250 - MAX_META_COLUMNS
    image = seg_study.store.images()[5]
    assert json.loads(image["metadata"])["k1249"] == 5 * 1249  # every key kept
    # later ingests go on working, and a changed value is recorded
    rows[5]["k0"] = "changed"
    rows[5].pop("k1")
    report = ingest(
        seg_study, nuclei_folder / "images", metadata=write_manifest(nuclei_folder, rows)
    )
    assert (report.updated, report.unchanged) == (1, 5)
    image = seg_study.store.images()[5]
    assert (image["meta_k0"], image["meta_k1"]) == ("changed", None)


def test_keys_that_would_share_a_column_are_refused_not_merged(seg_study, nuclei_folder):
    rows = [{"id": f"img{i}", "batch": i} for i in range(6)]
    rows[0]["Key With Spaces"], rows[0]["key_with_spaces"] = 1, 2
    rows[1]["Key With Spaces"] = 3
    rows[2]["KEY with spaces"] = 4  # in another row: a different key, the same column
    report = ingest(
        seg_study, nuclei_folder / "images", metadata=write_manifest(nuclei_folder, rows)
    )
    skipped = {s.path.rsplit("/", 1)[-1]: s for s in report.skipped}
    assert set(skipped) == {"img0.tif", "img2.tif"} and report.added == 4
    assert skipped["img0.tif"].reason == "bad-metadata"
    assert (
        "'Key With Spaces' and 'key_with_spaces' would share column" in skipped["img0.tif"].message
    )
    assert (
        "'KEY with spaces' would share column meta_key_with_spaces with key 'Key With Spaces'"
        in (skipped["img2.tif"].message)
    )
    assert seg_study.store.images()[0]["meta_key_with_spaces"] == 3


def test_keys_in_any_script_get_columns_of_their_own(seg_study, nuclei_folder):
    rows = [{"id": f"img{i}", "Température": 20 + i, "顕微鏡": "A", "Ω": i} for i in range(6)]
    ingest(seg_study, nuclei_folder / "images", metadata=write_manifest(nuclei_folder, rows))
    assert set(seg_study.store.meta_columns()) == {"température", "顕微鏡", "ω"}
    assert seg_study.store.images()[2]["meta_température"] == 22


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.text(min_size=0, max_size=12) | st.sampled_from(["id", "Batch", "batch", " batch ", "µm"])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.dictionaries(KEYS, JSON_VALUES, max_size=6), min_size=1, max_size=3))
def test_any_metadata_table_is_ingested_or_each_image_skipped_with_a_reason(tmp_path_factory, rows):
    """Whatever the table holds, an ingest either records the images (every value kept in
    images.metadata) or skips an image with a reason; never a traceback, and a second run
    changes nothing."""
    from loop.data.synthetic import synthetic_nuclei
    from loop.study import init_study

    tmp = tmp_path_factory.mktemp("meta")
    (tmp / "images").mkdir()
    table = []
    for i, row in enumerate(rows):
        image, _ = synthetic_nuclei((24, 24), 2, rng=i)
        tifffile.imwrite(tmp / "images" / f"im{i}.tif", image)
        table.append(
            {**{k: v for k, v in row.items() if k.strip().lower() != "id"}, "id": f"im{i}"}
        )
    (tmp / "manifest.json").write_text(json.dumps(table))
    with init_study(tmp / "study") as study:
        try:
            report = ingest(study, tmp / "images", metadata=tmp / "manifest.json")
        except (MetadataError, NothingIngested) as exc:
            assert str(exc)
            return
        assert report.added + len(report.skipped) == len(rows)
        assert all(s.reason == "bad-metadata" for s in report.skipped)
        for image in study.store.images():
            assert isinstance(json.loads(image["metadata"]), dict)
        again = ingest(study, tmp / "images", metadata=tmp / "manifest.json")
        assert again.added == again.updated == 0
