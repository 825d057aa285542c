"""What a tile or region task shows of the model's prediction: the part in the tile (masks
cropped, boxes moved into the tile's coordinates and cut at its edges), and of a region task
only the objects (or boxes) that touch its frame."""

from __future__ import annotations

from dataclasses import replace

from loop.core.boxes import in_tile
from loop.core.regions import touching
from loop.core.tiles import Box, crop
from loop.types import Boxes, Prediction


def cropped(preds: tuple[Prediction, ...], tile: Box | None) -> tuple[Prediction, ...]:
    if tile is None:
        return preds
    out = []
    for p in preds:
        if p.mask is not None:
            mask = crop(p.mask, tile)
            p = Prediction(mask=mask, score=p.score, model_version=p.model_version, labels=p.labels)
        elif p.boxes is not None:
            p = Prediction(boxes=crop_boxes(p.boxes, tile), score=p.score,
                           model_version=p.model_version)  # fmt: skip
        out.append(p)
    return tuple(out)


def at_frame(p: Prediction, frame: Box) -> Prediction:
    """A region task's pre-annotation: the model's objects (or boxes) that touch the frame,
    whole."""
    if p.mask is not None:
        return replace(p, mask=touching(p.mask, frame))
    if p.boxes is not None:
        keep = in_tile(p.boxes.boxes, frame, points=p.boxes.points)[1]
        b = p.boxes
        named = tuple(n for n, k in zip(b.names, keep, strict=True) if k)
        scores = None if b.scores is None else b.scores[keep]
        return replace(p, boxes=replace(b, boxes=b.boxes[keep], names=named, scores=scores))
    return p


def crop_boxes(boxes: Boxes, tile: Box) -> Boxes:
    """The boxes in ``tile`` (:func:`loop.core.boxes.in_tile`), in its coordinates."""
    inside, keep = in_tile(boxes.boxes, tile, points=boxes.points)
    scores = None if boxes.scores is None else boxes.scores[keep]
    names = tuple(n for n, k in zip(boxes.names, keep, strict=True) if k)
    return Boxes(inside, names, (int(tile[2]), int(tile[3])), scores, points=boxes.points)
