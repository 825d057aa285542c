"""Reading one file of an ingest (loop/data/ingest_read.py): all that belongs to an image,
checked, and nothing written to the study's database."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from loop.core.images import index_table, read_table
from loop.data.ingest_read import Reader
from loop.errors import BadMask, MissingClass, OutsideRoot
from loop.store.db import dump_tables


def test_an_image_is_read_with_its_mask_and_metadata_before_the_database(seg_study, nuclei_folder):
    root = (nuclei_folder / "images").resolve()
    table = index_table(read_table(nuclei_folder / "meta.csv"), nuclei_folder / "meta.csv")
    reader = Reader(
        seg_study, root, masks=(nuclei_folder / "masks").resolve(), metadata_index=table
    )
    before = dump_tables(seg_study.store.path)
    found = reader.read(root / "img3.tif", notes=[])
    assert (found.rel, found.kind, found.klass) == ("img3.tif", "mask", None)
    assert found.metadata == {"instrument": "scopeB", "batch": "1"}  # CSV: text
    mask = tifffile.imread(nuclei_folder / "masks" / "img3.tif")
    assert found.n_objects == len(np.unique(mask)) - 1 and found.mask_sha
    assert (found.info.height, found.info.width) == (48, 64)
    assert dump_tables(seg_study.store.path) == before  # reading writes nothing


def test_bad_files_are_refused_with_their_reason(seg_study, cls_study, nuclei_folder, tmp_path):
    root = (nuclei_folder / "images").resolve()
    outside = tmp_path / "elsewhere.tif"
    tifffile.imwrite(outside, np.zeros((8, 8), np.uint16))
    (root / "link.tif").symlink_to(outside)
    with pytest.raises(OutsideRoot, match="outside the data root"):
        Reader(seg_study, root).read(root / "link.tif", notes=[])
    masks = tmp_path / "masks"
    masks.mkdir()
    tifffile.imwrite(masks / "img0.tif", np.zeros((10, 10), np.uint16))
    with pytest.raises(BadMask, match="differs from its image's"):
        Reader(seg_study, root, masks=masks).read(root / "img0.tif", notes=[])
    with pytest.raises(MissingClass, match="is not inside a class folder"):
        Reader(cls_study, root, classes_from_folders=True).read(root / "img0.tif", notes=[])
