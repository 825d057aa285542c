"""Public data sets for demos: BBBC038 (the 2018 Data Science Bowl nuclei), downloaded with
pooch and laid out the way ``loop ingest`` reads it.

BBBC038's ``stage1_train.zip`` holds one folder per image, ``<id>/images/<id>.png`` and one
PNG per nucleus in ``<id>/masks/``. :func:`convert_stage1` writes ``images/<id>.png`` (the file
as distributed), ``masks/<id>.tif`` (the nuclei merged into one uint16 label image) and a
``manifest.json`` with each image's shape, object count, overlap and modality.

The archive's own checksum is not published; every image is checked instead against the
sha256 of the copy this project was tested with (``loop/data/bbbc038_stage1_train.sha256``,
664 images), and the archive's sha256 is printed by pooch and recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from loop.core.images import write_labels
from loop.errors import DatasetError

BBBC038_URL = "https://data.broadinstitute.org/bbbc/BBBC038/stage1_train.zip"
REGISTRY = "bbbc038_stage1_train.sha256"


def registry() -> dict[str, str]:
    """Image id -> sha256 of the BBBC038 stage 1 training images this project was tested on."""
    text = resources.files("loop").joinpath("data", REGISTRY).read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line)}


def modality_of(pixels: np.ndarray) -> str:
    """``fluorescence`` (dark), ``HE/IHC color`` (bright and coloured) or ``brightfield``
    (bright and grey), from an 8-bit image of shape (M, N) or (M, N, C).

    The thresholds separate the three groups of the DSB2018 training images exactly (mean
    intensity: fluorescence <= 72, the others >= 135; mean chroma: stained >= 11.9,
    brightfield <= 7.4).

    >>> modality_of(np.zeros((4, 4, 3), np.uint8))
    'fluorescence'
    """
    rgb = np.asarray(pixels, dtype=np.float32)
    rgb = rgb[..., :3] if rgb.ndim == 3 else rgb[..., None]
    if rgb.mean() < 100:
        return "fluorescence"
    chroma = (rgb.max(axis=-1) - rgb.min(axis=-1)).mean()
    return "HE/IHC color" if chroma > 9 else "brightfield"


@dataclass
class ConvertReport:
    folder: Path
    images: int = 0
    verified: int = 0  # sha256 equal to the registry's
    changed: list[str] = field(default_factory=list)  # in the registry, different bytes
    unknown: list[str] = field(default_factory=list)  # not in the registry


def convert_stage1(
    extracted: str | Path,
    dest: str | Path,
    *,
    archive_sha256: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ConvertReport:
    """Lay out an extracted ``stage1_train`` folder as images/, masks/ and manifest.json.

    Raises
    ------
    DatasetError
        When ``extracted`` holds no ``<id>/images/<id>.png``.
    """
    from PIL import Image

    extracted, dest = Path(extracted), Path(dest)
    folders = sorted(p.parent.parent for p in extracted.glob("*/images/*.png"))
    if not folders:
        raise DatasetError(
            f"{extracted} holds no <id>/images/<id>.png: is it the extracted stage1_train.zip?"
        )
    known = registry()
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "masks").mkdir(exist_ok=True)
    report = ConvertReport(folder=dest)
    manifest = []
    for i, folder in enumerate(folders):
        name = folder.name
        source = folder / "images" / f"{name}.png"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if name not in known:
            report.unknown.append(name)
        elif known[name] != digest:
            report.changed.append(name)
        else:
            report.verified += 1
        shutil.copyfile(source, dest / "images" / f"{name}.png")
        with Image.open(source) as handle:
            pixels = np.asarray(handle)
        labels = np.zeros(pixels.shape[:2], np.uint16)
        overlap = 0
        mask_files = sorted((folder / "masks").glob("*.png"))
        for label, mask_file in enumerate(mask_files, start=1):
            with Image.open(mask_file) as handle:
                nucleus = np.asarray(handle) > 0
            if nucleus.ndim == 3:
                nucleus = nucleus.any(axis=-1)
            overlap += int(np.count_nonzero(nucleus & (labels > 0)))
            labels[nucleus] = label
        write_labels(dest / "masks" / f"{name}.tif", labels)
        manifest.append(
            {
                "id": name,
                "shape": list(pixels.shape),
                "n_masks": len(mask_files),
                "n_labels": len(np.unique(labels)) - 1,
                "overlap_px": overlap,
                "modality": modality_of(pixels),
                "sha256": digest,
            }
        )
        report.images += 1
        if progress:
            progress(i + 1, len(folders))
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (dest / "SOURCE.md").write_text(
        f"BBBC038 (2018 Data Science Bowl) stage 1 training set from {BBBC038_URL}"
        + (f", archive sha256 {archive_sha256}" if archive_sha256 else "")
        + f". {report.verified} of {report.images} images match the sha256 registry of loop.\n"
    )
    return report


def fetch_bbbc038(
    dest: str | Path | None = None, *, progress: Callable[[int, int], None] | None = None
) -> ConvertReport:
    """Download BBBC038 stage 1 training (about 80 MB, needs the internet) once, and lay it out
    in ``dest`` (default: the user cache, ``pooch.os_cache("loop")/bbbc038``).

    Raises
    ------
    DatasetError
        When the download fails (no internet, the server moved).
    """
    import pooch

    cache = Path(pooch.os_cache("loop"))
    dest = Path(dest) if dest is not None else cache / "bbbc038"
    if (dest / "manifest.json").is_file():
        n = len(json.loads((dest / "manifest.json").read_text()))
        return ConvertReport(folder=dest, images=n)
    try:
        archive = pooch.retrieve(BBBC038_URL, known_hash=None, path=cache, progressbar=False)
    except Exception as exc:  # requests' and urllib's errors alike
        raise DatasetError(
            f"could not download {BBBC038_URL} ({type(exc).__name__}: {exc}); check the "
            "internet connection, or pass a DSB2018-layout folder with --data"
        ) from exc
    digest = pooch.file_hash(archive)
    extracted = cache / "bbbc038-extracted"
    pooch.Unzip(extract_dir=str(extracted))(archive, "download", None)
    return convert_stage1(extracted, dest, archive_sha256=digest, progress=progress)
