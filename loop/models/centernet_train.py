"""Training of the centre-heatmap detector (:mod:`loop.models.centernet`): targets (elliptical
Gaussians sized by each box, as TTFNet does; 1 at the 1, 2 or 4 pixels nearest each centre),
crops centred on known pixels with the symmetries of the square (a transposing one swaps
heights and widths), CenterNet's penalty-reduced focal loss over the known pixels and an L1
loss of the log sizes near each centre; seeded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from loop.config import AugmentConfig
from loop.config_detection import DetectionConfig
from loop.core.augment import dihedral, photometric
from loop.core.boxes import as_boxes
from loop.errors import ModelError
from loop.models.base import TrainResult, train_steps
from loop.models.centernet import resized


@dataclass
class Example:
    """A training image at the working scale and its targets."""

    image: np.ndarray  # (C, M, N) float32
    heat: np.ndarray  # (K, M, N) float32: Gaussians, 1 at each centre
    size: np.ndarray  # (2, M, N) float32: log height, log width near each centre
    sized: np.ndarray  # (M, N) bool: where ``size`` is given
    known: np.ndarray  # (M, N) bool: pixels the label covers
    where: np.ndarray = field(init=False)  # flat indices of known pixels (crop centres)

    def __post_init__(self):
        self.where = np.flatnonzero(self.known.ravel())


def targets(
    shape: tuple[int, int], boxes, classes, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps, size maps and where sizes are given, for ``boxes`` (already at the working
    scale) in an image of ``shape``.

    Parameters
    ----------
    shape : (M, N)
    boxes : array_like of shape (B, 4), ``x1, y1, x2, y2``
    classes : array_like of shape (B,)

    Returns
    -------
    heat : ndarray of shape (K, M, N); size : (2, M, N); sized : (M, N) bool
    """
    m, n = shape
    heat = np.zeros((n_classes, m, n), np.float32)
    size = np.zeros((2, m, n), np.float32)
    sized = np.zeros((m, n), bool)
    boxes = as_boxes(boxes)
    classes = np.asarray(classes, np.int64).reshape(-1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
    for i in np.argsort(-area, kind="stable"):  # small boxes last: theirs where they overlap
        x1, y1, x2, y2 = boxes[i]
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        cy, cx = (y1 + y2) / 2 - 0.5, (x1 + x2) / 2 - 0.5  # in pixel indices
        sy, sx = max(0.54 * h / 6, 0.8), max(0.54 * w / 6, 0.8)
        g = np.exp(-((rows - cy) ** 2) / (2 * sy**2) - ((cols - cx) ** 2) / (2 * sx**2))
        k = int(classes[i])
        np.maximum(heat[k], g, out=heat[k])
        # the centre: the 1, 2 or 4 pixels nearest it (a box of even side has two middles,
        # and a mirrored crop must find the same centre)
        centre_rows = [r for r in {int(np.floor(cy)), int(np.ceil(cy))} if abs(r - cy) <= 0.5]
        centre_cols = [c for c in {int(np.floor(cx)), int(np.ceil(cx))} if abs(c - cx) <= 0.5]
        heat[k][np.ix_(np.clip(centre_rows, 0, m - 1), np.clip(centre_cols, 0, n - 1))] = 1.0
        near = g > 0.5
        size[0][near], size[1][near] = np.log(h), np.log(w)
        sized |= near
    return heat, size, sized


def prepare(images, labels, *, config: DetectionConfig, n_classes: int) -> list[Example]:
    """Training examples of images and their labels: ``(boxes, classes)`` or
    ``(boxes, classes, known)`` with ``known`` a boolean image (a partial label); boxes in
    the image's pixel coordinates. Points (``config.shape``) become spots of
    ``config.point_radius``, without sizes to learn."""
    out = []
    points = config.shape == "point"
    for pixels, label in zip(images, labels, strict=True):
        boxes, classes, *rest = label
        if points:  # a spot of the point radius around each point's centre
            centres = (as_boxes(boxes)[:, :2] + as_boxes(boxes)[:, 2:]) / 2
            r = config.point_radius
            boxes = np.concatenate([centres - r, centres + r], axis=1)
        x = resized(pixels, config.channels, config.scale)
        shape = x.shape[1:]
        scaled = as_boxes(boxes) * np.array(
            [shape[1] / pixels.shape[1], shape[0] / pixels.shape[0]] * 2
        )
        heat, size, sized = targets(shape, scaled, classes, n_classes)
        if points:
            sized[:] = False
        known = np.ones(shape, bool)
        if rest and rest[0] is not None:
            k = torch.from_numpy(np.asarray(rest[0], np.float32))[None, None]
            known = F.interpolate(k, size=shape, mode="nearest")[0, 0].numpy() > 0.5
        example = Example(x, heat, size, sized & known, known)
        if example.where.size:
            out.append(example)
    return out


def sample(example: Example, crop: int, rng: np.random.Generator, augment: AugmentConfig):
    """One augmented ``crop`` x ``crop`` crop (image, heat, size, sized, known) centred on a
    random known pixel; smaller images are padded (reflected pixels, unknown targets). A
    transposing symmetry swaps the size maps (height and width)."""
    parts = [example.image, example.heat, example.size, example.sized, example.known]
    m, n = example.known.shape
    pad_m, pad_n = max(0, crop - m), max(0, crop - n)
    if pad_m or pad_n:
        spec = ((0, pad_m), (0, pad_n))
        parts = [
            np.pad(parts[0], ((0, 0), *spec), mode="reflect"),
            *(np.pad(p, ((0, 0), *spec)) for p in parts[1:3]),
            *(np.pad(p, spec) for p in parts[3:]),
        ]
    centre = int(example.where[rng.integers(example.where.size)])
    row, col = divmod(centre, n)
    top = int(
        np.clip(
            row - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, parts[4].shape[0] - crop
        )
    )
    left = int(
        np.clip(
            col - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, parts[4].shape[1] - crop
        )
    )
    parts = [p[..., top : top + crop, left : left + crop] for p in parts]
    if augment.flips:
        code = int(rng.integers(8))
        parts = [dihedral(p, code) for p in parts]
        if code & 4:
            parts[2] = parts[2][::-1]
    image = photometric(np.ascontiguousarray(parts[0]), rng, augment)
    return image, *(np.ascontiguousarray(p) for p in parts[1:])


def focal_loss(logits: torch.Tensor, heat: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4) over the known pixels,
    normalised by the number of centres (at least 1).

    Parameters
    ----------
    logits, heat : tensor of shape (B, K, M, N)
    known : tensor of shape (B, M, N), bool
    """
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    mask = known.unsqueeze(1).float()
    centre = (heat >= 1.0).float() * mask
    pos = -torch.log(p) * (1 - p) ** 2 * centre
    neg = -torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - centre) * mask
    return (pos.sum() + neg.sum()) / centre.sum().clamp(min=1.0)


def loss_of(out: torch.Tensor, heat, size, sized, known) -> torch.Tensor:
    """Focal loss of the heatmaps plus the L1 loss of the log sizes where they are given."""
    k = heat.shape[1]
    loss = focal_loss(out[:, :k], heat, known)
    weight = sized.unsqueeze(1).float()
    l1 = (torch.abs(out[:, k:] - size) * weight).sum() / weight.sum().clamp(min=1.0) / 2
    return loss + l1


def train(
    net,
    examples: list[Example],
    *,
    config: DetectionConfig,
    augment: AugmentConfig,
    steps: int,
    rng: np.random.Generator,
    device,
    progress=None,
) -> TrainResult:
    """Train ``net`` in place for ``steps`` steps of ``config.batch_size`` crops (AdamW, cosine
    decay of the learning rate: :func:`loop.models.base.train_steps`); seeded by ``rng``."""
    if not examples:
        raise ModelError("no labeled boxes to train on: label some images first")

    def step_loss():
        batch = [
            sample(examples[int(rng.integers(len(examples)))], config.crop, rng, augment)
            for _ in range(config.batch_size)
        ]
        x, heat, size, sized, known = (
            torch.from_numpy(np.stack([b[i] for b in batch])).to(device) for i in range(5)
        )
        return loss_of(net(x), heat, size, sized, known)

    return train_steps(net, step_loss, steps=steps, section=config, rng=rng, progress=progress)
