"""Crash points for testing crash safety.

Set ``LOOP_CRASH_AT=<name>`` (or ``<name>:<n>`` to crash at the n-th hit, 1-based) and the
process dies with :func:`os._exit` at that point, like a ``kill -9``: no ``finally`` blocks,
no commits. Tests use it to show that a killed step restarted ends with the same store.
With ``LOOP_CRASH_ONCE=<file>`` as well, only the first process to get there dies (it
creates the file first): a Dask worker killed mid-chunk, whose chunk is then run again.
"""

from __future__ import annotations

import os
from collections import Counter

CRASH_ENV = "LOOP_CRASH_AT"
CRASH_ONCE_ENV = "LOOP_CRASH_ONCE"
CRASH_EXIT_CODE = 86


class CrashPoints:
    """Counts hits of named crash points and kills the process at the configured one.

    Parameters
    ----------
    spec : str or None
        ``"name"`` or ``"name:n"``; ``None`` reads :data:`CRASH_ENV` when first hit.
    """

    def __init__(self, spec: str | None = None):
        self._spec = spec
        self._hits: Counter[str] = Counter()

    def hit(self, name: str) -> None:
        spec = self._spec if self._spec is not None else os.environ.get(CRASH_ENV, "")
        if not spec:
            return
        target, _, nth = spec.partition(":")
        if target != name:
            return
        self._hits[name] += 1
        if self._hits[name] >= int(nth or 1):
            once = os.environ.get(CRASH_ONCE_ENV)
            if once:
                try:
                    open(once, "x").close()  # the first one to get here
                except FileExistsError:
                    return
            os._exit(CRASH_EXIT_CODE)


def crash_points() -> CrashPoints:
    """A fresh counter that reads ``LOOP_CRASH_AT`` from the environment."""
    return CrashPoints()
