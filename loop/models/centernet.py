"""A centre-heatmap detector (after CenterNet, Zhou et al. 2019, "Objects as Points"): MONAI's
``BasicUNet`` outputs, at the working scale, one heatmap per class whose peaks are the
objects' centres, and two maps of each object's log height and log width read at its peak.

Training is in :mod:`loop.models.centernet_train`. Prediction runs MONAI's sliding
windows on the image and its mirror image in one batch; their mean heatmap gives the peaks
(3 x 3 maxima, then non-maximum suppression), their disagreement the model's doubt.

Model files are those of :mod:`loop.models.unet` (``torch.save`` of meta and weights, read back
with ``weights_only=True``) with their own format name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from loop.config_detection import DetectionConfig
from loop.core.boxes import box_iou
from loop.models.unet import _placed, load_saved, to_input

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
        "shape": config.shape,
        "point_radius": config.point_radius,
    }
    return _placed(net, device or "cpu")


def load(path, device):
    """Read a detector written by :func:`loop.models.unet.save` (its threshold, chosen on
    validation images, with it).

    Raises
    ------
    ModelError
        When the file is missing, not readable as such a model, or of another format.
    """

    def rebuild(meta):
        config = DetectionConfig(
            features=tuple(meta["features"]),
            channels=meta["channels"],
            dropout=meta["dropout"],
            scale=meta["scale"],
            shape=meta.get("shape", "box"),
            point_radius=meta.get("point_radius", 8.0),
        )
        net = build(config, int(meta["classes"]), seed=0)
        if meta.get("threshold") is not None:  # chosen on validation images
            net.meta["threshold"] = float(meta["threshold"])
        return net

    return load_saved(path, device, fmt=FORMAT, what="a detector", rebuild=rebuild)


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
    points = net.meta.get("shape") == "point"
    if points:  # spots of the point radius: suppressed as boxes, then collapsed to points
        r = float(net.meta["point_radius"])
        h, w = np.full(len(rows), 2 * r / fy), np.full(len(rows), 2 * r / fx)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * [fx, fy, fx, fy]
    boxes = np.clip(boxes, 0, [pixels.shape[1], pixels.shape[0]] * 2)
    keep = nms(boxes, scores, config.nms_iou) if len(scores) else np.zeros(0, np.int64)
    boxes, scores, k_idx = boxes[keep], scores[keep], k_idx[keep]
    if points:
        centres = np.stack([cx[keep], cy[keep]], axis=1) * [fx, fy]
        boxes = np.concatenate([centres, centres], axis=1)
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


def choose_threshold(
    found, truths, n_classes: int, *, min_boxes: int = 20, radius: float | None = None
) -> float | None:
    """The score threshold (of :data:`THRESHOLDS`) that maximises the pooled F1 at IoU 0.5
    of the detections ``found`` (:class:`Detected`, one per image) against ``truths`` (boxes,
    classes), the lowest of equals; None with fewer than ``min_boxes`` true boxes (too few
    to choose by)."""
    from loop.core.boxes import counts_at, detection_counts

    if sum(len(t[0]) for t in truths) < min_boxes:
        return None
    matched = [  # once per image: each threshold reads its matches (counts_at)
        detection_counts(*truth, d.boxes, d.classes, d.scores, n_classes, radius=radius)
        for d, truth in zip(found, truths, strict=True)
    ]
    best, chosen = -1.0, None
    for t in THRESHOLDS:
        tp = fp = fn = 0
        for counts in matched:
            c = counts_at(counts, t)
            tp, fp, fn = tp + c["tp"].sum(), fp + c["fp"].sum(), fn + c["fn"].sum()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        if f1 > best + 1e-9:
            best, chosen = f1, float(t)
    return chosen
