"""The ``[model]`` section of ``loop.toml``: the Cellpose model that ``loop train`` fits for
instance segmentation (:mod:`loop.models.cellpose_family`)."""

from __future__ import annotations

from dataclasses import dataclass

from loop.config_checks import SEED, all_in_range, check_val_fraction
from loop.errors import ConfigError

INVERT_MODES = ("auto", "never", "always")
MODEL_BOUNDS = {
    "batch_size": (1, 4096),
    "epochs": (1, 10**6),
    "min_steps": (0, 10**7),
    "max_steps": (1, 10**7),
    "warm_fraction": (0.0, 1.0),
    "learning_rate": (1e-9, 10.0),
    "weight_decay": (0.0, 1.0),
    "keep_tolerance": (-1.0, 1.0),  # below 0: a new model must gain that much
    "flow_threshold": (0.0, 100.0),
    "cellprob_threshold": (-100.0, 100.0),
    "min_size": (-1, 10**8),
    "seed": SEED,
    "predict_tile": (32, 65536),
    "predict_tile_above": (32, 10**6),
    "predict_tile_overlap": (0, 4096),
    "whole_up_to": (0, 65536),
    "images_per_pass": (0, 1024),
}


@dataclass(frozen=True)
class ModelConfig:
    """The Cellpose segmentation model of ``loop train`` (task = segmentation)."""

    pretrained: str = ""
    """Start from pretrained weights: a Cellpose model name (cyto3, nuclei; downloaded by
    Cellpose, needs the internet) or a path to a Cellpose 3 weights file. Empty = train a small
    network from scratch."""
    nbase: tuple[int, ...] = (2, 8, 16, 32, 64)
    """Widths of the network (first = input channels, 2). Stock Cellpose: [2, 32, 64, 128, 256]."""
    crop: int = 128
    batch_size: int = 8
    epochs: int = 100
    """Passes over the labeled images (each pass draws one crop per image)."""
    min_steps: int = 300
    max_steps: int = 1500
    warm_start: bool = True
    """Continue from the previous accepted model, with ``warm_fraction`` of the steps."""
    warm_fraction: float = 0.4
    learning_rate: float = 0.005
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    """Labeled images kept out of training to validate (never test images)."""
    keep_tolerance: float = 0.02
    """A new model is recorded as rejected (the previous one stays in use) when its
    validation AP@0.5 is lower than the previous one's by more than this beyond noise: even
    the upper end of the one-sided 95% interval of the per-image paired difference is below
    ``-keep_tolerance``."""
    retry_blind: bool = True
    """A new model that finds no object on any of (up to 4 of) its own training images is
    trained once more from scratch, with the next seed and twice the steps, and the record
    says so: a cold start on a few labels sometimes collapses to predicting background."""
    invert: str = "auto"
    """Input polarity: ``auto`` inverts an image whose background is bright (the median of its
    normalised grey level above one half: stained tissue, brightfield), so that objects are
    bright on dark in every modality, as in fluorescence; ``never`` or ``always`` (Cellpose's
    ``invert``). A model keeps the mode it was trained with."""
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0
    min_size: int = 15
    seed: int = 0
    predict_tile: int = 2048
    """``loop predict`` / ``measure``: an image with a side longer than ``predict_tile_above``
    is segmented in tiles of at most this side that share ``predict_tile_overlap`` pixels
    (more than an object's diameter), and their labels are stitched, so that memory stays
    bounded by the tile, not the image."""
    predict_tile_above: int = 4096
    predict_tile_overlap: int = 64
    whole_up_to: int = 768
    """Inference: the network sees an image whose side, padded as Cellpose pads it (to a
    multiple of 16, plus 8 px on each side), is at most this many pixels in one pass; larger
    images in Cellpose's overlapping tiles of 224 px, their outputs blended. 0: always tiles
    (Cellpose's own inference). One pass is 1.7-4.9x faster for the network on images of 256
    to 696 px, at AP@0.5 within 0.006 of the tiles' (paired over 445 DSB images, 2026-12-07)."""
    images_per_pass: int = 0
    """Inference (``loop measure``, ``predict``, ``score``): images of one size segmented
    together share a forward pass of the network, this many at most; each image's masks come
    from its own outputs. 0: automatic: on a GPU as many as hold the pixels of 64 images of
    256 x 256 (64 of those, 11 of 520 x 696); one at a time on the CPU, where sharing
    gains nothing (on 2 cores, passes of 1 or 2 images of 256 px took about as long an image,
    passes of 8 about twice as long; 2026-12-07) and one image a pass keeps each image's
    outputs the same whatever else is segmented. A worker's task (or, in one process, 16
    images in a row) is what can be shared."""
    fill_gpu: bool = True
    """On CUDA, settings left at their defaults take values that fill a GPU: a network trained
    from scratch has the stock Cellpose widths [2, 32, 64, 128, 256] and batches of 32 crops
    (recorded with the model as ``on_device``); false: as written, on any device."""

    def tiling(self):
        """The :class:`loop.core.tiles.Tiling` of ``predict_tile*``."""
        return _tiling_of(self)

    def __post_init__(self):
        if (
            not 3 <= len(self.nbase) <= 8
            or self.nbase[0] != 2
            or not all(1 <= w <= 1024 for w in self.nbase)
        ):
            raise ConfigError(
                f"model.nbase = {list(self.nbase)}: give at least 3 widths starting with 2 "
                "(two input channels), at most 8, each from 1 to 1024, e.g. [2, 8, 16, 32, 64]"
            )
        if self.crop % 16 or not 32 <= self.crop <= 2048:
            raise ConfigError(f"model.crop = {self.crop}: give a multiple of 16 from 32 to 2048")
        if self.invert not in INVERT_MODES:
            raise ConfigError(
                f"model.invert = {self.invert!r}: give one of {', '.join(INVERT_MODES)}"
            )
        check_val_fraction("model", self.val_fraction)
        self.tiling()  # checks the predict_tile* settings
        all_in_range("model", self, MODEL_BOUNDS)
        if self.min_steps > self.max_steps:
            raise ConfigError(
                f"model.min_steps = {self.min_steps} > model.max_steps = {self.max_steps}"
            )


def _tiling_of(model: ModelConfig):
    from loop.core.tiles import Tiling

    try:
        return Tiling(
            tile=model.predict_tile,
            above=model.predict_tile_above,
            overlap=model.predict_tile_overlap,
        )
    except ConfigError as exc:
        raise ConfigError(
            f"model.predict_tile = {model.predict_tile}, predict_tile_above = "
            f"{model.predict_tile_above}, predict_tile_overlap = {model.predict_tile_overlap}: "
            f"{str(exc).split(': ', 1)[1]}"
        ) from None
