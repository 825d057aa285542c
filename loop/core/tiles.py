"""Large images annotated as tiles, and the tiles' label images stitched back.

A person annotates a 256² tile far faster and more accurately than a 1,000² image on one
screen. ``loop push --tile 256`` cuts every image larger than ``above`` pixels (height or
width) into overlapping tiles of near-equal size, each tile its own task; ``loop pull``
stitches each annotator's tiles back into one label image of the whole image once the
annotator has done every tile.

Stitching: each pixel is taken from the tile whose centre is nearest (the overlaps are split
at their middle), and an object cut by that split is made whole again when its two halves
are the same object in both tiles: their pixels in the overlap of the two tiles have an IoU
of at least ``min_iou``. Objects that merely touch are not merged, because in the overlap
each tile shows both of them. So a label image of connected objects cut into tiles and
stitched back is the same label image (the property the tests check), and two annotators'
stitched masks can be compared like any others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loop.errors import ConfigError, MalformedAnnotation

Box = tuple[int, int, int, int]  # (row, col, height, width) of a tile in its image


@dataclass(frozen=True)
class Tiling:
    """How large images are cut into tasks.

    Parameters
    ----------
    tile : int
        Largest tile side in pixels (tiles are as equal as the image allows, at most this).
    above : int
        Only images with a side longer than this are cut; smaller ones stay whole tasks.
    overlap : int
        Pixels shared by neighbouring tiles: more than the diameter of most objects, so an
        object cut by a tile's edge is whole in its neighbour.
    """

    tile: int = 256
    above: int = 512
    overlap: int = 32

    def __post_init__(self):
        if self.tile < 32:
            raise ConfigError(f"--tile {self.tile}: give a tile side of at least 32 pixels")
        if not 0 <= self.overlap <= self.tile // 2:
            raise ConfigError(
                f"--tile-overlap {self.overlap}: give 0..{self.tile // 2} (half the tile side)"
            )
        if self.above < self.tile:
            raise ConfigError(
                f"--tile-above {self.above} is smaller than --tile {self.tile}: an image "
                "smaller than a tile needs no tiling"
            )

    def boxes(self, height: int, width: int) -> list[Box]:
        """The tiles of an image of ``height`` x ``width`` (one box, the whole image, when it
        is not larger than ``above``), row by row."""
        if max(height, width) <= self.above:
            return [(0, 0, height, width)]
        rows = _starts(height, self.tile, self.overlap)
        cols = _starts(width, self.tile, self.overlap)
        return [(r, c, h, w) for r, h in rows for c, w in cols]


def _starts(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, size) of near-equal segments of at most ``tile`` covering ``length`` with
    ``overlap`` shared between neighbours.

    >>> _starts(520, 256, 32)
    [(0, 195), (163, 195), (325, 195)]
    >>> _starts(200, 256, 32)
    [(0, 200)]
    """
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (n - 1) * overlap) / n)
    starts = [min(i * (size - overlap), length - size) for i in range(n)]
    return [(s, size) for s in starts]


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The part of ``image`` (shape (M, N, ...)) under ``box``."""
    r, c, h, w = box
    return image[r : r + h, c : c + w]


def stitch(
    tiles: Sequence[tuple[Box, np.ndarray]], shape: tuple[int, int], *, min_iou: float = 0.5
) -> np.ndarray:
    """One label image from label images of overlapping tiles.

    Parameters
    ----------
    tiles : sequence of (box, labels)
        ``box`` = (row, col, height, width) in the image; ``labels`` an int array of shape
        (height, width), 0 = background, labels local to the tile.
    shape : (M, N)
        The image's shape; the tiles must cover it.
    min_iou : float
        Two objects of neighbouring tiles are one when their IoU over the two tiles' overlap
        is at least this.

    Returns
    -------
    ndarray of shape (M, N), dtype int32
        Objects labelled 1..K.

    Raises
    ------
    MalformedAnnotation
        When a tile's labels do not have its box's shape, or the tiles leave pixels uncovered.
    """
    height, width = shape
    offsets, total = [], 0
    for box, labels in tiles:
        if labels.shape != (box[2], box[3]):
            raise MalformedAnnotation(
                f"tile at {box[:2]} has labels of shape {labels.shape}, expected {box[2:]}: "
                "the annotation does not belong to this tile"
            )
        offsets.append(total)
        total += int(labels.max(initial=0))
    parent = np.arange(total + 1)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    # objects that are one across each pair of overlapping tiles
    for i, (box_a, a) in enumerate(tiles):
        for j in range(i + 1, len(tiles)):
            box_b, b = tiles[j]
            r0, c0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
            r1 = min(box_a[0] + box_a[2], box_b[0] + box_b[2])
            c1 = min(box_a[1] + box_a[3], box_b[1] + box_b[3])
            if r0 >= r1 or c0 >= c1:
                continue
            la = a[r0 - box_a[0] : r1 - box_a[0], c0 - box_a[1] : c1 - box_a[1]]
            lb = b[r0 - box_b[0] : r1 - box_b[0], c0 - box_b[1] : c1 - box_b[1]]
            for x, y in _matches(la, lb, min_iou):
                ra, rb = find(x + offsets[i]), find(y + offsets[j])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)

    # each pixel from the tile whose centre is nearest
    out = np.zeros(shape, dtype=np.int64)
    best = np.full(shape, np.inf)
    for (box, labels), offset in zip(tiles, offsets):
        r, c, h, w = box
        rr = np.abs(np.arange(r, r + h) + 0.5 - (r + h / 2)) / h
        cc = np.abs(np.arange(c, c + w) + 0.5 - (c + w / 2)) / w
        distance = np.maximum(rr[:, None], cc[None, :])
        region = (slice(r, r + h), slice(c, c + w))
        closer = distance < best[region]
        best[region] = np.where(closer, distance, best[region])
        out[region] = np.where(closer, np.where(labels > 0, labels + offset, 0), out[region])
    if np.isinf(best).any():
        raise MalformedAnnotation(
            f"the tiles leave {int(np.isinf(best).sum())} pixels of the {height}x{width} "
            "image uncovered"
        )
    roots = np.array([find(k) for k in range(total + 1)])
    merged = roots[out]
    _, relabelled = np.unique(merged, return_inverse=True)
    relabelled = relabelled.reshape(shape)
    if merged.min() > 0:  # no background at all: labels start at 1 anyway
        relabelled += 1
    return relabelled.astype(np.int32)


def _matches(a: np.ndarray, b: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Label pairs (of ``a``, of ``b``) with IoU >= ``min_iou`` on the same pixels."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return []
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    area_a = dict(zip(*np.unique(a[a > 0], return_counts=True)))
    area_b = dict(zip(*np.unique(b[b > 0], return_counts=True)))
    out = []
    for (x, y), n in zip(pairs.T, inter):
        if n / (area_a[x] + area_b[y] - n) >= min_iou:
            out.append((int(x), int(y)))
    return out
