"""Agreement and consensus of boxes on hand-made annotations."""

import numpy as np
import pytest

from loop.annotate.agree_boxes import agree_boxes
from loop.annotate.consensus import TaskAgreement
from loop.store.boxes import write_boxes_file
from loop.study import init_study


@pytest.fixture
def study(tmp_path):
    (tmp_path / "d.toml").write_text(
        'task = "detection"\n[labels]\nobject = "rbc"\nothers = ["wbc"]\n'
    )
    with init_study(tmp_path / "s", config=tmp_path / "d.toml") as s:
        yield s


def test_pairs_per_annotator_and_consensus(study):
    drawn = {
        "ann": ([[0, 0, 10, 10], [20, 20, 40, 40]], ["rbc", "wbc"]),
        "bo": ([[1, 0, 10, 10], [20, 21, 40, 40]], ["rbc", "rbc"]),  # a class differs
        "cy": ([[0, 1, 10, 10], [50, 50, 60, 60]], ["rbc", "rbc"]),  # one missed, one false
    }
    rows = []
    for name, (boxes, names) in drawn.items():
        path, _ = write_boxes_file(study.path / "a", boxes, names)
        rows.append({"annotator": name, "mask_path": str(path)})
    item = TaskAgreement(1, 1, "img", 0, list(drawn))
    image = {"height": 64, "width": 64}
    fused = agree_boxes(study, item, image, rows, None, "majority")
    assert item.pairs["ann|bo"]["f1"] == 1.0
    assert item.pairs["ann|cy"]["f1"] == pytest.approx(0.5)
    assert item.pairs["ann|bo"]["kappa"] is not None
    assert item.agreement == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert set(item.per_class) == {"rbc", "wbc"}
    # the consensus: the boxes 2 of 3 drew, median corners, majority class
    assert fused.boxes.tolist() == [[0, 0, 10, 10], [20, 20.5, 40, 40]]
    assert fused.names == ("rbc", "rbc")  # a tie of classes goes to the first
    assert item.consensus == 2
    assert item.per_annotator["cy"] < item.per_annotator["ann"]
    # against bo and cy, who agree on one box only (2 of 2 needed): F1 2/3
    assert np.isclose(item.per_annotator["ann"], 2 / 3, atol=1e-3)
