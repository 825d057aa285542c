"""Box ground truth files: VOC folders, COCO JSON, CSV; bad files and boxes skipped with a
reason."""

import json

import numpy as np
import pytest

from loop.data.box_files import BoxFileError, check_boxes, read_boxes

VOC = """<annotation><filename>{name}</filename><size><width>64</width><height>48</height>
</size>{objects}</annotation>"""
OBJECT = (
    "<object><name>{c}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
    "<ymax>{y2}</ymax></bndbox></object>"
)


def test_voc_folder(tmp_path):
    objs = OBJECT.format(c="WBC", x1=1, y1=2, x2=30, y2=40) + OBJECT.format(
        c="RBC", x1=5, y1=5, x2=9, y2=9
    )
    (tmp_path / "a.xml").write_text(VOC.format(name="a.jpg", objects=objs))
    (tmp_path / "b.xml").write_text(VOC.format(name="b.jpg", objects=""))
    (tmp_path / "c.xml").write_text("<annotation><object>")  # truncated
    (tmp_path / "d.xml").write_text(
        VOC.format(name="d.jpg", objects="<object><name>x</name></object>")
    )
    table = read_boxes(tmp_path)
    assert table.of("a.jpg") == [("WBC", 1, 2, 30, 40), ("RBC", 5, 5, 9, 9)]
    assert table.of("sub/a.png") == table.of("a.jpg")  # by stem when the extension differs
    assert table.of("b.jpg") == []  # named, nothing in it
    assert table.of("z.jpg") is None
    assert set(table.problems) == {"c.xml", "d.xml"}
    assert "bndbox" in table.problems["d.xml"]


def test_voc_folder_without_xml(tmp_path):
    with pytest.raises(BoxFileError, match="no .xml files"):
        read_boxes(tmp_path)


def test_coco_file(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "x/a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 7, "name": "cell"}],
        "annotations": [
            {"image_id": 1, "category_id": 7, "bbox": [10, 20, 5, 6]},
            {"image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1]},
            {"image_id": 2, "category_id": 7, "bbox": "oops"},
        ],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    table = read_boxes(path)
    assert table.of("a.png") == [("cell", 10, 20, 15, 26)]
    assert table.of("b.png") == []
    assert set(table.problems) == {"annotation 1", "annotation 2"}


def test_coco_file_unreadable(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"images": []}')
    with pytest.raises(BoxFileError, match="not a COCO file"):
        read_boxes(path)


def test_csv_file(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("image,class,x1,y1,x2,y2\na.tif,cell,1,2,3,4\na.tif,cell,x,2,3,4\n")
    table = read_boxes(path)
    assert table.of("a.tif") == [("cell", 1, 2, 3, 4)]
    assert list(table.problems) == ["line 3"]


def test_csv_without_the_columns(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("image,label,left,top\n")
    with pytest.raises(BoxFileError, match="lacks class, x1, y1, x2, y2"):
        read_boxes(path)


def test_csv_of_points(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,class,x,y\na.tif,cell,3,4\n")
    assert read_boxes(path).of("a.tif") == [("cell", 3, 4, 3, 4)]


def test_other_paths_refused(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("")
    with pytest.raises(BoxFileError, match="VOC .xml files, a COCO .json file or a .csv"):
        read_boxes(path)


def test_check_boxes_skips_bad_boxes_with_reasons():
    rows = [
        ("cell", 0, 0, 10, 10),
        ("cell", -0.5, 0, 64.5, 48),  # within a pixel: clipped
        ("dust", 0, 0, 5, 5),
        ("cell", 5, 5, 5, 9),
        ("cell", 60, 40, 80, 50),
        ("cell", float("nan"), 0, 3, 3),
    ]
    boxes, classes, skipped = check_boxes(rows, ("background", "cell"), 48, 64)
    assert boxes.tolist() == [[0, 0, 10, 10], [0, 0, 64, 48]]
    assert classes.tolist() == [1, 1]
    assert len(skipped) == 4
    assert "'dust' is not one of" in skipped[0]
    assert "outside the 64 x 48 image" in skipped[2]
    assert check_boxes([], ("cell",), 5, 5)[0].shape == (0, 4)
    # points: a box becomes its centre, a point is valid, a reversed one is not
    rows = [("cell", 0, 0, 10, 4), ("cell", 3, 3, 3, 3), ("cell", 5, 5, 4, 4)]
    points, _, skipped = check_boxes(rows, ("cell",), 48, 64, points=True)
    assert points.tolist() == [[5, 2, 5, 2], [3, 3, 3, 3]] and len(skipped) == 1
    assert np.asarray(check_boxes([], ("cell",), 5, 5)[1]).dtype == np.int64
