"""A U-Net for semantic segmentation: MONAI's ``BasicUNet`` (2-D), trained by our seeded loop
on random crops (Dice + cross-entropy over the known pixels), predicted by MONAI's sliding
windows with a flipped second pass whose disagreement measures the model's doubt.

Model files are a ``torch.save`` of ``{"meta": ..., "state": ...}`` (tensors and plain
values only, read back with ``weights_only=True``), written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from loop.config import AugmentConfig
from loop.config_unet import UNetConfig
from loop.core.augment import dihedral, elastic, photometric
from loop.core.classmaps import pixel_entropy
from loop.core.files import atomic_path
from loop.core.images import normalize_percentile
from loop.errors import ModelError
from loop.models.base import TrainResult, train_steps

FORMAT = "loop-basicunet-2d"
UNKNOWN = -1
"""The training target of a pixel no label covers."""


def to_input(pixels: np.ndarray, channels: int) -> np.ndarray:
    """An image as the network's input: ``channels`` channels, each percentile-normalised.

    Parameters
    ----------
    pixels : ndarray of shape (M, N) or (M, N, C)
    channels : int
        1 (colour turned grey by averaging its first three channels) or 3 (grey repeated).

    Returns
    -------
    ndarray of shape (channels, M, N), float32

    >>> to_input(np.zeros((4, 5, 3), np.uint8), 1).shape
    (1, 4, 5)
    """
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    x = x[..., :3]
    if channels == 1:
        x = x.mean(axis=-1, keepdims=True)
    elif x.shape[-1] < 3:
        x = np.concatenate([x, np.repeat(x[..., :1], 3 - x.shape[-1], axis=-1)], axis=-1)
    x = normalize_percentile(x, 1.0, 99.8, brightest=4.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def build(config: UNetConfig, n_classes: int, *, seed: int, device=None):
    """A freshly initialised BasicUNet for ``n_classes`` classes (seeded)."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    net = BasicUNet(
        spatial_dims=2,
        in_channels=config.channels,
        out_channels=n_classes,
        features=tuple(config.features),
        dropout=config.dropout,
    )
    net.meta = {
        "format": FORMAT,
        "features": list(config.features),
        "channels": config.channels,
        "classes": n_classes,
        "dropout": config.dropout,
    }
    return _placed(net, device or "cpu")


def _placed(net, device):
    """``net`` on ``device``, in evaluation mode, with ``net.device`` saying where (as
    Cellpose's networks do)."""
    net.device = torch.device(device)
    return net.to(net.device).eval()


def save(net, path: str | Path) -> Path:
    """Write ``net`` (its meta and weights) to ``path`` atomically."""
    path = Path(path)
    buffer = io.BytesIO()  # in memory first: torch's writer fails on a full disk obscurely
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"meta": net.meta, "state": state}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def save_trained(fitted, path: str | Path, *, title: str, ylabel: str) -> Path:
    """Write a trained network (a :class:`~loop.models.base.Fitted`) with :func:`save` and its
    loss curve beside it (``<stem>-loss.png``, ``ylabel`` naming the loss); returns the
    model's path."""
    from loop.core.figures import loss_curve

    path = save(fitted.model, path)
    loss_curve(
        fitted.losses,
        path.with_name(path.stem + "-loss.png"),
        title=title,
        xlabel="chunk of steps (1/50 of training)",
        ylabel=ylabel,
    )
    return path


def load(path: str | Path, device) -> torch.nn.Module:
    """Read a model written by :func:`save`.

    Raises
    ------
    ModelError
        When the file is missing, not readable as such a model, or of another format.
    """

    def rebuild(meta):
        config = UNetConfig(
            features=tuple(meta["features"]), channels=meta["channels"], dropout=meta["dropout"]
        )
        return build(config, int(meta["classes"]), seed=0)

    return load_saved(path, device, fmt=FORMAT, what="a U-Net model", rebuild=rebuild)


def load_saved(path: str | Path, device, *, fmt: str, what: str, rebuild) -> torch.nn.Module:
    """Read a network written by :func:`save` whose meta names ``fmt``: ``rebuild(meta)``
    makes the network its weights are loaded into, placed on ``device``.

    Raises
    ------
    ModelError
        When the file is missing, not readable as such a model (``what``, for the message),
        or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"the model file {path} is missing: run `loop train` again")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta = saved["meta"]
        if meta.get("format") != fmt:
            raise KeyError("format")
        net = rebuild(meta)
        net.load_state_dict(saved["state"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error for the user
        raise ModelError(
            f"{path} is not {what} written by loop ({type(exc).__name__}): train again"
        ) from None
    return _placed(net, device)


# --- training -----------------------------------------------------------------------------


@dataclass
class Example:
    """A training image and its target: class indices, :data:`UNKNOWN` where not labeled."""

    image: np.ndarray  # (C, M, N) float32
    target: np.ndarray  # (M, N) int16
    known: np.ndarray = field(init=False)  # flat indices of the known pixels

    def __post_init__(self):
        self.known = np.flatnonzero(self.target.ravel() != UNKNOWN)


def prepare(images, targets, *, channels: int) -> list[Example]:
    """Training examples of images and their targets (class maps, or
    :class:`~loop.types.PartialMask` of class maps); images without a known pixel are left
    out."""
    out = []
    for pixels, target in zip(images, targets, strict=True):
        classes = np.asarray(getattr(target, "mask", target)).astype(np.int16)
        known = getattr(target, "known", None)
        if known is not None:
            classes = np.where(known, classes, UNKNOWN).astype(np.int16)
        example = Example(to_input(pixels, channels), classes)
        if example.known.size:
            out.append(example)
    return out


def sample(
    example: Example, crop: int, rng: np.random.Generator, augment: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented ``crop`` x ``crop`` training crop centred on a random known pixel (images
    smaller than the crop are padded: reflected pixels, unknown targets)."""
    image, target = example.image, example.target
    m, n = target.shape
    pad_m, pad_n = max(0, crop - m), max(0, crop - n)
    if pad_m or pad_n:
        image = np.pad(image, ((0, 0), (0, pad_m), (0, pad_n)), mode="reflect")
        target = np.pad(target, ((0, pad_m), (0, pad_n)), constant_values=UNKNOWN)
    centre = int(example.known[rng.integers(example.known.size)])
    row, col = divmod(centre, n)
    top = int(np.clip(row - crop // 2, 0, target.shape[0] - crop))
    left = int(np.clip(col - crop // 2, 0, target.shape[1] - crop))
    x = image[:, top : top + crop, left : left + crop]
    y = target[top : top + crop, left : left + crop]
    if augment.flips:
        code = int(rng.integers(8))
        x, y = dihedral(x, code), dihedral(y, code)
    if augment.elastic and rng.random() < augment.probability:
        x, y = elastic(x, y, rng)
    return photometric(x, rng, augment), np.ascontiguousarray(y)


def loss_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice (MONAI's ``DiceLoss``) over the known pixels.

    Parameters
    ----------
    logits : tensor of shape (B, K, M, N)
    target : tensor of shape (B, M, N), long; :data:`UNKNOWN` where not labeled
    """
    from monai.losses import DiceLoss

    ce = F.cross_entropy(logits, target, ignore_index=UNKNOWN)
    known = (target != UNKNOWN).unsqueeze(1)
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2)
    probability = torch.softmax(logits, dim=1)
    dice = DiceLoss(reduction="mean", smooth_nr=1.0, smooth_dr=1.0)(
        probability * known, onehot * known
    )
    return ce + dice


def train(
    net,
    examples: list[Example],
    *,
    config: UNetConfig,
    augment: AugmentConfig,
    steps: int,
    rng: np.random.Generator,
    device,
    progress=None,
) -> TrainResult:
    """Train ``net`` in place for ``steps`` steps of ``config.batch_size`` crops (AdamW, cosine
    decay of the learning rate: :func:`loop.models.base.train_steps`); seeded by ``rng``."""
    if not examples:
        raise ModelError("no labeled pixels to train on: label some images first")

    def step_loss():
        batch = [
            sample(examples[int(rng.integers(len(examples)))], config.crop, rng, augment)
            for _ in range(config.batch_size)
        ]
        x = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        y = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64)).to(device)
        return loss_of(net(x), y)

    return train_steps(net, step_loss, steps=steps, section=config, rng=rng, progress=progress)


# --- prediction ---------------------------------------------------------------------------


@dataclass
class Segmented:
    """One image's prediction: the class map, the probability of the chosen class, the
    per-image measures (``entropy``, ``flip``) and the embedding (bottleneck features)."""

    classes: np.ndarray  # (M, N) uint8
    confidence: np.ndarray  # (M, N) float32
    probabilities: np.ndarray  # (K, M, N) float32
    measures: dict
    embedding: np.ndarray  # (F,)
    flip: np.ndarray  # (M, N): the mirror image's disagreement per pixel
    entropy: np.ndarray  # (M, N): the normalised entropy per pixel


def probabilities(net, pixels: np.ndarray, *, config: UNetConfig):
    """Class probabilities of an image and of its mirror image (mirrored back), each of shape
    (K, M, N), by sliding windows of ``config.tile`` (Gaussian-weighted overlaps), both in one
    batch."""
    from monai.inferers import sliding_window_inference

    device = next(net.parameters()).device
    x = torch.from_numpy(to_input(pixels, net.meta["channels"]))[None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(
            torch.cat([x, x.flip(-1)]),
            (config.tile, config.tile),
            sw_batch_size=8,
            predictor=net,
            overlap=config.overlap,
            mode="gaussian",
        )
        p = torch.softmax(logits, dim=1)
    p, q = p[0], p[1].flip(-1)
    return p.float().cpu().numpy(), q.float().cpu().numpy()


def segment(net, pixels: np.ndarray, *, config: UNetConfig) -> Segmented:
    """The image and its mirror image predicted (averaged), with their disagreement
    (``flip``: half the L1 distance of the two probability vectors, mean over pixels) and the
    averaged probabilities' normalised entropy (``entropy``, mean over pixels)."""
    pooled = []
    hook = net.down_4.register_forward_hook(
        lambda module, args, out: pooled.append(out.mean(dim=(2, 3)).detach().cpu())
    )
    try:
        p, q = probabilities(net, pixels, config=config)
    finally:
        hook.remove()
    flip, entropy = doubt_maps(p, q)
    mean = (p + q) / 2
    embedding = torch.cat(pooled).mean(dim=0).numpy().astype(np.float32)
    return Segmented(
        classes=mean.argmax(axis=0).astype(np.uint8),
        confidence=mean.max(axis=0).astype(np.float32),
        probabilities=mean.astype(np.float32),
        measures={"entropy": float(entropy.mean()), "flip": float(flip.mean())},
        embedding=embedding,
        flip=flip,
        entropy=entropy,
    )


def doubt_maps(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, from the probabilities of an image and of its mirror image (both (K, M, N)):
    their disagreement (half the L1 distance, in [0, 1]) and the normalised entropy of their
    mean (:func:`loop.core.classmaps.pixel_entropy`)."""
    return 0.5 * np.abs(p - q).sum(axis=0), pixel_entropy((p + q) / 2)


REGION_MEASURES = ("flip", "entropy")
"""Per-region measures of :func:`region_measures`, in column order."""


def region_measures(net, images, boxes, *, config: UNetConfig) -> list[np.ndarray]:
    """The per-pixel doubt of :func:`segment` averaged over each region.

    Parameters
    ----------
    images : sequence of ndarray
    boxes : sequence of ndarray of shape (R_i, 4)
        Each image's regions (``row, col, height, width``).

    Returns
    -------
    list of ndarray of shape (R_i, 2)
        Per region: ``flip`` and ``entropy`` (:data:`REGION_MEASURES`).
    """
    from loop.core.regions import region_means

    out = []
    for pixels, regions in zip(images, boxes, strict=True):
        seg = segment(net, pixels, config=config)
        out.append(
            np.stack(
                [region_means(m, None, np.asarray(regions)) for m in (seg.flip, seg.entropy)],
                axis=1,
            )
        )
    return out
