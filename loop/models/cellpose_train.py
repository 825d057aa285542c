"""Training a Cellpose 3 network with a small seeded loop of ours (see
:mod:`loop.models.cellpose_seg` for why): flow targets, seeded crops with augmentation,
Cellpose's loss, and the step budget that grows with the labeled set."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from cellpose import dynamics, resnet_torch

from loop.config import AugmentConfig, ModelConfig
from loop.core.augment import dihedral, dihedral_flows, elastic, photometric
from loop.errors import ModelError
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


def prepare(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    crop: int,
    device: torch.device,
    invert: str = "never",
    progress: Callable[[], None] | None = None,
) -> TrainingData:
    """Normalise images (polarity ``invert``, see :func:`to_input`) and compute flow targets
    (once per image)."""
    data = TrainingData([], [], [])
    for image, mask in zip(images, masks, strict=True):
        x = to_input(image, invert=invert)
        mask = np.asarray(mask)
        if x.shape[1:] != mask.shape:
            raise ModelError(f"an image of shape {x.shape[1:]} has a mask of shape {mask.shape}")
        pad_y, pad_x = max(0, crop - mask.shape[0]), max(0, crop - mask.shape[1])
        if pad_y or pad_x:
            x = np.pad(x, ((0, 0), (0, pad_y), (0, pad_x)))
            mask = np.pad(mask, ((0, pad_y), (0, pad_x)))
        data.images.append(x)
        data.masks.append(mask)
        data.targets.append(flow_targets(mask, device))
        if progress:
            progress()
    return data


def _crop(
    data: TrainingData,
    i: int,
    rng: np.random.Generator,
    crop: int,
    aug: AugmentConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    image, target = data.images[i], data.targets[i]
    y0 = int(rng.integers(0, image.shape[1] - crop + 1))
    x0 = int(rng.integers(0, image.shape[2] - crop + 1))
    window = (slice(None), slice(y0, y0 + crop), slice(x0, x0 + crop))
    x, t = image[window], target[window]
    if aug.elastic and rng.random() < aug.probability:
        x, labels = elastic(x, data.masks[i][window[1:]], rng)
        t = flow_targets(labels, device)
    if aug.flips:
        code = int(rng.integers(8))
        x = dihedral(x, code)
        t = np.concatenate([dihedral(t[:1], code), dihedral_flows(t[1:], code)])
    x = photometric(x, rng, aug)
    return x, t


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cellpose's segmentation loss: MSE on 5x flows (halved) + BCE on the cell probability."""
    flow_loss = F.mse_loss(output[:, :2], 5.0 * target[:, 1:]) / 2.0
    return flow_loss + F.binary_cross_entropy_with_logits(output[:, 2], target[:, 0])


def n_steps(n_images: int, config: ModelConfig, *, warm: bool) -> int:
    """Optimisation steps for ``n_images``: ``epochs`` passes, bounded, fewer when warm.

    >>> n_steps(40, ModelConfig(), warm=False)
    500
    """
    steps = config.epochs * math.ceil(n_images / config.batch_size)
    steps = min(max(steps, config.min_steps), config.max_steps)
    return max(1, round(steps * config.warm_fraction)) if warm else steps


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
        batch_x, batch_t = [], []
        for _ in range(config.batch_size):
            if not order:
                order = list(rng.permutation(len(data.images)))
            x, t = _crop(data, order.pop(), rng, config.crop, augment, device)
            batch_x.append(x)
            batch_t.append(t)
        x = torch.from_numpy(np.stack(batch_x)).to(device)
        t = torch.from_numpy(np.stack(batch_t)).to(device)
        optimizer.zero_grad()
        loss = loss_fn(net(x)[0], t)
        loss.backward()
        optimizer.step()
        running.append(float(loss.detach()))
        if len(running) == per_epoch or step == steps - 1:
            losses.append(float(np.mean(running)))
            running = []
        if progress:
            progress(step + 1)
    net.eval()
    return TrainResult(net, losses, steps, time.perf_counter() - started)


def loss_curve(losses: Sequence[float], path: str | Path, *, title: str) -> Path:
    """Plot training loss per epoch (pass over the training images) into ``path`` (PNG)."""
    from loop.core.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, color="#1f77b4")
    ax.set_xlabel("epoch (one crop per training image)")
    ax.set_ylabel("loss (flows MSE/2 + cell-probability BCE)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(path))
