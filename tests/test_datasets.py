"""The BBBC038 layout conversion (offline: a stage1_train-shaped folder made here), the image
registry against the shared copy, and the modality rule against its manifest."""

import json

import numpy as np
import pytest
from conftest import DSB, needs
from PIL import Image

from loop.core.images import read_mask
from loop.data.datasets import convert_stage1, fetch_bbbc038, modality_of, registry
from loop.data.synthetic import synthetic_nuclei
from loop.errors import DatasetError


def stage1_folder(root, n=2):
    """<id>/images/<id>.png (RGBA, as distributed) and one PNG per nucleus in <id>/masks/."""
    truths = {}
    for i in range(n):
        name = f"fake{i}"
        image, labels = synthetic_nuclei((40, 48), 4, radius=(4, 6), rng=i)
        grey = (image / image.max() * 60).astype(np.uint8)
        rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
        (root / name / "images").mkdir(parents=True)
        (root / name / "masks").mkdir()
        Image.fromarray(rgba).save(root / name / "images" / f"{name}.png")
        for label in range(1, labels.max() + 1):
            nucleus = ((labels == label) * 255).astype(np.uint8)
            Image.fromarray(nucleus).save(root / name / "masks" / f"n{label}.png")
        truths[name] = labels
    return truths


def test_convert_stage1_merges_nuclei_and_writes_a_manifest(tmp_path):
    truths = stage1_folder(tmp_path / "stage1")
    report = convert_stage1(tmp_path / "stage1", tmp_path / "out", archive_sha256="abc")
    assert report.images == 2 and report.verified == 0
    assert sorted(report.unknown) == ["fake0", "fake1"]  # not BBBC038 images
    manifest = {r["id"]: r for r in json.loads((tmp_path / "out" / "manifest.json").read_text())}
    for name, labels in truths.items():
        merged = read_mask(tmp_path / "out" / "masks" / f"{name}.tif", labels.shape)
        # the same objects (each nucleus file one label, in file order)
        assert len(np.unique(merged)) == len(np.unique(labels))
        assert np.array_equal(merged > 0, labels > 0)
        assert manifest[name]["modality"] == "fluorescence"
        assert manifest[name]["n_masks"] == labels.max() and manifest[name]["overlap_px"] == 0
    assert "abc" in (tmp_path / "out" / "SOURCE.md").read_text()


def test_convert_refuses_another_layout(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetError, match=r"holds no <id>/images/<id>.png"):
        convert_stage1(tmp_path / "flat", tmp_path / "out")


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch):
    import pooch

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setattr(pooch, "os_cache", lambda name: tmp_path / "cache")
    with pytest.raises(DatasetError, match="check the internet connection, or pass .* --data"):
        fetch_bbbc038(tmp_path / "dest")


def test_a_finished_download_is_not_repeated(tmp_path, monkeypatch):
    import pooch

    stage1_folder(tmp_path / "stage1", n=1)
    convert_stage1(tmp_path / "stage1", tmp_path / "dest")
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("downloaded again"))
    assert fetch_bbbc038(tmp_path / "dest").images == 1


@needs(DSB)
def test_registry_and_modality_match_the_shared_copy():
    known = registry()
    manifest = json.loads((DSB / "manifest.json").read_text())
    assert len(known) == len(manifest) == 664
    import hashlib

    for row in manifest[::16]:  # every 16th image: hashes and the modality rule
        path = DSB / "images" / f"{row['id']}.png"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == known[row["id"]]
        assert modality_of(np.asarray(Image.open(path))) == row["modality"]
