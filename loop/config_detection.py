"""The ``[detection]`` section of ``loop.toml``: the detector that ``loop train`` fits for
object detection (:mod:`loop.models.centernet`)."""

from __future__ import annotations

from dataclasses import dataclass

from loop.config_checks import all_in_range, check_basic_unet
from loop.errors import ConfigError


@dataclass(frozen=True)
class DetectionConfig:
    """A centre-heatmap detector (CenterNet-style) on MONAI's ``BasicUNet``: a heatmap per
    class whose peaks are the objects' centres, and each object's height and width regressed
    at its centre; trained on random crops, predicted by sliding windows."""

    shape: str = "box"
    """What annotators draw: ``box`` (a rectangle per object) or ``point`` (a point at each
    object's centre: cheaper, for counting and locating)."""
    point_radius: float = 8.0
    """Points: a detection within this many pixels of a true point matches it (agreement,
    consensus and effort alike), and the model's heat spot has this size."""
    scale: float = 0.5
    """The images are resized by this factor before the network sees them (objects of 20 to
    200 pixels detect well at 1/2; small objects want 1)."""
    features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    """Channels of BasicUNet's 5 encoder levels and of its last decoder level."""
    channels: int = 3
    """Input channels: 3 (colour; grey images repeated) or 1 (colour turned grey)."""
    dropout: float = 0.1
    crop: int = 192
    """Side of the square training crops at the working scale (a multiple of 16)."""
    batch_size: int = 8
    epochs: int = 40
    """Passes over the labeled images (in crops): steps = epochs x images / batch, bounded."""
    min_steps: int = 300
    max_steps: int = 1000
    warm_start: bool = True
    warm_fraction: float = 0.5
    learning_rate: float = 0.002
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    keep_tolerance: float = 0.02
    threshold: float = 0.3
    """A peak of at least this score is a detection (precision, recall, F1, counts), unless
    the model chose its own (``choose_threshold``)."""
    choose_threshold: bool = True
    """Choose each model's threshold on its validation images (the F1-best of 0.10, 0.15,
    ..., 0.60; at least 20 true boxes needed), kept with the model."""
    min_score: float = 0.05
    """Peaks from this score on are kept with their score (average precision ranks them)."""
    nms_iou: float = 0.5
    """Of two boxes overlapping more than this, the lower-scored one is dropped."""
    tile: int = 256
    """Side of the sliding windows that predict an image (a multiple of 16)."""
    overlap: float = 0.25
    seed: int = 0

    def __post_init__(self):
        if self.shape not in ("box", "point"):
            raise ConfigError(f'detection.shape = {self.shape!r}: choose "box" or "point"')
        check_basic_unet("detection", self, "3 (colour) or 1 (grey)")
        if not self.min_score <= self.threshold:
            raise ConfigError(
                f"detection.min_score = {self.min_score} exceeds detection.threshold = "
                f"{self.threshold}"
            )
        bounds = {
            "scale": (0.1, 4.0),
            "point_radius": (0.5, 1000.0),
            "dropout": (0.0, 0.9),
            "crop": (32, 2048),
            "batch_size": (1, 256),
            "epochs": (1, 10_000),
            "min_steps": (1, 1_000_000),
            "max_steps": (1, 1_000_000),
            "warm_fraction": (0.01, 1.0),
            "learning_rate": (1e-7, 1.0),
            "weight_decay": (0.0, 1.0),
            "val_fraction": (0.0, 0.49),
            "keep_tolerance": (-1.0, 1.0),
            "threshold": (0.01, 0.99),
            "min_score": (0.001, 0.99),
            "nms_iou": (0.05, 1.0),
            "tile": (32, 4096),
            "overlap": (0.0, 0.9),
            "seed": (0, 2**32 - 1),
        }
        all_in_range("detection", self, bounds)
