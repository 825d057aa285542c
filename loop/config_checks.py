"""The range check every section of ``loop.toml`` uses: finite, within bounds, one message."""

from __future__ import annotations

import math

from loop.errors import ConfigError

SEED = (0, 2**32 - 1)
"""The range of a seed (NumPy's 32-bit seeds)."""


def in_range(where: str, value, lo, hi, *, hint: str = "") -> None:
    """Raise :class:`ConfigError` unless ``lo <= value <= hi`` (and ``value`` is finite).

    >>> in_range("model.batch_size", 8, 1, 4096)
    >>> in_range("model.batch_size", 0, 1, 4096)
    Traceback (most recent call last):
    ...
    loop.errors.ConfigError: model.batch_size = 0: give a value from 1 to 4096
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} = {value}: give a finite number from {lo} to {hi}{hint}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where} = {value}: give a value from {lo} to {hi}{hint}")


def all_in_range(section: str, obj, bounds: dict) -> None:
    """:func:`in_range` for each ``name: (lo, hi)`` of ``bounds`` on ``obj``'s attributes."""
    for name, (lo, hi) in bounds.items():
        in_range(f"{section}.{name}", getattr(obj, name), lo, hi)


def check_basic_unet(section: str, obj, channels_choice: str) -> None:
    """The checks of a section that trains MONAI's BasicUNet on crops (``[unet]``,
    ``[detection]``): six ``features``, ``channels`` 1 or 3 (``channels_choice`` says them
    in the section's words), ``crop`` and ``tile`` multiples of 16, ``min_steps`` not above
    ``max_steps``.

    Raises
    ------
    ConfigError
        For the first of these that fails.
    """
    if len(obj.features) != 6 or any(not 1 <= f <= 1024 for f in obj.features):
        raise ConfigError(
            f"{section}.features = {list(obj.features)}: give six channel counts in 1..1024 "
            "(five encoder levels and the last decoder level)"
        )
    if obj.channels not in (1, 3):
        raise ConfigError(f"{section}.channels = {obj.channels}: choose {channels_choice}")
    for name in ("crop", "tile"):
        if getattr(obj, name) % 16:
            raise ConfigError(
                f"{section}.{name} = {getattr(obj, name)}: give a multiple of 16 "
                "(the U-Net halves it four times)"
            )
    if obj.min_steps > obj.max_steps:
        raise ConfigError(
            f"{section}.min_steps = {obj.min_steps} exceeds {section}.max_steps = {obj.max_steps}"
        )


def check_val_fraction(section: str, value: float) -> None:
    if not 0 <= value < 0.5:  # false for nan too
        raise ConfigError(f"{section}.val_fraction = {value}: give a value in [0, 0.5)")
