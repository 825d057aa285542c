"""The Cellpose 3 network and its files: a fresh network of given widths, weights loaded
(ours, or stock Cellpose 3 weights) and saved (a Cellpose-compatible ``state_dict`` and a JSON
of the widths and input polarity beside it).

Saved models: ``<name>.pt`` is a plain ``state_dict`` (as ``CPnet.save_model`` writes it) and
``<name>.json`` beside it records the widths. A stock-width model loads in stock Cellpose with
``CellposeModel(pretrained_model="<name>.pt")``; a narrow one with
``net = CPnet(nbase, 3, 3); net.load_model("<name>.pt")`` (see docs/guide/models.md).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from cellpose import resnet_torch

from loop.core.files import atomic_path
from loop.errors import ModelError

STYLE_WIDTH = 256  # core.run_net assumes a 256-wide style vector
STOCK_NBASE = (2, 32, 64, 128, 256)
CELLPOSE_NAMES = ("cyto", "cyto2", "cyto3", "nuclei", "tissuenet_cp3", "livecell_cp3")


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
        from loop.models.cellpose_numba import cellpose_models

        cp_models = cellpose_models()
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
