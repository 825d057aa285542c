"""Where the time goes: named stages timed in whichever process runs them.

Code marks its stages with :func:`stage` (``with stage("network"): ...``); the time is added
to the collection that :func:`collecting` opened in the same thread or task, and nowhere
when none is open (the cost is then two clock reads). A worker collects per item and returns
the seconds with the item's result, so the driver can add up what every worker spent:

>>> with collecting() as seconds:
...     with stage("read"):
...         pass
...     with stage("read"):
...         pass
>>> sorted(seconds), seconds["read"] >= 0
(['read'], True)
>>> profile_table({"read": 1.0, "network": 3.0}, images=2).splitlines()[1]
'network            3.000     1.500   75.0%'
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_CURRENT: ContextVar[dict[str, float] | None] = ContextVar("loop_stages", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` of the open collection (stages may nest: each keeps
    its own time, so nested stages are also counted in the outer one)."""
    seconds = _CURRENT.get()
    start = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[name] += time.perf_counter() - start


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Time the block into ``seconds[name]`` (a collection of one's own, e.g. the driver's)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def collecting(rest: str | None = None) -> Iterator[dict[str, float]]:
    """A fresh collection of stage seconds for the block (the previous one comes back after
    it); yields the dict the stages add to. ``rest``: the name under which the block's time
    outside any stage is added at its end (a worker's ``other``)."""
    seconds: dict[str, float] = defaultdict(float)
    token, start = _CURRENT.set(seconds), time.perf_counter()
    try:
        yield seconds
    finally:
        _CURRENT.reset(token)
        if rest is not None:
            spent = sum(seconds.values())
            seconds[rest] = max(0.0, time.perf_counter() - start - spent)


def timed_each(items: Iterable[T], seconds: dict[str, float], name: str) -> Iterator[T]:
    """The items of ``items``, the time spent waiting for each added to ``seconds[name]``
    (a driver waiting for its workers' results)."""
    items = iter(items)
    while True:
        with timed(seconds, name):
            item = next(items, _END)
        if item is _END:
            return
        yield item


_END = object()


def add(total: dict[str, float], part: Mapping[str, float]) -> dict[str, float]:
    """``total`` with the seconds of ``part`` added, stage by stage (in place)."""
    for name, seconds in part.items():
        total[name] = total.get(name, 0.0) + seconds
    return total


def profile_table(seconds: Mapping[str, float], *, images: int) -> str:
    """Stages as a text table: total seconds, seconds per image, share of the sum; the
    largest first."""
    whole = sum(seconds.values()) or 1.0
    lines = [f"{'stage':<14}{'seconds':>10}{'per image':>10}{'share':>8}"]
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        lines.append(
            f"{name:<14}{value:>10.3f}{value / max(1, images):>10.3f}{value / whole:>8.1%}"
        )
    return "\n".join(lines)


def profile_text(profile: Mapping) -> str:
    """A run's profile (``images``, ``seconds``, ``driver`` and ``workers`` stage seconds, as
    :class:`loop.learn.measure.MeasureReport` gives it) as text: the wall time and rate, then
    the driver's stages and the workers' stages (summed over them), each a table."""
    images, wall = profile.get("images", 0), profile.get("seconds", 0.0)
    rate = f"{images / wall:.2f} images/s" if wall > 0 else "-"
    busy = sum(profile.get("workers", {}).values())
    return "\n".join(
        [
            f"{images} images in {wall:.1f} s ({rate}); the workers were busy {busy:.1f} s in all",
            "driver (this process):",
            profile_table(profile.get("driver", {}), images=images),
            "workers (summed over them):",
            profile_table(profile.get("workers", {}), images=images),
        ]
    )
