"""Box label files (detection): the boxes of one label as canonical JSON, beside the study's
label images.

A file holds ``{"format": "loop-boxes-1", "boxes": [[x1, y1, x2, y2], ...], "classes":
[name, ...]}`` (pixels, ``x2, y2`` exclusive; class names, not indices, so that a reordered
``[labels]`` reads it right). The same boxes give the same bytes (sorted keys, coordinates
rounded to 1/100 pixel), so a file's sha256 identifies a label as a label image's does; files
are written atomically under a name made of that digest, never changed in place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loop.core.files import atomic_path
from loop.errors import LoopError

FORMAT = "loop-boxes-1"
BOXES_DIR = Path("labels") / "boxes"
"""Where a study keeps its box files (relative to the study folder)."""


class BoxLabelError(LoopError):
    """A box label file that is missing or not one the loop wrote."""


def encode(boxes, classes: Sequence[str]) -> bytes:
    """The canonical bytes of a box label.

    >>> encode([[0, 0, 2.5, 3]], ["cell"])
    b'{"boxes":[[0.0,0.0,2.5,3.0]],"classes":["cell"],"format":"loop-boxes-1"}'
    """
    array = np.round(np.asarray(boxes, np.float64).reshape(-1, 4), 2)
    if len(classes) != len(array):
        raise ValueError(f"{len(array)} boxes but {len(classes)} classes")
    data = {"boxes": array.tolist(), "classes": [str(c) for c in classes], "format": FORMAT}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def write_boxes_file(folder: Path, boxes, classes: Sequence[str]) -> tuple[Path, str]:
    """Write a box label under ``folder`` as ``<sha256[:20]>.json`` (atomically; an existing
    file of that name already holds these bytes). Returns (path, sha256)."""
    data = encode(boxes, classes)
    digest = hashlib.sha256(data).hexdigest()
    path = Path(folder) / f"{digest[:20]}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path, digest


def read_boxes_file(path: Path, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of a file of :func:`write_boxes_file` and their class indices in
    ``classes``.

    Returns
    -------
    boxes : ndarray of shape (B, 4); classes : ndarray of shape (B,), int

    Raises
    ------
    BoxLabelError
        When the file is missing, unreadable, of another format, or names a class that is not
        in ``classes`` (the study's classes changed since the label was made).
    """
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        boxes = np.asarray(data["boxes"], np.float64).reshape(-1, 4)
        names = [str(c) for c in data["classes"]]
        if len(names) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(names)} classes")
    except FileNotFoundError:
        raise BoxLabelError(
            f"the box label {path} is missing: ingest the boxes again (`loop ingest --boxes`)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BoxLabelError(f"{path} is not a box label written by loop: {exc}") from None
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise BoxLabelError(
            f"{path} has boxes of class {', '.join(map(repr, unknown))}, which is not in "
            f"[labels] object/others ({', '.join(classes)}): add it back to loop.toml"
        )
    index = {name: i for i, name in enumerate(classes)}
    return boxes, np.array([index[n] for n in names], np.int64)
