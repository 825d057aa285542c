"""The range check every section of ``loop.toml`` uses: finite, within bounds, one message."""

from __future__ import annotations

import math

from loop.errors import ConfigError


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
