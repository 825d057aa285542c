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

The network and its files: :mod:`loop.models.cellpose_net`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from skimage.segmentation import relabel_sequential

from loop.config import ModelConfig
from loop.core.augment import dihedral, undo_dihedral
from loop.core.images import normalize_percentile
from loop.core.stages import stage
from loop.models.cellpose_measures import foreground_entropy, tta_disagreement
from loop.models.cellpose_net import (  # noqa: F401 (the network and its files, as cs.*)
    CELLPOSE_NAMES,
    STOCK_NBASE,
    STYLE_WIDTH,
    SmallCPnet,
    build_net,
    load,
    load_weights,
    polarity,
    pretrained_path,
    save,
)
from loop.models.cellpose_numba import core, dynamics, transforms
from loop.models.cellpose_numba import metrics as cp_metrics
from loop.models.devices import device_of, inference_batch  # noqa: F401 (cs.device_of)

# Cellpose's mask step builds sparse tensors; left implicit, torch warns about its sparse
# invariant checks on every call (a warning users cannot act on). Opting out explicitly is
# what happens anyway, without the warning.
torch.sparse.check_sparse_tensor_invariants.disable()
# "no seeds found in get_masks_torch - no masks found.": an image without objects is a result
# the loop reports itself (0 objects), not a warning to print on every such image
logging.getLogger("cellpose.dynamics").setLevel(logging.ERROR)

BRIGHTEST = 4.0  # a sparse image's brightest pixels (99.9th percentile) normalise to at most
# this: 1-99 alone made a few nuclei on a dark field inputs of 60 and wrecked training


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
    ((y, style),) = _network(net, [x], config, device)
    return _masks(y, style, config, device)


def _network(net, inputs: Sequence[np.ndarray], config: ModelConfig, device: torch.device):
    """``core.run_net``'s (y, style) of each input, all of one shape (2, M, N), in one call:
    Cellpose runs ``inference_batch`` tiles (whole images: images) a forward pass. ``y`` of
    shape (M, N, 3): dy, dx, cell-probability logits; ``style`` of shape (256,)."""
    with stage("network"):
        bsize = tile_side(inputs[0].shape[1:], config.whole_up_to)
        stack = np.stack([x.transpose(1, 2, 0) for x in inputs])
        y, style = core.run_net(net, stack, batch_size=inference_batch(device), bsize=bsize)
    return list(zip(y, style, strict=True))


def _masks(y: np.ndarray, style: np.ndarray, config: ModelConfig, device: torch.device):
    """:func:`_run`'s outputs from the network's (y, style) of one image."""
    dp, cellprob = y[..., :2].transpose(2, 0, 1), y[..., 2]
    with stage("dynamics"):  # Cellpose's flow following and mask reconstruction
        masks = dynamics.compute_masks(
            dp,
            cellprob,
            niter=200,
            cellprob_threshold=config.cellprob_threshold,
            flow_threshold=0,
            min_size=config.min_size,
            device=device,
        )
    with stage("flow check"):
        return _checked(masks, dp, cellprob, style, config, device)


TILE = 224
"""Cellpose's tile side (``core.run_net``'s ``bsize``)."""


def tile_side(shape: tuple[int, int], whole_up_to: int) -> int:
    """The tile side for ``core.run_net`` on an image of ``shape`` (M, N): the padded image's
    longer side when it is at most ``whole_up_to`` (one pass over the whole image), else
    :data:`TILE` (Cellpose's overlapping tiles).

    >>> tile_side((256, 256), 768), tile_side((520, 696), 768), tile_side((1024, 1024), 768)
    (272, 720, 224)
    >>> tile_side((256, 256), 0), tile_side((100, 100), 768)
    (224, 224)
    """
    side = padded_side(shape)
    return max(TILE, side) if side <= whole_up_to else TILE


def padded_side(shape: tuple[int, int]) -> int:
    """The longer side of an image of ``shape`` (M, N) padded as Cellpose pads it for its
    network (to a multiple of 16, plus 8 px on each side).

    >>> padded_side((256, 256)), padded_side((520, 696))
    (272, 720)
    """
    pad = transforms.get_pad_yx(*shape)
    return max(shape[0] + pad[0] + pad[1], shape[1] + pad[2] + pad[3])


def _checked(masks, dp, cellprob, style, config: ModelConfig, device):
    """:func:`_run`'s outputs after the flow check of ``masks``."""
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
    return masks, errors, cellprob, style, errors[kept]


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
    (result,) = segment_many(net, [image], config=config, tta=tta)
    return result


def segment_many(
    net, images: Sequence[np.ndarray], *, config: ModelConfig, tta: bool = False
) -> list[Segmentation]:
    """:func:`segment` of each image, the network's passes shared by images of one size,
    :func:`images_per_pass` at a time; each image's masks come from its own outputs.

    A shared pass gives outputs that differ from an image's own pass by float rounding only
    (up to ~2e-6 on the CPU), so on a GPU the masks of an image can differ in a rare pixel
    with the images it shared a pass with; one image a pass (the CPU's default) gives the
    same masks whatever else is segmented.
    """
    device, invert = net.device, polarity(net)
    by_shape: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(np.shape(image)[:2], []).append(i)
    groups = [
        members[start : start + per_pass]
        for shape, members in by_shape.items()
        for per_pass in [images_per_pass(config, device, shape)]
        for start in range(0, len(members), per_pass)
    ]
    out: list = [None] * len(images)
    for group in sorted(groups):  # in the images' order, as far as sizes allow
        with stage("normalise"):
            inputs = [to_input(images[i], invert=invert) for i in group]
        for i, x, (y, style) in zip(group, inputs, _network(net, inputs, config, device)):
            out[i] = _segmentation(net, x, _masks(y, style, config, device), config, tta)
    return out


def images_per_pass(
    config: ModelConfig, device: torch.device, shape: tuple[int, int] = (256, 256)
) -> int:
    """Images of ``shape`` (M, N) that share a forward pass: ``config.images_per_pass``, or
    when 0, one on the CPU and on a GPU as many as hold the pixels of
    :func:`inference_batch` (64) images of 256 x 256, so that large images do not exhaust a
    smaller GPU's memory (11 of 520 x 696).

    >>> from loop.config import ModelConfig
    >>> cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    >>> images_per_pass(ModelConfig(), cpu), images_per_pass(ModelConfig(), gpu)
    (1, 64)
    >>> images_per_pass(ModelConfig(), gpu, (520, 696))
    11
    >>> images_per_pass(ModelConfig(images_per_pass=4), cpu)
    4
    """
    if config.images_per_pass:
        return config.images_per_pass
    if device.type != "cuda":
        return 1
    batch = inference_batch(device, whole=True)
    return max(1, min(batch, batch * 256 * 256 // (shape[0] * shape[1])))


def _segmentation(net, x: np.ndarray, found, config: ModelConfig, tta: bool) -> Segmentation:
    """The :class:`Segmentation` of one input ``x`` (2, M, N) from :func:`_run`'s outputs
    ``found`` on it; with ``tta``, its 3 flipped copies segmented too."""
    masks, errors, cellprob, style, object_errors = found
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
            m, *_ = _run(net, dihedral(x, code), config, net.device)
            variants.append(undo_dihedral(m, code))
        measures["tta"], measures["count"] = tta_disagreement(variants)
    return Segmentation(masks, cellprob, style, measures, object_errors)
