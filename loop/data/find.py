"""Finding the files of a folder: its images (and OME-Zarr folders), and each image's mask."""

from __future__ import annotations

import os
from pathlib import Path

MASK_EXTENSIONS = (".tif", ".tiff", ".png")
ZARR_SUFFIX = ".zarr"


def find_images(
    root: Path, extensions, exclude: Path | None = None, *, stores: bool = False
) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, hidden files and ``exclude`` skipped);
    with ``stores``, also the OME-Zarr folders (``*.zarr``, not searched inside)."""
    suffixes = {e.lower() for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        if stores:
            found.extend(here / d for d in dirnames if d.lower().endswith(ZARR_SUFFIX))
            dirnames[:] = [d for d in dirnames if not d.lower().endswith(ZARR_SUFFIX)]
        found.extend(
            here / name
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        )
    return sorted(found)


def find_mask(masks: Path, rel: Path, suffixes) -> Path | None:
    """The mask of the image at ``rel`` (relative to its root): ``<stem><suffix><ext>`` beside
    it under ``masks``, or directly in ``masks``."""
    stem = rel.stem
    for folder in dict.fromkeys((masks / rel.parent, masks)):
        for suffix in suffixes:
            for ext in MASK_EXTENSIONS:
                candidate = folder / f"{stem}{suffix}{ext}"
                if candidate.is_file():
                    return candidate
    return None
