"""Box label files: canonical bytes, named by digest, read back by class name; every bad
file one clear error."""

import numpy as np
import pytest

from loop.store.boxes import BoxLabelError, encode, read_boxes_file, write_boxes_file


def test_same_boxes_same_file(tmp_path):
    a, sha_a = write_boxes_file(tmp_path, [[1, 2, 3, 4.004]], ["cell"])
    b, sha_b = write_boxes_file(tmp_path, np.array([[1.0, 2.0, 3.0, 4.0]]), ("cell",))
    assert (a, sha_a) == (b, sha_b)
    c, sha_c = write_boxes_file(tmp_path, [[1, 2, 3, 5]], ["cell"])
    assert sha_c != sha_a and c != a
    assert len(list(tmp_path.iterdir())) == 2


def test_read_back_by_class_name(tmp_path):
    path, _ = write_boxes_file(tmp_path, [[0, 0, 5, 5], [1, 1, 9, 9]], ["wbc", "rbc"])
    boxes, classes = read_boxes_file(path, ("rbc", "wbc", "platelet"))
    assert boxes.tolist() == [[0, 0, 5, 5], [1, 1, 9, 9]]
    assert classes.tolist() == [1, 0]
    empty, _ = write_boxes_file(tmp_path, [], [])
    assert read_boxes_file(empty, ("rbc",))[0].shape == (0, 4)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="2 boxes but 1 classes"):
        encode([[0, 0, 1, 1], [0, 0, 2, 2]], ["a"])
    with pytest.raises(BoxLabelError, match="is missing"):
        read_boxes_file(tmp_path / "none.json", ("a",))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(BoxLabelError, match="not a box label written by loop"):
        read_boxes_file(bad, ("a",))
    bad.write_text("[1, 2")
    with pytest.raises(BoxLabelError, match="not a box label written by loop"):
        read_boxes_file(bad, ("a",))
    path, _ = write_boxes_file(tmp_path, [[0, 0, 1, 1]], ["gone"])
    with pytest.raises(BoxLabelError, match="class 'gone', which is not in"):
        read_boxes_file(path, ("a", "b"))
