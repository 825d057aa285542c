"""Cellpose's modules that compile with numba, imported so that their machine code is kept on
disk: every other module takes ``core``, ``dynamics`` and ``metrics`` from here.

Cellpose 3 compiles its flow-following functions (``cellpose.dynamics``, explicit signatures)
with numba as it is imported, and its matching function (``cellpose.metrics``) at its first
call, without numba's cache: every process that segments (each ``loop`` command, each Dask
worker) paid the compilation again, about 3.4 s of a 5.5 s import on the 2-core machine.
Imported from here, numba's decorators run with ``cache=True`` (where the decorator does not
say otherwise): the first process compiles and writes the cache, in Cellpose's
``__pycache__`` or under ``NUMBA_CACHE_DIR`` (numba's rules), and later ones load it. Numba
keys the cache by the source file, the signature and the processor, so an upgraded Cellpose or
another machine compiles afresh. Cellpose itself asks for numba's cache (its
``map_coordinates``), so it needs a writable cache location already: nothing new is asked.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numba


@contextmanager
def caching():
    """``numba.njit`` and ``numba.jit`` with ``cache=True`` by default inside the block (for the
    modules imported there: they bind the decorators as they are imported)."""
    originals = numba.njit, numba.jit

    def cached(decorator: Callable) -> Callable:
        def decorate(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return decorate

    numba.njit, numba.jit = cached(numba.njit), cached(numba.jit)
    try:
        yield
    finally:
        numba.njit, numba.jit = originals


with caching():
    from cellpose import core, dynamics, metrics, transforms  # noqa: E402, F401 (taken from here)


def cellpose_models():
    """``cellpose.models`` (pretrained weights), imported after the modules above."""
    from cellpose import models

    return models
