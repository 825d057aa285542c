"""What a stopped ``loop measure`` had finished, so that the same command run again goes on
from there instead of starting over.

The journal is a folder ``OUT/.measure-partial/``:

- ``settings.json``: what the results depend on (the model's sha256 or the label images'
  folder, the pixel size, the model's settings); a run with other settings starts afresh;
- ``objects.jsonl``: the object rows, appended image by image;
- ``images.jsonl``: one line per finished image, written (and synced) after its object rows:
  the image's key (relative path, size, modification time), its ``images.csv`` row, where its
  rows lie in ``objects.jsonl`` and which columns they have.

A line cut short by a kill, and object rows after the last finished image, are dropped when the
journal is opened. The final tables are written from the journal in the folder's order, so a
resumed run writes the same ``objects.csv`` and ``images.csv`` as one that never stopped; the
journal is removed once they are in place. Memory holds one line per image, never the objects.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

JOURNAL = ".measure-partial"


def image_key(path: Path, rel: str) -> str:
    """The image as the journal knows it: a changed file (size or time) is measured again."""
    stat = path.stat()
    return f"{rel}|{stat.st_size}|{stat.st_mtime_ns}"


class MeasureJournal:
    """The finished images of one ``loop measure`` into ``out`` with ``settings``.

    Attributes
    ----------
    done : dict
        Key (:func:`image_key`) -> entry: ``record`` (the ``images.csv`` row), ``device``,
        ``offset`` and ``length`` (bytes of ``objects.jsonl``), ``columns``, ``ok`` (False for
        an image skipped with its error).
    """

    def __init__(self, out: Path, settings: dict):
        self.folder = Path(out) / JOURNAL
        self.done: dict[str, dict] = {}
        text = json.dumps(settings, sort_keys=True, default=str)
        settings_file = self.folder / "settings.json"
        if settings_file.is_file() and settings_file.read_text() == text:
            self._load()
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            settings_file.write_text(text)
            (self.folder / "objects.jsonl").touch()
            (self.folder / "images.jsonl").touch()
        self._objects = open(self.folder / "objects.jsonl", "ab")
        self._images = open(self.folder / "images.jsonl", "ab")

    def _load(self) -> None:
        end, good = 0, 0
        with open(self.folder / "images.jsonl", "rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    break  # cut short by a kill: that image is measured again
                self.done[entry["key"]] = entry
                end = max(end, entry["offset"] + entry["length"])
                good += len(line)
        os.truncate(self.folder / "images.jsonl", good)
        os.truncate(self.folder / "objects.jsonl", end)  # rows of an unfinished image

    def add(self, key: str, record: dict, rows: list[dict] | None, device: str | None) -> None:
        """Journal one finished image (``rows`` None: skipped, ``record`` has its error)."""
        payload = b"".join(json.dumps(r).encode() + b"\n" for r in rows or [])
        offset = self._objects.tell()
        self._objects.write(payload)
        _sync(self._objects)
        columns = list(dict.fromkeys(k for r in rows or [] for k in r))
        entry = {
            "key": key,
            "record": record,
            "device": device,
            "offset": offset,
            "length": len(payload),
            "columns": columns,
            "ok": rows is not None,
        }
        self._images.write(json.dumps(entry).encode() + b"\n")
        _sync(self._images)
        self.done[key] = entry

    def rows(self, entry: dict) -> Iterator[dict]:
        """The object rows of one journaled image."""
        with open(self.folder / "objects.jsonl", "rb") as handle:
            handle.seek(entry["offset"])
            for line in handle.read(entry["length"]).splitlines():
                yield json.loads(line)

    def close(self) -> None:
        self._objects.close()
        self._images.close()

    def remove(self) -> None:
        """Drop the journal (the tables are in place)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())
