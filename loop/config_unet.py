"""The ``[unet]`` section of ``loop.toml``: the U-Net that ``loop train`` fits for semantic
segmentation (:mod:`loop.models.unet`)."""

from __future__ import annotations

from dataclasses import dataclass

from loop.config_checks import all_in_range, check_basic_unet
from loop.errors import ConfigError


@dataclass(frozen=True)
class UNetConfig:
    """MONAI's ``BasicUNet`` (2-D), trained on random crops with a Dice + cross-entropy loss
    and predicted by sliding windows (semantic segmentation)."""

    features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    """Channels of the 5 encoder levels and of the last decoder level (BasicUNet's six)."""
    channels: int = 1
    """Input channels: 1 (colour images are turned grey) or 3 (grey images repeated)."""
    dropout: float = 0.1
    crop: int = 192
    """Side of the square training crops (a multiple of 16)."""
    batch_size: int = 4
    epochs: int = 40
    """Passes over the labeled images (in crops): steps = epochs x images / batch, bounded."""
    min_steps: int = 200
    max_steps: int = 1200
    warm_start: bool = True
    warm_fraction: float = 0.5
    learning_rate: float = 0.002
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    keep_tolerance: float = 0.02
    tile: int = 256
    """Side of the sliding windows that predict an image (a multiple of 16)."""
    overlap: float = 0.25
    seed: int = 0

    def __post_init__(self):
        check_basic_unet("unet", self, "1 (grey) or 3 (colour)")
        if not 0 <= self.val_fraction < 0.5:
            raise ConfigError(f"unet.val_fraction = {self.val_fraction}: give a value in [0, 0.5)")
        bounds = {
            "dropout": (0.0, 0.9),
            "crop": (32, 2048),
            "batch_size": (1, 256),
            "epochs": (1, 10_000),
            "min_steps": (1, 1_000_000),
            "max_steps": (1, 1_000_000),
            "warm_fraction": (0.01, 1.0),
            "learning_rate": (1e-7, 1.0),
            "weight_decay": (0.0, 1.0),
            "keep_tolerance": (-1.0, 1.0),
            "tile": (32, 4096),
            "overlap": (0.0, 0.9),
            "seed": (0, 2**32 - 1),
        }
        all_in_range("unet", self, bounds)
