"""Box ground truth in the formats labs have: a folder of Pascal VOC XML files, a COCO JSON
file, or a CSV (``image, class, x1, y1, x2, y2``, or ``image, class, x, y`` for points: a
point is kept as a box of zero size).

Each reader returns a :class:`BoxTable`: per image file name, its boxes (``x1, y1, x2, y2``
in pixels, ``x2, y2`` exclusive) and class names; and per file or row that could not be read,
the reason. Nothing is checked against an image here (its size is not known yet): ingest
does that with :func:`check_boxes`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop.errors import LoopError


class BoxFileError(LoopError):
    """A box file that cannot be read at all (not a VOC folder, COCO JSON or CSV)."""


@dataclass
class BoxTable:
    """Boxes by image file name (its base name), and what could not be read."""

    boxes: dict[str, list[tuple[str, float, float, float, float]]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def add(self, image: str, name: str, x1, y1, x2, y2) -> None:
        self.boxes.setdefault(Path(image).name, []).append(
            (str(name), float(x1), float(y1), float(x2), float(y2))
        )

    def of(self, image_name: str) -> list[tuple[str, float, float, float, float]] | None:
        """The boxes of an image by its file name, or by its stem when the table names the
        image with another extension (VOC's ``<filename>`` often does); None when the table
        does not name it (an image named with no boxes has an empty list)."""
        name = Path(image_name).name
        if name in self.boxes:
            return self.boxes[name]
        stem = Path(name).stem
        found = [v for k, v in self.boxes.items() if Path(k).stem == stem]
        return found[0] if len(found) == 1 else None


def read_boxes(path: str | Path) -> BoxTable:
    """The boxes of a VOC folder (``*.xml``), a COCO file (``.json``) or a CSV (``.csv``).

    Raises
    ------
    BoxFileError
        For a path that is none of these, or a JSON or CSV file that is unreadable whole.
    """
    path = Path(path)
    if path.is_dir():
        return read_voc(path)
    if path.suffix.lower() == ".json":
        return read_coco(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return read_csv(path)
    raise BoxFileError(
        f"--boxes {path}: give a folder of Pascal VOC .xml files, a COCO .json file or a "
        ".csv file (columns image, class, x1, y1, x2, y2)"
    )


def read_voc(folder: Path) -> BoxTable:
    """Every ``*.xml`` of ``folder`` (recursively): ``<filename>`` names the image (the XML's
    stem when missing); each ``<object>`` gives ``<name>`` and ``<bndbox>``. VOC's corners are
    1-based and inclusive in the original data set but 0-based in most tools' output; they
    are read as written, ``xmax`` and ``ymax`` as exclusive ends."""
    from xml.etree import ElementTree

    table = BoxTable()
    files = sorted(folder.rglob("*.xml"))
    if not files:
        raise BoxFileError(f"--boxes {folder}: no .xml files (Pascal VOC annotations) there")
    for file in files:
        try:
            root = ElementTree.parse(file).getroot()
            image = (root.findtext("filename") or "").strip() or file.stem
            found = []
            for obj in root.iter("object"):
                box = obj.find("bndbox")
                if box is None:
                    raise ValueError("an <object> without <bndbox>")
                corners = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                found.append(((obj.findtext("name") or "").strip(), *corners))
        except (ElementTree.ParseError, ValueError, TypeError) as exc:
            table.problems[file.name] = f"unreadable VOC file: {exc}"
            continue
        table.boxes.setdefault(Path(image).name, [])
        for row in found:
            table.add(image, *row)
    return table


def read_coco(path: Path) -> BoxTable:
    """A COCO detection file: ``images`` (``id``, ``file_name``), ``categories`` (``id``,
    ``name``) and ``annotations`` (``image_id``, ``category_id``, ``bbox`` as x, y, width,
    height)."""
    try:
        data = json.loads(path.read_text())
        images = {int(i["id"]): str(i["file_name"]) for i in data["images"]}
        names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        annotations = list(data["annotations"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BoxFileError(
            f"--boxes {path}: not a COCO file ({type(exc).__name__}: {exc}); it needs "
            "images, categories and annotations"
        ) from None
    table = BoxTable()
    for name in images.values():
        table.boxes.setdefault(Path(name).name, [])
    for n, ann in enumerate(annotations):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            table.add(
                images[int(ann["image_id"])], names[int(ann["category_id"])], x, y, x + w, y + h
            )
        except (KeyError, ValueError, TypeError) as exc:
            table.problems[f"annotation {n}"] = f"unreadable COCO annotation: {exc!r}"
    return table


def read_csv(path: Path) -> BoxTable:
    """A CSV with a header naming ``image``, ``class``, ``x1``, ``y1``, ``x2``, ``y2`` (boxes)
    or ``image``, ``class``, ``x``, ``y`` (points)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BoxFileError(f"--boxes {path}: unreadable ({exc})") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    need = ("image", "class", "x1", "y1", "x2", "y2")
    fields = reader.fieldnames or ()
    if {"x", "y"} <= set(fields) and not {"x1", "y1"} & set(fields):
        need = ("image", "class", "x", "y", "x", "y")  # points: boxes of zero size
    missing = [c for c in dict.fromkeys(need) if c not in fields]
    if missing:
        raise BoxFileError(
            f"--boxes {path}: the header lacks {', '.join(missing)} (columns: image, class, "
            "x1, y1, x2, y2; or image, class, x, y for points)"
        )
    table = BoxTable()
    for line, row in enumerate(reader, start=2):
        try:
            corners = [float(row[c]) for c in need[2:]]
            table.add(row["image"], row["class"], *corners)
        except (TypeError, ValueError) as exc:
            table.problems[f"line {line}"] = f"unreadable CSV row: {exc}"
    return table


def check_boxes(
    boxes: list[tuple[str, float, float, float, float]],
    classes: tuple[str, ...],
    height: int,
    width: int,
    *,
    points: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An image's boxes as arrays, checked against its size and the study's classes; the
    unusable ones left out, each with its reason. With ``points`` every box becomes its
    centre (a box of zero size), and a point given as such is valid.

    A box is unusable when its class is not one of ``classes``, or it is empty, reversed, not
    finite or outside the image (beyond one pixel, which is clipped: tools round corners
    either way).

    Returns
    -------
    boxes : ndarray of shape (B, 4)
    classes : ndarray of shape (B,), indices into ``classes``
    skipped : list of str, one reason per box left out

    >>> check_boxes([("cell", 0, 0, 5, 5), ("cell", 3, 3, 3, 9)], ("cell",), 10, 10)[2]
    ['box [3, 3, 3, 9] is empty or reversed']
    """
    out, index, skipped = [], [], []
    for name, x1, y1, x2, y2 in boxes:
        corners = np.array([x1, y1, x2, y2], np.float64)
        shown = [int(v) if float(v).is_integer() else v for v in (x1, y1, x2, y2)]
        if name not in classes:
            skipped.append(f"class {name!r} is not one of [labels] classes ({', '.join(classes)})")
        elif not np.isfinite(corners).all() or x2 < x1 or y2 < y1:
            skipped.append(f"box {shown} is empty or reversed")
        elif not points and (x2 == x1 or y2 == y1):
            skipped.append(f"box {shown} is empty or reversed")
        elif x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:
            skipped.append(f"box {shown} lies outside the {width} x {height} image")
        else:
            corners = np.clip(corners, 0, [width, height, width, height])
            if points:
                corners = np.tile((corners[:2] + corners[2:]) / 2, 2)
            out.append(corners)
            index.append(classes.index(name))
    return np.asarray(out, np.float64).reshape(-1, 4), np.asarray(index, np.int64), skipped


def truth_file(study, rows, height: int, width: int) -> tuple[str, str, int, list[str]]:
    """Check an image's boxes (:func:`check_boxes`, points when ``[detection] shape`` says)
    and write them as the study's box file (:func:`loop.store.boxes.write_boxes_file`):
    (its path relative to the study, its sha256, the boxes kept, the reasons of those left
    out)."""
    from loop.store.boxes import BOXES_DIR, write_boxes_file
    from loop.tasks.detection import object_classes

    classes = object_classes(study.config.labels)
    point = study.config.detection.shape == "point"
    boxes, index, skipped = check_boxes(rows, classes, height, width, points=point)
    written, sha = write_boxes_file(study.path / BOXES_DIR, boxes, [classes[i] for i in index])
    return written.relative_to(study.path).as_posix(), sha, len(boxes), skipped
