"""Noise profiles of simulated annotators: how each one errs.

The four built-in profiles (``perfect``, ``careful``, ``average``, ``sloppy``) can be joined or
overridden by ``[noise.NAME]`` tables in ``loop.toml``; :func:`profile_named` looks a name up
in both (the study's own first). The noise model itself is in
:mod:`connectors.simulated`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loop.config_checks import in_range
from loop.errors import ConfigError


@dataclass(frozen=True)
class NoiseProfile:
    """How one simulated annotator errs. Probabilities are per object (per image for flips).

    Parameters
    ----------
    jitter : (int, int)
        Each object is eroded or dilated by ``lo..hi`` pixels (0, 0: exact boundaries).
    miss_small : float
        Probability to miss an object smaller than half the median object.
    miss : float
        Probability to miss any other object.
    false_positive : float
        Expected false objects per true object.
    merge : float
        Probability to merge an object with a touching neighbour.
    split : float
        Probability to split a large object in two.
    flip : float
        Classification: probability to choose another class.
    seconds_per_object, seconds_per_image : float
        The lead time recorded: ``seconds_per_image + seconds_per_object * n_objects``,
        with a log-normal spread.
    accept : float
        Starting from a pre-annotation: a pre-drawn object that matches a true object at IoU
        >= ``accept`` is kept as drawn (1: only a perfect one), as experts accept outlines
        that look right; a pre-drawn object that matches none is deleted, but overlooked with
        probability ``miss``.
    """

    jitter: tuple[int, ...] = (0, 0)
    miss_small: float = 0.0
    miss: float = 0.0
    false_positive: float = 0.0
    merge: float = 0.0
    split: float = 0.0
    flip: float = 0.0
    seconds_per_object: float = 2.0
    seconds_per_image: float = 6.0
    accept: float = 1.0

    def __post_init__(self):
        if len(self.jitter) != 2 or not 0 <= self.jitter[0] <= self.jitter[1] <= 64:
            raise ConfigError(
                f"jitter = {list(self.jitter)}: give [lo, hi] pixels with 0 <= lo <= hi <= 64, "
                "e.g. [1, 2]"
            )
        for name in ("miss_small", "miss", "merge", "split", "flip", "accept"):
            if not 0 <= getattr(self, name) <= 1:  # false for nan too
                raise ConfigError(f"{name} = {getattr(self, name)}: give a probability in 0..1")
        for name in ("false_positive", "seconds_per_object", "seconds_per_image"):
            in_range(name, getattr(self, name), 0.0, 3600.0)


PROFILES = {
    "perfect": NoiseProfile(),
    "careful": NoiseProfile(
        jitter=(0, 1),
        miss_small=0.03,
        miss=0.005,
        false_positive=0.005,
        merge=0.01,
        split=0.005,
        flip=0.03,
        seconds_per_object=3.0,
        accept=0.9,
    ),
    "average": NoiseProfile(
        jitter=(1, 2),
        miss_small=0.10,
        miss=0.02,
        false_positive=0.02,
        merge=0.04,
        split=0.02,
        flip=0.10,
        seconds_per_object=2.0,
        accept=0.8,
    ),
    "sloppy": NoiseProfile(
        jitter=(2, 3),
        miss_small=0.30,
        miss=0.06,
        false_positive=0.06,
        merge=0.10,
        split=0.05,
        flip=0.25,
        seconds_per_object=1.2,
        accept=0.7,
    ),
}
DEFAULT_ORDER = ("careful", "average", "sloppy")


def profile_named(name: str, custom: Mapping[str, NoiseProfile] | None = None) -> NoiseProfile:
    """The profile called ``name``: the study's own (``[noise.NAME]``) or a built-in one.

    Raises
    ------
    ConfigError
        When neither has that name.
    """
    custom = custom or {}
    if name in custom:
        return custom[name]
    if name in PROFILES:
        return PROFILES[name]
    known = ", ".join([*PROFILES, *(n for n in custom if n not in PROFILES)])
    raise ConfigError(
        f"unknown noise profile {name!r}; choose one of {known}, or define it in loop.toml "
        f"as [noise.{name}]"
    )
