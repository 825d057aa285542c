"""One writer per study: an advisory lock file ``STUDY/loop.lock`` holding the writer's pid.

``push``, ``pull``, ``train`` and a round each run under it, so two commands started at once
on one study cannot both create tasks for the same images or both train a model: the second
stops at once with the holder's pid and command. The lock is ``flock(2)`` on the file, so a
holder that was killed (``kill -9``, a crash, a reboot) holds nothing: its stale file is taken
over by the next writer, with no clean-up to do. Re-entrant within a process (a round pushes
under its own lock).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loop.errors import StudyBusy

LOCK_NAME = "loop.lock"
_held: dict[Path, list] = {}  # lock path -> [fd, depth], this process's locks


def holder(folder: str | Path) -> dict | None:
    """What the lock file says of its last holder (``pid``, ``command``, ``since``), or None."""
    try:
        return json.loads((Path(folder) / LOCK_NAME).read_text() or "null")
    except (OSError, ValueError):
        return None


@contextmanager
def study_lock(folder: str | Path, command: str) -> Iterator[None]:
    """Hold the study's writer lock while the block runs.

    Raises
    ------
    StudyBusy
        When another process holds it.
    """
    path = (Path(folder) / LOCK_NAME).resolve()
    if path in _held:
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        other = holder(folder) or {}
        raise StudyBusy(
            f"another `loop {other.get('command', '?')}` is running on {folder} (pid "
            f"{other.get('pid', '?')}, since {other.get('since', '?')}): wait for it to finish, "
            "or stop it; a killed one leaves no lock behind"
        ) from None
    os.ftruncate(fd, 0)
    record = {"pid": os.getpid(), "command": command, "since": time.strftime("%H:%M:%S")}
    os.write(fd, json.dumps(record).encode())
    _held[path] = [fd, 1]
    try:
        yield
    finally:
        del _held[path]
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def locked(command: str):
    """Decorate a library function whose first argument is a :class:`~loop.study.Study` so
    that it runs under the study's writer lock."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(study, *args, **kwargs):
            with study_lock(study.path, command):
                return fn(study, *args, **kwargs)

        return inner

    return wrap
