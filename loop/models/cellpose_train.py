"""Training a Cellpose 3 network with a small seeded loop of ours (see
:mod:`loop.models.cellpose_seg` for why): flow targets, seeded crops with augmentation,
Cellpose's loss, and the step budget that grows with the labeled set.

A label may be **partial**: the objects drawn in a region of an image, with a *known* mask
(the pixels whose label is known: the region and the full extent of the objects drawn in it).
The loss then counts known pixels only, and crops are centred on known pixels; a label known
everywhere (``known`` None) trains as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from cellpose import resnet_torch

from loop.config import AugmentConfig, ModelConfig
from loop.core.augment import dihedral, dihedral_flows, elastic, photometric
from loop.errors import ModelError
from loop.models.base import mean_loss
from loop.models.cellpose_numba import dynamics
from loop.models.cellpose_seg import to_input


def flow_targets(mask: np.ndarray, device: torch.device) -> np.ndarray:
    """Training targets of a label image: cell probability and Cellpose flows.

    Returns
    -------
    ndarray of shape (3, M, N), float32
        Foreground (0/1), dy, dx.
    """
    mask = np.asarray(mask).astype(np.int32)
    flows = (
        dynamics.masks_to_flows(mask, device=device)
        if mask.max()
        else np.zeros((2, *mask.shape), np.float32)
    )
    return np.concatenate([(mask > 0)[None].astype(np.float32), flows]).astype(np.float32)


@dataclass
class TrainingData:
    """Images and targets prepared once, padded to at least one crop."""

    images: list[np.ndarray]  # (2, M, N)
    targets: list[np.ndarray]  # (3, M, N)
    masks: list[np.ndarray]  # (M, N), for elastic deformation
    known: list[np.ndarray | None] = field(default_factory=list)  # (M, N) bool, None: all


def prepare(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    crop: int,
    device: torch.device,
    invert: str = "never",
    known: Sequence[np.ndarray | None] | None = None,
    progress: Callable[[], None] | None = None,
) -> TrainingData:
    """Normalise images (polarity ``invert``, see :func:`to_input`) and compute flow targets
    (once per image).

    Parameters
    ----------
    known : sequence of (ndarray of shape (M, N), bool, or None), optional
        Per image, the pixels whose label is known (a partial label); None: all of them.

    Raises
    ------
    ModelError
        When a mask or a known mask differs in shape from its image, or a known mask holds
        no pixel.
    """
    data = TrainingData([], [], [])
    known = [None] * len(images) if known is None else list(known)
    for image, mask, seen in zip(images, masks, known, strict=True):
        x = to_input(image, invert=invert)
        mask = np.asarray(mask)
        if x.shape[1:] != mask.shape:
            raise ModelError(f"an image of shape {x.shape[1:]} has a mask of shape {mask.shape}")
        if seen is not None:
            seen = np.asarray(seen, bool)
            if seen.shape != mask.shape:
                raise ModelError(
                    f"an image of shape {mask.shape} has a known mask of shape {seen.shape}"
                )
            if not seen.any():
                raise ModelError("a partial label whose known mask holds no pixel")
            if seen.all():
                seen = None
        pad_y, pad_x = max(0, crop - mask.shape[0]), max(0, crop - mask.shape[1])
        if pad_y or pad_x:
            x = np.pad(x, ((0, 0), (0, pad_y), (0, pad_x)))
            mask = np.pad(mask, ((0, pad_y), (0, pad_x)))
            if seen is not None:
                seen = np.pad(seen, ((0, pad_y), (0, pad_x)))
        data.images.append(x)
        data.masks.append(mask)
        data.known.append(seen)
        data.targets.append(flow_targets(mask, device))
        if progress:
            progress()
    return data


def _window(known: np.ndarray | None, shape, crop: int, rng) -> tuple[int, int]:
    """The top-left corner of a crop: anywhere in a label known everywhere; around a known
    pixel drawn at random (the crop then holds it) in a partial one."""
    height, width = shape
    if known is None:
        return int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    flat = np.flatnonzero(known)
    r, c = np.unravel_index(flat[int(rng.integers(len(flat)))], known.shape)
    y0 = int(np.clip(r - int(rng.integers(crop)), 0, height - crop))
    x0 = int(np.clip(c - int(rng.integers(crop)), 0, width - crop))
    return y0, x0


def _crop(
    data: TrainingData,
    i: int,
    rng: np.random.Generator,
    crop: int,
    aug: AugmentConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input (2, crop, crop), target (3, crop, crop), known (crop, crop) float32)."""
    image, target = data.images[i], data.targets[i]
    known = data.known[i] if data.known else None
    y0, x0 = _window(known, image.shape[1:], crop, rng)
    window = (slice(None), slice(y0, y0 + crop), slice(x0, x0 + crop))
    x, t = image[window], target[window]
    seen = np.ones((crop, crop), np.float32) if known is None else known[window[1:]]
    seen = seen.astype(np.float32)
    # elastic deformation moves pixels between known and unknown: whole labels only
    if known is None and aug.elastic and rng.random() < aug.probability:
        x, labels = elastic(x, data.masks[i][window[1:]], rng)
        t = flow_targets(labels, device)
    if aug.flips:
        code = int(rng.integers(8))
        x = dihedral(x, code)
        t = np.concatenate([dihedral(t[:1], code), dihedral_flows(t[1:], code)])
        seen = dihedral(seen[None], code)[0]
    x = photometric(x, rng, aug)
    return x, t, np.ascontiguousarray(seen)


def loss_fn(
    output: torch.Tensor, target: torch.Tensor, known: torch.Tensor | None = None
) -> torch.Tensor:
    """Cellpose's segmentation loss: MSE on 5x flows (halved) + BCE on the cell probability,
    averaged over the known pixels (``known`` of shape (B, M, N), 1 known, 0 not; None: all).
    Unknown pixels add nothing to the loss or its gradient."""
    flow = ((output[:, :2] - 5.0 * target[:, 1:]) ** 2).mean(dim=1) / 2.0
    prob = F.binary_cross_entropy_with_logits(output[:, 2], target[:, 0], reduction="none")
    per_pixel = flow + prob
    if known is None:
        return per_pixel.mean()
    return (per_pixel * known).sum() / known.sum().clamp(min=1.0)


@dataclass
class TrainResult:
    net: resnet_torch.CPnet
    losses: list[float] = field(default_factory=list)  # mean loss per epoch-equivalent
    steps: int = 0
    seconds: float = 0.0


def train(
    net: resnet_torch.CPnet,
    data: TrainingData,
    *,
    config: ModelConfig,
    augment: AugmentConfig,
    steps: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``net`` in place for ``steps`` steps of ``config.batch_size`` random crops.

    Learning rate: linear warm-up over the first 5% of steps, then cosine decay (AdamW).
    Same ``net`` weights, data, config and ``rng`` state give the same result on one device.
    """
    if not data.images:
        raise ModelError("no labeled images to train on: label some images first")
    device = net.device
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = max(1, steps // 20)
    per_epoch = max(1, math.ceil(len(data.images) / config.batch_size))
    order: list[int] = []
    losses, running = [], []
    partial = any(d is not None for d in data.known)
    started = time.perf_counter()
    net.train()
    for step in range(steps):
        lr = config.learning_rate * (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch_x, batch_t, batch_k = [], [], []
        for _ in range(config.batch_size):
            if not order:
                order = list(rng.permutation(len(data.images)))
            x, t, k = _crop(data, order.pop(), rng, config.crop, augment, device)
            batch_x.append(x)
            batch_t.append(t)
            batch_k.append(k)
        x = torch.from_numpy(np.stack(batch_x)).to(device)
        t = torch.from_numpy(np.stack(batch_t)).to(device)
        k = torch.from_numpy(np.stack(batch_k)).to(device) if partial else None
        optimizer.zero_grad()
        loss = loss_fn(net(x)[0], t, k)
        loss.backward()
        optimizer.step()
        # kept on the device: float() here would wait for the GPU every step, so that it
        # idled while the CPU cut and augmented the next batch
        running.append(loss.detach())
        if len(running) == per_epoch or step == steps - 1:
            losses.append(mean_loss(running))
            running = []
        if progress:
            progress(step + 1)
    net.eval()
    return TrainResult(net, losses, steps, time.perf_counter() - started)
