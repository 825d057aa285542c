"""Instance segmentation with a Cellpose 3 network, trained by a small seeded loop of ours.

Why Cellpose 3 (3.1.1.2) and not Cellpose 4: Cellpose-SAM is a 305 M-parameter ViT that
cannot be trained from scratch, needs its weights (downloaded) and torchvision, and takes
~14 s per 256² image on 2 CPU cores. Cellpose 3's CPnet trains from scratch on a CPU in
minutes at a reduced width, and fine-tunes the stock models (cyto3, nuclei) when the user
has them.

Why our own training loop: ``cellpose.train.train_seg`` reseeds NumPy's global generator
every epoch (``np.random.seed(iepoch)``), so its crops ignore any seed, and it rescales images
by their mean object diameter. Here crops, flips and photometric augmentation are drawn from
one ``numpy.random.Generator`` and images stay at their native scale (diam_labels =
diam_mean, so inference never rescales). The network, the flow targets
(``dynamics.masks_to_flows``), the loss (MSE on 5x flows + BCE on the cell probability, as
``train._loss_fn_seg``), tiled inference (``core.run_net``) and mask reconstruction
(``dynamics.compute_masks``) are Cellpose's own.

Saved models: ``<name>.pt`` is a plain ``state_dict`` (as ``CPnet.save_model`` writes it) and
``<name>.json`` beside it records the widths. A stock-width model loads in stock Cellpose with
``CellposeModel(pretrained_model="<name>.pt")``; a narrow one with
``net = CPnet(nbase, 3, 3); net.load_model("<name>.pt")`` (see docs/guide/models.md).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from cellpose import core, dynamics, resnet_torch
from cellpose import metrics as cp_metrics
from skimage.segmentation import relabel_sequential

from loop.config import ModelConfig
from loop.core.augment import dihedral, dihedral_flows, undo_dihedral
from loop.core.files import atomic_path
from loop.core.images import normalize_percentile
from loop.errors import ModelError
from loop.models.cellpose_measures import (
    cell_probability,
    flip_disagreement,
    foreground_entropy,
    probability_entropy,
    tta_disagreement,
)
from loop.models.devices import device_of  # noqa: F401 (cs.device_of)

# Cellpose's mask step builds sparse tensors; left implicit, torch warns about its sparse
# invariant checks on every call (a warning users cannot act on). Opting out explicitly is
# what happens anyway, without the warning.
torch.sparse.check_sparse_tensor_invariants.disable()
# "no seeds found in get_masks_torch - no masks found.": an image without objects is a result
# the loop reports itself (0 objects), not a warning to print on every such image
logging.getLogger("cellpose.dynamics").setLevel(logging.ERROR)

STYLE_WIDTH = 256  # core.run_net assumes a 256-wide style vector
STOCK_NBASE = (2, 32, 64, 128, 256)
CELLPOSE_NAMES = ("cyto", "cyto2", "cyto3", "nuclei", "tissuenet_cp3", "livecell_cp3")
BRIGHTEST = 4.0  # a sparse image's brightest pixels (99.9th percentile) normalise to at most
# this: 1-99 alone made a few nuclei on a dark field inputs of 60 and wrecked training


class SmallCPnet(resnet_torch.CPnet):
    """Cellpose's CPnet whose style vector is zero-padded to 256 for ``core.run_net``."""

    def forward(self, data):
        y, style, t0 = super().forward(data)
        if style.shape[1] < STYLE_WIDTH:
            style = F.pad(style, (0, STYLE_WIDTH - style.shape[1]))
        return y, style, t0


def build_net(
    nbase: Sequence[int], device: torch.device, *, seed: int = 0, invert: str = "never"
) -> resnet_torch.CPnet:
    """A fresh network of widths ``nbase`` (3 outputs: dy, dx, cell probability), its initial
    weights drawn from ``seed`` (torch's global generator is left as it was); ``invert`` is
    the input polarity it is trained and used with (:func:`to_input`), saved beside it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallCPnet(list(nbase), 3, 3, mkldnn=False)
    # native scale: Cellpose's eval would rescale by diam_mean / diam_labels
    net.diam_labels.data = net.diam_mean.data.clone()
    net.invert = invert
    return net.to(device)


def load_weights(
    path: str | Path, nbase: Sequence[int], device: torch.device, *, invert: str = "never"
):
    """Load a Cellpose 3 ``state_dict`` into a network of widths ``nbase``.

    Raises
    ------
    ModelError
        When the file is missing, is Cellpose-4 (SAM) weights, or does not fit ``nbase``.
    """
    path = Path(path)
    if not path.is_file():
        # Cellpose silently falls back to a download for a missing path: check first
        raise ModelError(f"no model weights at {path}: give an existing Cellpose 3 weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise ModelError(f"{path} is not a PyTorch weights file ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state_dict")
    if "W2" in state or any(k.startswith("encoder.") for k in state):
        raise ModelError(
            f"{path} holds Cellpose 4 (Cellpose-SAM) weights; loop uses Cellpose 3 networks: "
            "give cyto3/nuclei or weights trained with cellpose<4"
        )
    net = build_net(nbase, device, invert=invert)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path} does not fit a network of widths {list(nbase)}: set model.nbase to the "
            f"widths it was trained with ({str(exc).splitlines()[0]})"
        ) from exc
    return net


def pretrained_path(name_or_path: str) -> Path:
    """The weights file of a named Cellpose model (downloaded by Cellpose when missing) or a
    path.

    Raises
    ------
    ModelError
        When the name is unknown, the download fails (no internet) or the path is missing.
    """
    if name_or_path in CELLPOSE_NAMES:
        from cellpose import models as cp_models

        try:
            # downloads into ~/.cellpose/models when missing
            return Path(cp_models.model_path(name_or_path))
        except OSError as exc:
            raise ModelError(
                f"could not get the Cellpose model {name_or_path!r} ({exc}); it is downloaded "
                "from the internet on first use: run once on a connected machine or give a path"
            ) from exc
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model.pretrained = {name_or_path!r} is neither a Cellpose model name "
            f"({', '.join(CELLPOSE_NAMES)}) nor an existing file"
        )
    return path


def bright_background(grey: np.ndarray) -> bool:
    """Whether a percentile-normalised grey image (shape (M, N)) has a bright background:
    its median above one half (stained tissue and brightfield; fluorescence is dark).

    >>> import numpy as np
    >>> bright_background(np.full((4, 4), 0.9)), bright_background(np.full((4, 4), 0.1))
    (True, False)
    """
    return bool(np.median(grey) > 0.5)


def to_input(image: np.ndarray, *, invert: str = "never") -> np.ndarray:
    """The network input of an image: normalised grey plus Cellpose's empty second channel.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype. Colour images are averaged over their first three channels.
    invert : {"never", "always", "auto"}
        Invert the normalised grey (1 - x); ``auto`` inverts only an image whose background
        is bright (:func:`bright_background`), so that dark nuclei on a bright stain become
        bright on dark, as in fluorescence.

    Returns
    -------
    ndarray of shape (2, M, N), float32
    """
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].astype(np.float32).mean(axis=-1)
    grey = normalize_percentile(image, 1, 99, brightest=BRIGHTEST)
    if invert == "always" or (invert == "auto" and bright_background(grey)):
        grey = 1.0 - grey
    return np.stack([grey, np.zeros_like(grey)]).astype(np.float32)


# --- inference ------------------------------------------------------------------------------


@dataclass
class Segmentation:
    """One image's prediction and the per-image measures that strategies rank by."""

    masks: np.ndarray | None  # (M, N) uint16/uint32; None from fast_measures
    cellprob: np.ndarray  # (M, N) logits
    style: np.ndarray  # (nbase[-1],) L2-normalised
    measures: dict[str, float]
    object_errors: np.ndarray | None = None  # (K,): flow error of each object, labels ascending


def _run(net, x: np.ndarray, config: ModelConfig, device: torch.device):
    """Network, masks and flow errors of one (2, M, N) input: of every candidate object, and
    of the objects kept (label 1..K in order).

    Masks are computed without Cellpose's flow check, then the same check
    (``dynamics.remove_bad_flow_masks``: drop objects whose flow error exceeds
    ``flow_threshold``) is applied from the one flow-error computation that also serves as
    the uncertainty measure (mean over all candidate objects).
    """
    y, style = core.run_net(net, x.transpose(1, 2, 0)[None], batch_size=8, bsize=224)
    dp, cellprob = y[0, ..., :2].transpose(2, 0, 1), y[0, ..., 2]
    masks = dynamics.compute_masks(
        dp,
        cellprob,
        niter=200,
        cellprob_threshold=config.cellprob_threshold,
        flow_threshold=0,
        min_size=config.min_size,
        device=device,
    )
    present = np.unique(masks)[1:]
    if present.size:
        errors, _ = cp_metrics.flow_error(masks, dp, device=device)
        errors = errors[present - 1]
        kept = np.ones(present.size, bool)
        if config.flow_threshold and config.flow_threshold > 0:
            kept = errors <= config.flow_threshold
            if not kept.all():
                masks = masks.copy()
                masks[np.isin(masks, present[~kept])] = 0
                masks = relabel_sequential(masks)[0]
    else:
        errors, kept = np.zeros(0), np.zeros(0, bool)
    return masks, errors, cellprob, style[0], errors[kept]


FLIP = 3  # the dihedral code of the flipped copy: rows and columns (180 degrees), its own inverse
BATCH_PIXELS = 8 * 256 * 256  # inputs per forward pass: as many images as fit this many pixels


def _padded(x: np.ndarray, multiple: int = 16) -> np.ndarray:
    """``x`` (C, M, N) zero-padded at the bottom and right to multiples of ``multiple``."""
    pad_y, pad_x = (-x.shape[1]) % multiple, (-x.shape[2]) % multiple
    return np.pad(x, ((0, 0), (0, pad_y), (0, pad_x))) if pad_y or pad_x else x


def forward(net, inputs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The network's raw outputs on whole images, batched (no tiling, no mask reconstruction).

    Parameters
    ----------
    inputs : sequence of ndarray of shape (2, M, N)
        Network inputs (:func:`to_input`); any sizes: images of one size share a batch of at
        most :data:`BATCH_PIXELS` pixels.

    Returns
    -------
    list of (output, style)
        ``output`` of shape (3, M, N): dy, dx (5x flows) and cell-probability logits;
        ``style`` of shape (nbase[-1],), as the network computes it.
    """
    device = next(net.parameters()).device
    width = net.nbase[-1]
    out: list = [None] * len(inputs)
    by_shape: dict[tuple, list[int]] = {}
    for i, x in enumerate(inputs):
        by_shape.setdefault(x.shape, []).append(i)
    net.eval()
    with torch.inference_mode():
        for shape, members in by_shape.items():
            per_batch = max(1, BATCH_PIXELS // (shape[1] * shape[2]))
            for start in range(0, len(members), per_batch):
                part = members[start : start + per_batch]
                x = np.stack([_padded(inputs[i]) for i in part])
                y, style, _ = net(torch.from_numpy(x).to(device))
                y = y[:, :, : shape[1], : shape[2]].float().cpu().numpy()
                style = style[:, :width].float().cpu().numpy()
                for j, i in enumerate(part):
                    out[i] = (y[j], style[j])
    return out


def flipped_outputs(net, images: Sequence[np.ndarray]):
    """The network's outputs on each image and on its copy flipped by :data:`FLIP` (flipped
    back, flows included), batched: ``(y, z, style)`` per image, ``y`` and ``z`` of shape
    (3, M, N)."""
    invert = polarity(net)
    inputs = []
    for image in images:
        x = to_input(image, invert=invert)
        inputs += [x, dihedral(x, FLIP)]
    outputs = forward(net, inputs)
    for i in range(len(images)):
        (y, style), (z, _) = outputs[2 * i], outputs[2 * i + 1]
        yield y, np.concatenate([dihedral_flows(z[:2], FLIP), dihedral(z[2:], FLIP)]), style


def fast_measures(net, images: Sequence[np.ndarray], *, config: ModelConfig) -> list[Segmentation]:
    """Measures from network outputs only: two forward passes per image (the image and its
    flipped copy, batched), no mask reconstruction, so the whole pool can be ranked.

    Returns
    -------
    list of Segmentation
        ``masks`` None; ``cellprob`` of the image; ``style`` L2-normalised; ``measures``:
        ``flip`` (:func:`flip_disagreement`), ``entropy`` (:func:`probability_entropy` of the
        mean of both cell probabilities) and ``n_objects`` (connected foreground
        components of at least ``min_size`` pixels: touching objects count once, an
        estimate of the annotation work).
    """
    from scipy import ndimage

    result = []
    for y, z, style in flipped_outputs(net, images):
        mean_prob = 0.5 * (cell_probability(y[2]) + cell_probability(z[2]))
        labels, n = ndimage.label(mean_prob > 0.5)
        sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0)
        result.append(
            Segmentation(
                masks=None,
                cellprob=y[2],
                style=style / (np.linalg.norm(style) or 1.0),
                measures={
                    "flip": flip_disagreement(y, z),
                    "entropy": probability_entropy(mean_prob),
                    "n_objects": float((sizes >= config.min_size).sum()),
                },
            )
        )
    return result


def segment(net, image: np.ndarray, *, config: ModelConfig, tta: bool = False) -> Segmentation:
    """Predict instances in one image and measure how unsure the model is.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
    tta : bool
        Also predict the 3 flipped copies (4x the time) for ``tta`` and ``count`` measures.

    Returns
    -------
    Segmentation
        ``measures``: ``flow_error`` (mean flow error of the candidate objects, Cellpose's
        own quality check), ``entropy`` (:func:`foreground_entropy`), ``n_objects``; with
        ``tta`` also ``tta`` and ``count`` (see :func:`tta_disagreement`).
    """
    device = net.device
    x = to_input(image, invert=polarity(net))
    masks, errors, cellprob, style, object_errors = _run(net, x, config, device)
    flow_err = float(np.mean(errors)) if errors.size else 0.0
    width = net.nbase[-1]
    style = np.asarray(style[:width], dtype=np.float32)
    style = style / (np.linalg.norm(style) or 1.0)
    measures = {
        "flow_error": flow_err,
        "entropy": foreground_entropy(cellprob),
        "n_objects": float(len(np.unique(masks)) - 1),
    }
    if tta:
        variants = [masks]
        for code in (1, 2, 3):
            m, *_ = _run(net, dihedral(x, code), config, device)
            variants.append(undo_dihedral(m, code))
        measures["tta"], measures["count"] = tta_disagreement(variants)
    return Segmentation(masks, cellprob, style, measures, object_errors)


# --- files ---------------------------------------------------------------------------------


def save(net, path: str | Path, *, nbase: Sequence[int]) -> Path:
    """Write the weights (``path``, a Cellpose-compatible state_dict) and ``path.json``."""
    path = Path(path)
    # serialised in memory, written below: torch's own file writer fails on a full disk with
    # a RuntimeError that names neither the cause nor the file
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    meta = {"format": "cellpose3-cpnet", "nbase": list(nbase), "nout": 3, "invert": polarity(net)}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return path


def polarity(net) -> str:
    """The input polarity a network was trained with (``never`` for one loaded from weights
    without a record of it, as stock Cellpose models)."""
    return getattr(net, "invert", "never")


def load(path: str | Path, device: torch.device):
    """Load a model written by :func:`save` (widths and input polarity from its JSON; models
    saved before the polarity was recorded use ``never``), or stock-width Cellpose 3 weights
    (a file without a JSON beside it, e.g. cyto3 or a model trained by Cellpose)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return load_weights(
        path, meta.get("nbase", list(STOCK_NBASE)), device, invert=meta.get("invert", "never")
    )
