"""A centre-heatmap detector (after CenterNet, Zhou et al. 2019, "Objects as Points"): MONAI's
``BasicUNet`` outputs, at the working scale, one heatmap per class whose peaks are the
objects' centres, and two maps of each object's log height and log width read at its peak.

Targets are elliptical Gaussians sized by each box (as TTFNet does), trained with CenterNet's
penalty-reduced focal loss over the known pixels (a partial label counts only where it is
known) and an L1 loss of the log sizes near each centre. Prediction runs MONAI's sliding
windows on the image and its mirror image in one batch; their mean heatmap gives the peaks
(3 x 3 maxima, then non-maximum suppression), their disagreement the model's doubt.

Model files are those of :mod:`loop.models.unet` (``torch.save`` of meta and weights, read back
with ``weights_only=True``) with their own format name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from loop.config import AugmentConfig
from loop.config_detection import DetectionConfig
from loop.core.augment import dihedral, photometric
from loop.core.boxes import as_boxes, box_iou
from loop.errors import ModelError
from loop.models.unet import _placed, to_input

FORMAT = "loop-centernet-2d"


def build(config: DetectionConfig, n_classes: int, *, seed: int, device=None):
    """A freshly initialised detector for ``n_classes`` classes (seeded); the heatmaps'
    biases start at a prior of 0.01, as CenterNet's do, so that training starts stable."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    net = BasicUNet(
        spatial_dims=2,
        in_channels=config.channels,
        out_channels=n_classes + 2,
        features=tuple(config.features),
        dropout=config.dropout,
    )
    with torch.no_grad():
        net.final_conv.bias[:n_classes].fill_(float(np.log(0.01 / 0.99)))
    net.meta = {
        "format": FORMAT,
        "features": list(config.features),
        "channels": config.channels,
        "classes": n_classes,
        "dropout": config.dropout,
        "scale": config.scale,
    }
    return _placed(net, device or "cpu")


def load(path, device):
    """Read a detector written by :func:`loop.models.unet.save`.

    Raises
    ------
    ModelError
        When the file is missing, not readable as such a model, or of another format.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"the model file {path} is missing: run `loop train` again")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta = saved["meta"]
        if meta.get("format") != FORMAT:
            raise KeyError("format")
        config = DetectionConfig(
            features=tuple(meta["features"]),
            channels=meta["channels"],
            dropout=meta["dropout"],
            scale=meta["scale"],
        )
        net = build(config, int(meta["classes"]), seed=0)
        net.load_state_dict(saved["state"])
        if meta.get("threshold") is not None:  # chosen on validation images
            net.meta["threshold"] = float(meta["threshold"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error for the user
        raise ModelError(
            f"{path} is not a detector written by loop ({type(exc).__name__}): train again"
        ) from None
    return _placed(net, device)


def resized(pixels: np.ndarray, channels: int, scale: float) -> np.ndarray:
    """The network's input (:func:`loop.models.unet.to_input`) resized by ``scale`` (area
    averaging down, bilinear up): shape (channels, round(M*scale), round(N*scale))."""
    x = to_input(pixels, channels)
    if scale == 1.0:
        return x
    size = (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[2] * scale)))
    mode = "area" if scale < 1 else "bilinear"
    out = F.interpolate(torch.from_numpy(x)[None], size=size, mode=mode)
    return out[0].numpy()


# --- targets and training -----------------------------------------------------------------


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
    the image's pixel coordinates."""
    out = []
    for pixels, label in zip(images, labels, strict=True):
        boxes, classes, *rest = label
        x = resized(pixels, config.channels, config.scale)
        shape = x.shape[1:]
        scaled = as_boxes(boxes) * np.array(
            [shape[1] / pixels.shape[1], shape[0] / pixels.shape[0]] * 2
        )
        heat, size, sized = targets(shape, scaled, classes, n_classes)
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


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # mean loss per chunk of steps
    seconds: float = 0.0


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
    decay of the learning rate); seeded by ``rng``."""
    if not examples:
        raise ModelError("no labeled boxes to train on: label some images first")
    started = time.perf_counter()
    torch.manual_seed(int(rng.integers(2**31)))
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=max(1, steps), eta_min=config.learning_rate * 0.05
    )
    chunk = max(1, steps // 50)
    losses, running = [], []
    net.train()
    for step in range(steps):
        batch = [
            sample(examples[int(rng.integers(len(examples)))], config.crop, rng, augment)
            for _ in range(config.batch_size)
        ]
        x, heat, size, sized, known = (
            torch.from_numpy(np.stack([b[i] for b in batch])).to(device) for i in range(5)
        )
        loss = loss_of(net(x), heat, size, sized, known)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if len(running) == chunk or step == steps - 1:
            losses.append(float(np.mean(running)))
            running = []
        if progress:
            progress(step + 1)
    net.eval()
    return TrainResult(losses, time.perf_counter() - started)


# --- prediction ---------------------------------------------------------------------------


@dataclass
class Detected:
    """One image's detections (in its pixel coordinates), measures and embedding."""

    boxes: np.ndarray  # (D, 4) x1, y1, x2, y2
    classes: np.ndarray  # (D,) int
    scores: np.ndarray  # (D,) float
    doubt: np.ndarray  # (D,): the mirror image's disagreement at each detection
    measures: dict
    embedding: np.ndarray  # (F,)
    threshold: float = 0.3  # a detection from this score on


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, by falling score.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 30, 30]])
    >>> nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
    [0, 2]
    """
    order = np.argsort(-scores, kind="stable")
    keep = []
    overlap = box_iou(boxes[order], boxes[order])
    dropped = np.zeros(len(order), bool)
    for a in range(len(order)):
        if dropped[a]:
            continue
        keep.append(int(order[a]))
        dropped |= overlap[a] > iou
    return np.asarray(keep, np.int64)


def maps(net, pixels: np.ndarray, *, config: DetectionConfig):
    """(heat, log sizes, mirror image's heat, bottleneck embedding) of an image at the
    working scale: heat of shape (K, m, n), sizes of shape (2, m, n)."""
    from monai.inferers import sliding_window_inference

    device = next(net.parameters()).device
    meta = net.meta
    x = torch.from_numpy(resized(pixels, meta["channels"], meta["scale"]))[None].to(device)
    pooled = []
    hook = net.down_4.register_forward_hook(
        lambda module, args, out: pooled.append(out.mean(dim=(2, 3)).detach().cpu())
    )
    try:
        with torch.inference_mode():
            out = sliding_window_inference(
                torch.cat([x, x.flip(-1)]),
                (config.tile, config.tile),
                sw_batch_size=8,
                predictor=net,
                overlap=config.overlap,
                mode="gaussian",
            )
    finally:
        hook.remove()
    k = meta["classes"]
    p, q = torch.sigmoid(out[0, :k]), torch.sigmoid(out[1, :k].flip(-1))
    sizes = (out[0, k:] + out[1, k:].flip(-1)) / 2
    embedding = torch.cat(pooled).mean(dim=0).numpy().astype(np.float32)
    return p.float().cpu().numpy(), sizes.float().cpu().numpy(), q.float().cpu().numpy(), embedding


def _offsets(heat: np.ndarray, k, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel offsets of peaks: the heat-weighted mean position of each peak's 3 x 3
    neighbourhood (a plateau of two equal pixels gives their middle)."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    dy, dx = np.zeros(len(rows)), np.zeros(len(rows))
    total = np.zeros(len(rows))
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            v = padded[k, rows + 1 + i, cols + 1 + j]
            dy, dx, total = dy + i * v, dx + j * v, total + v
    total = np.maximum(total, 1e-12)
    return dy / total, dx / total


def detect(net, pixels: np.ndarray, *, config: DetectionConfig) -> Detected:
    """Detections of an image: peaks (3 x 3 maxima) of the heatmap of the image and its
    mirror image averaged, from ``config.min_score`` on, their boxes from the size maps,
    non-maximum suppression over all classes at ``config.nms_iou``. Measures: ``entropy``
    (the binary entropies of the detections' scores, summed: how many objects the model
    is unsure of), ``flip`` (the heatmaps' disagreement at the detections, summed) and
    ``ambiguous`` (detections scoring within 0.15 of the threshold: the model's own,
    :func:`choose_threshold`, else ``config.threshold``)."""
    threshold = float(net.meta.get("threshold") or config.threshold)
    p, sizes, q, embedding = maps(net, pixels, config=config)
    mean = (p + q) / 2
    t = torch.from_numpy(mean)[None]
    peak = (F.max_pool2d(t, 3, stride=1, padding=1) == t)[0].numpy() & (mean >= config.min_score)
    k_idx, rows, cols = np.nonzero(peak)
    scores = mean[k_idx, rows, cols].astype(np.float64)
    h, w = np.exp(sizes[0, rows, cols]), np.exp(sizes[1, rows, cols])
    fy, fx = pixels.shape[0] / p.shape[1], pixels.shape[1] / p.shape[2]
    dy, dx = _offsets(mean, k_idx, rows, cols)
    cy, cx = rows + 0.5 + dy, cols + 0.5 + dx
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * [fx, fy, fx, fy]
    boxes = np.clip(boxes, 0, [pixels.shape[1], pixels.shape[0]] * 2)
    keep = nms(boxes, scores, config.nms_iou) if len(scores) else np.zeros(0, np.int64)
    boxes, scores, k_idx = boxes[keep], scores[keep], k_idx[keep]
    doubt = np.abs(p - q)[k_idx, rows[keep], cols[keep]].astype(np.float64)
    s = np.clip(scores, 1e-6, 1 - 1e-6)
    entropy = -(s * np.log2(s) + (1 - s) * np.log2(1 - s))
    return Detected(
        boxes=boxes.reshape(-1, 4),
        classes=k_idx.astype(np.int64),
        scores=scores,
        doubt=doubt,
        measures={
            "entropy": float(entropy.sum()),
            "flip": float(doubt.sum()),
            "ambiguous": float(np.sum(np.abs(scores - threshold) < 0.15)),
        },
        embedding=embedding,
        threshold=threshold,
    )


THRESHOLDS = np.round(np.arange(0.1, 0.61, 0.05), 2)
"""The detection thresholds :func:`choose_threshold` tries."""


def choose_threshold(found, truths, n_classes: int, *, min_boxes: int = 20) -> float | None:
    """The score threshold (of :data:`THRESHOLDS`) that maximises the pooled F1 at IoU 0.5
    of the detections ``found`` (:class:`Detected`, one per image) against ``truths`` (boxes,
    classes), the lowest of equals; None with fewer than ``min_boxes`` true boxes (too few
    to choose by)."""
    from loop.core.boxes import detection_counts

    if sum(len(t[0]) for t in truths) < min_boxes:
        return None
    best, chosen = -1.0, None
    for t in THRESHOLDS:
        tp = fp = fn = 0
        for d, (boxes, classes) in zip(found, truths, strict=True):
            keep = d.scores >= t
            c = detection_counts(
                boxes, classes, d.boxes[keep], d.classes[keep], d.scores[keep], n_classes
            )
            tp, fp, fn = tp + c["tp"].sum(), fp + c["fp"].sum(), fn + c["fn"].sum()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        if f1 > best + 1e-9:
            best, chosen = f1, float(t)
    return chosen
