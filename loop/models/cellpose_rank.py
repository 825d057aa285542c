"""The whole-image forward passes that rank a pool with a Cellpose network: its outputs on
each image and on a flipped copy, batched across images, and the cheap measures computed from
them (:func:`fast_measures`), with no mask reconstruction. On a GPU the measures are computed
where the outputs are; only scalars, the foreground and the cell probability reach the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from loop.config import ModelConfig
from loop.core.augment import dihedral
from loop.core.stages import stage
from loop.models.cellpose_measures import (
    cell_probability,
    flip_disagreement,
    namespace,
    probability_entropy,
)
from loop.models.cellpose_net import polarity
from loop.models.cellpose_numba import transforms
from loop.models.cellpose_seg import Segmentation, to_input
from loop.models.devices import inference_batch

FLIP = 3  # the dihedral code of the flipped copy: rows and columns (180 degrees), its own inverse
BATCH_PIXELS = 256 * 256  # times inference_batch: the pixels of a forward pass (whole images)


def forward(
    net, inputs: Sequence[np.ndarray], *, keep: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The network's raw outputs on whole images, batched (no tiling, no mask reconstruction).

    Parameters
    ----------
    inputs : sequence of ndarray of shape (2, M, N)
        Network inputs (:func:`to_input`); any sizes: images of one size share a batch of at
        most :data:`BATCH_PIXELS` x :func:`inference_batch` pixels (2 or 64 of 256 x 256).
    keep : bool
        Leave each ``output`` a float32 tensor on the network's device (a GPU's measures are
        then computed there) instead of a NumPy array.

    Returns
    -------
    list of (output, style)
        ``output`` of shape (3, M, N): dy, dx (5x flows) and cell-probability logits;
        ``style`` of shape (nbase[-1],), as the network computes it (NumPy).
    """
    device = next(net.parameters()).device
    width, batch = net.nbase[-1], inference_batch(device, whole=True)
    out: list = [None] * len(inputs)
    by_shape: dict[tuple, list[int]] = {}
    for i, x in enumerate(inputs):
        by_shape.setdefault(x.shape, []).append(i)
    net.eval()
    with torch.inference_mode():
        for shape, members in by_shape.items():
            per_batch = max(1, BATCH_PIXELS * batch // (shape[1] * shape[2]))
            # padded as Cellpose pads for its network (to multiples of 16, plus 8 px on every
            # side): without the border the outputs near the edge are worse (masks from them:
            # AP@0.5 0.760 against 0.847 on 40 DSB images); with it, core.run_net's outputs
            top, bottom, left, right = transforms.get_pad_yx(shape[1], shape[2])
            pad = ((0, 0), (0, 0), (top, bottom), (left, right))
            for start in range(0, len(members), per_batch):
                part = members[start : start + per_batch]
                x = np.pad(np.stack([inputs[i] for i in part]), pad)
                with stage("network"):
                    y, style, _ = net(torch.from_numpy(x).to(device))
                    y = y[:, :, top : top + shape[1], left : left + shape[2]].float()
                    y = y if keep else y.cpu().numpy()
                    style = style[:, :width].float().cpu().numpy()
                for j, i in enumerate(part):
                    out[i] = (y[j], style[j])
    return out


def flipped_outputs(net, images: Sequence[np.ndarray], *, keep: bool = False):
    """The network's outputs on each image and on its copy flipped by :data:`FLIP` (flipped
    back, flows included), batched: ``(y, z, style)`` per image, ``y`` and ``z`` of shape
    (3, M, N); with ``keep``, tensors on the network's device (:func:`forward`)."""
    invert = polarity(net)
    inputs = []
    with stage("normalise"):
        for image in images:
            x = to_input(image, invert=invert)
            inputs += [x, dihedral(x, FLIP)]
    outputs = forward(net, inputs, keep=keep)
    for i in range(len(images)):
        (y, style), (z, _) = outputs[2 * i], outputs[2 * i + 1]
        with stage("measures"):  # the flipped copy's outputs flipped back
            z = _unflipped(z)
        yield y, z, style


def _unflipped(z):
    """Outputs (3, M, N; array or tensor) on an image flipped by :data:`FLIP` (rows and
    columns), flipped back: both axes reversed and both flow components negated, as
    :func:`loop.core.augment.dihedral_flows` does.

    >>> from loop.core.augment import dihedral_flows
    >>> z = np.arange(12.0).reshape(3, 2, 2)
    >>> expected = np.concatenate([dihedral_flows(z[:2], FLIP), dihedral(z[2:], FLIP)])
    >>> bool((_unflipped(z) == expected).all())
    True
    """
    xp = namespace(z)
    z = xp.flip(z, (-2, -1))
    return xp.concatenate([-z[:2], z[2:]])


def fast_measures(
    net, images: Sequence[np.ndarray], *, config: ModelConfig, keep: bool | None = None
) -> list[Segmentation]:
    """Measures from network outputs only: two forward passes per image (the image and its
    flipped copy, batched), no mask reconstruction, so the whole pool can be ranked.

    Parameters
    ----------
    keep : bool, optional
        Compute the measures on the network's device (:func:`forward`'s ``keep``); default:
        there when it is a GPU, from NumPy arrays on the CPU.

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
    if keep is None:  # on a GPU the measures are computed there: only the foreground, the
        keep = net.device.type != "cpu"  # cell probability and scalars reach the host
    for y, z, style in flipped_outputs(net, images, keep=keep):
        with stage("measures"):
            mean_prob = 0.5 * (cell_probability(y[2]) + cell_probability(z[2]))
            labels, n = ndimage.label(_host(mean_prob > 0.5))
            sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0)
            result.append(
                Segmentation(
                    masks=None,
                    cellprob=_host(y[2]),
                    style=style / (np.linalg.norm(style) or 1.0),
                    measures={
                        "flip": flip_disagreement(y, z),
                        "entropy": probability_entropy(mean_prob),
                        "n_objects": float((sizes >= config.min_size).sum()),
                    },
                )
            )
    return result


def _host(array) -> np.ndarray:
    """``array`` as a NumPy array (a tensor copied from its device)."""
    return array if isinstance(array, np.ndarray) else array.cpu().numpy()
