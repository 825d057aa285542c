"""Reading ahead (loop/core/readahead.py): the next item's files read by a thread while the
caller works on one."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loop.core.readahead import prefetch_each, read_ahead, warm_files, warm_job


def test_the_next_item_is_read_while_one_is_worked_on():
    """While the caller holds item k, item k + 1's prefetch runs (the caller waits for it
    inside item k: a serial read ahead, or none, would never set the event in time)."""
    fetched = {i: threading.Event() for i in range(4)}
    seen = []
    for item in read_ahead([0, 1, 2, 3], prefetch=lambda i: fetched[i].set()):
        if item < 3:
            assert fetched[item + 1].wait(timeout=10), f"item {item + 1} was not read ahead"
        seen.append(item)
    assert seen == [0, 1, 2, 3]
    assert not fetched[0].is_set()  # the first item is read by its own work, not twice


def test_a_prefetch_that_fails_changes_nothing():
    def broken(item):
        raise OSError("no such file")

    assert list(read_ahead(["a", "b", "c"], prefetch=broken)) == ["a", "b", "c"]
    assert list(read_ahead(["a"], prefetch=broken)) == ["a"]
    assert list(read_ahead([], prefetch=None)) == []


def test_a_list_read_ahead_goes_on_past_an_item_that_fails():
    seen = []

    def prefetch(item):
        seen.append(item)
        if item == 2:
            raise OSError("unreadable")

    prefetch_each(prefetch, [1, 2, 3])
    assert seen == [1, 2, 3]


def test_files_are_read_whole_unless_too_large_missing_or_a_folder(tmp_path):
    small, large = tmp_path / "small.tif", tmp_path / "large.tif"
    small.write_bytes(b"x" * 5000)
    large.write_bytes(b"y" * 9000)
    folder = tmp_path / "image.zarr"
    folder.mkdir()
    assert warm_files([small]) == 5000
    assert warm_files([small, large], limit=8000) == 5000
    assert warm_files([folder, tmp_path / "gone.tif", small]) == 5000


def test_a_job_is_read_ahead_by_its_files(tmp_path):
    @dataclass(frozen=True)
    class Job:
        files: tuple

    image, labels = tmp_path / "a.png", tmp_path / "a.tif"
    image.write_bytes(b"p" * 100)
    labels.write_bytes(b"l" * 30)
    assert warm_job(Job((image, labels))) == 130
