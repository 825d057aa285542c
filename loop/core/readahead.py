"""Reading ahead: while one item is computed, the files of the next are read into the operating
system's page cache by a thread, so that on a slow or network file system (NFS, Lustre, an
object store mounted by FUSE) the next read finds its bytes in memory.

Nothing is decoded or kept here: the page cache holds the bytes, the item's own read decodes
them as before, so results cannot change and memory stays the kernel's to reclaim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WARM_LIMIT = 256 * 2**20
"""Files larger than this (bytes) are not read ahead: such images are read region by region
(:mod:`loop.core.lazy`), and reading them whole would only push other files out of the
cache."""

BLOCK = 4 * 2**20


def warm_files(paths: Sequence[str | Path], *, limit: int = WARM_LIMIT) -> int:
    """Read each file of ``paths`` once, discarding the bytes, to bring it into the page cache.

    Folders (OME-Zarr stores), files over ``limit`` bytes and files that cannot be opened are
    skipped without a word: the item's own read reports its problems.

    Returns
    -------
    int
        The bytes read.
    """
    total = 0
    buffer = bytearray(BLOCK)
    for path in paths:
        try:
            with open(path, "rb", buffering=0) as handle:
                if Path(path).stat().st_size > limit:
                    continue
                while n := handle.readinto(buffer):
                    total += n
        except OSError:  # missing, a folder, no permission: the real read says so
            continue
    return total


def warm_job(job) -> int:
    """:func:`warm_files` of ``job.files`` (the files a job of ``loop measure``, ``predict``
    or ``score`` reads): the ``prefetch`` that those commands give
    :func:`loop.learn.engine.run_each`."""
    return warm_files(job.files)


def read_ahead(items: Sequence, prefetch: Callable | None) -> Iterator:
    """The items in order; while the caller works on one, a thread runs ``prefetch`` on the
    next (one item ahead, no more). An exception of ``prefetch`` is dropped: the item's own
    work meets the same problem and reports it.

    >>> list(read_ahead([1, 2, 3], prefetch=lambda item: None))
    [1, 2, 3]
    """
    if prefetch is None or len(items) < 2:
        yield from items
        return
    with ThreadPoolExecutor(1, thread_name_prefix="loop-read-ahead") as pool:
        for k, item in enumerate(items):
            ahead = pool.submit(_quietly, prefetch, items[k + 1]) if k + 1 < len(items) else None
            yield item
            if ahead is not None:
                ahead.result()  # at most one item ahead


def prefetch_each(prefetch: Callable, items: Sequence) -> None:
    """``prefetch`` on each of ``items`` (a list read ahead as one: :func:`read_ahead` of
    lists); one that raises does not stop the others."""
    for item in items:
        _quietly(prefetch, item)


def _quietly(prefetch: Callable, item) -> None:
    try:
        prefetch(item)
    except Exception:  # noqa: BLE001 (the item's own read reports the problem)
        pass
