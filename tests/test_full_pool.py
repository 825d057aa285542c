"""The full-pool reference refuses a pool without ground truth (its figures, per group
included, are checked through ``loop bench al`` in test_efficiency.py)."""

import pytest

from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.errors import RoundError
from loop.rounds.full_pool import full_pool


def test_a_pool_without_ground_truth_is_refused(seg_study, nuclei_folder, tmp_path):
    masks = tmp_path / "two-masks"  # ground truth for the two test images only
    masks.mkdir()
    for name in ("img0.tif", "img1.tif"):
        (masks / name).write_bytes((nuclei_folder / "masks" / name).read_bytes())
    ingest(seg_study, nuclei_folder / "images", masks=masks)
    split_study(seg_study, test=2, seed=0)
    with pytest.raises(RoundError, match="no pool image has a ground truth"):
        full_pool(seg_study, tmp_path / "full-pool", steps=4)
    # the study itself is untouched: the reference works in its own copy
    assert (tmp_path / "full-pool" / "loop.db").is_file()
    assert seg_study.store.count_by("split") == {"pool": 4, "test": 2}
