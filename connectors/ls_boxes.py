"""Boxes in Label Studio (detection): ``rectanglelabels`` results to and from pixel boxes, and
``keypointlabels`` (points, kept as boxes of zero size).

Label Studio stores a rectangle as its top-left corner, width and height in percent of the
image (``x``, ``y``, ``width``, ``height``, 0..100) with ``original_width`` and
``original_height`` in pixels; a rotated rectangle (``rotation``) is refused, as its box is
not axis-aligned. Pure functions, no server.
"""

from __future__ import annotations

import math

import numpy as np

from loop.errors import MalformedAnnotation

BOX_TAG = "boxes"
IMAGE_TAG = "image"


def boxes_to_results(
    boxes, names, shape: tuple[int, int], *, prefix: str = "box", scores=None, points=False
) -> list[dict]:
    """Boxes as Label Studio results, one ``rectanglelabels`` region each.

    Parameters
    ----------
    boxes : array_like of shape (B, 4)
        ``x1, y1, x2, y2`` in pixels.
    names : sequence of str
        Each box's label (class name; ``<class>?`` for a doubtful one).
    shape : (height, width) of the image
    scores : array_like of shape (B,), optional
        The model's score of each box (shown in Label Studio's region list).
    points : bool
        Write each box's centre as a ``keypointlabels`` region (a project of points).
    """
    height, width = shape
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = []
    for i, (box, name) in enumerate(zip(boxes, names, strict=True)):
        x1, y1, x2, y2 = (float(v) for v in box)
        if points:
            kind = "keypointlabels"
            value = {
                "x": 100.0 * ((x1 + x2) / 2) / width,
                "y": 100.0 * ((y1 + y2) / 2) / height,
                "width": 0.6,  # the dot's size on screen, in percent of the image width
            }
        else:
            kind = "rectanglelabels"
            value = {
                "x": 100.0 * x1 / width,
                "y": 100.0 * y1 / height,
                "width": 100.0 * (x2 - x1) / width,
                "height": 100.0 * (y2 - y1) / height,
                "rotation": 0,
            }
        result = {
            "id": f"{prefix}{i + 1}",
            "from_name": BOX_TAG,
            "to_name": IMAGE_TAG,
            "type": kind,
            "origin": "manual",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {**value, kind: [str(name)]},
        }
        if scores is not None:
            result["score"] = round(float(scores[i]), 4)
        out.append(result)
    return out


def results_to_boxes(results: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Label Studio results back to pixel boxes and each box's label; results that are not
    regions (text, choices, relations) are ignored.

    Returns
    -------
    boxes : ndarray of shape (B, 4); names : list of str

    Raises
    ------
    MalformedAnnotation
        When a rectangle lacks its coordinates or label, is rotated, was drawn on an image of
        another size, or a region was drawn with another tool (brush, polygon, ...).
    """
    if not isinstance(results, list):
        raise MalformedAnnotation(f"annotation result must be a list, got {type(results).__name__}")
    height, width = shape
    boxes, names = [], []
    for item in results:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", ""))
        if kind == "keypointlabels":
            boxes.append(_read_point(item, shape))
            names.append(str(((item.get("value") or {}).get("keypointlabels") or [""])[0]))
            continue
        if kind != "rectanglelabels":
            lowered = kind.lower()
            if lowered.endswith("labels") or lowered in {"polygon", "brush", "ellipse", "keypoint"}:
                raise MalformedAnnotation(
                    f"region {item.get('id')} is a {kind} region; this study takes boxes "
                    "(type rectanglelabels) only: redraw it with the rectangle tool"
                )
            continue
        check_size(item, shape)
        value = item.get("value") or {}
        try:
            x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
            rotation = float(value.get("rotation") or 0.0)
            label = [str(v) for v in value["rectanglelabels"]][0]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise MalformedAnnotation(
                f"region {item.get('id')} is not a rectangle with a label ({exc!r})"
            ) from None
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            raise MalformedAnnotation(f"region {item.get('id')} has no usable coordinates")
        if abs(rotation) % 360 > 1e-6:
            raise MalformedAnnotation(
                f"region {item.get('id')} is rotated by {rotation:g} degrees; boxes must be "
                "axis-aligned: draw it again without rotating"
            )
        boxes.append(
            [x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100]
        )
        names.append(label)
    return np.asarray(boxes, np.float64).reshape(-1, 4), names


def _read_point(item: dict, shape: tuple[int, int]) -> list[float]:
    """A ``keypointlabels`` region as a box of zero size at its point."""
    height, width = shape
    check_size(item, shape)
    value = item.get("value") or {}
    try:
        x, y = float(value["x"]) * width / 100, float(value["y"]) * height / 100
        if not value["keypointlabels"]:
            raise ValueError("no label")
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedAnnotation(
            f"region {item.get('id')} is not a point with a label ({exc!r})"
        ) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise MalformedAnnotation(f"region {item.get('id')} has no usable coordinates")
    return [x, y, x, y]


def check_size(item: dict, shape: tuple[int, int]) -> None:
    """Refuse a region drawn on an image of another size than ``shape`` (height, width)."""
    size = (item.get("original_height"), item.get("original_width"))
    if size != tuple(shape):
        raise MalformedAnnotation(
            f"region {item.get('id')} was drawn on a {size[0]}x{size[1]} image, the study's "
            f"image is {shape[0]}x{shape[1]}"
        )
