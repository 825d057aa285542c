"""Read, validate and normalise images and masks; read metadata tables and sidecars.

Images are returned as NumPy arrays in (row, col[, channel]) order: ``ndarray of shape
(M, N)`` for one channel, ``(M, N, C)`` for several (a channels-first TIFF is moved to the
last axis). Any dtype is accepted; :func:`normalize_percentile` maps to float32 for models.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loop.core.files import atomic_path
from loop.errors import (
    BadMask,
    EmptyFile,
    ImageTooLarge,
    MetadataError,
    UnreadableImage,
    UnsupportedImage,
)

TIFF_SUFFIXES = (".tif", ".tiff")
MAX_CHANNELS = 8


@dataclass(frozen=True)
class ImageInfo:
    """What ingest records of an image file."""

    sha256: str
    height: int
    width: int
    channels: int
    dtype: str
    nbytes: int


def file_sha256(path: str | Path, digest=None) -> str:
    """Hex sha256 of a file's bytes (``digest``: a running hash to add them to instead)."""
    digest = hashlib.sha256() if digest is None else digest
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_VALUES = 2**30
"""The most values (pixels x channels) a TIFF may declare to be read whole (1 GiB at 8 bits);
PNG and JPEG follow Pillow's decompression-bomb limit (about 179 M pixels)."""


def too_large(path: Path, declared: str) -> ImageTooLarge:
    """The error of an image whose header declares more than the loop reads."""
    return ImageTooLarge(
        path,
        f"its header declares {declared}, more than the loop reads whole; crop or tile it "
        "first (or check the file: a tiny file declaring a huge image is corrupt or hostile)",
    )


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.series:
            shape = tif.series[0].shape
            if math.prod(shape) > MAX_VALUES:  # checked before anything is allocated
                raise too_large(path, f"shape {tuple(shape)} ({math.prod(shape):,} values)")
        return np.asarray(tif.asarray())


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UnreadableImage(path, "no such file")
    if path.stat().st_size == 0:
        raise EmptyFile(path, "the file is empty (0 bytes); re-export or remove it")
    from PIL import Image

    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _read_tiff(path)

        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L"):
                    return np.asarray(im, dtype=np.uint16)
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                return np.asarray(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = str(exc).split(")")[0].replace("Image size (", "")  # "N pixels"
        raise too_large(path, size) from exc
    except (OSError, ValueError, SyntaxError, Warning) as exc:
        raise UnreadableImage(
            path, f"not a readable image ({type(exc).__name__}: {exc}); the file may be truncated"
        ) from exc


def _channels_last(path: Path, array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        if array.shape[-1] <= MAX_CHANNELS:
            return array
        if array.shape[0] <= MAX_CHANNELS:
            return np.moveaxis(array, 0, -1)
    raise UnsupportedImage(
        path,
        f"shape {array.shape}: only 2-D images with up to {MAX_CHANNELS} channels are supported "
        "(project z-stacks or time series to 2-D first)",
    )


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF (8/16-bit, multi-channel), PNG or JPEG image.

    Returns
    -------
    ndarray of shape (M, N) or (M, N, C)
        The pixels in the file's dtype, channels last.

    Raises
    ------
    EmptyFile, UnreadableImage, UnsupportedImage
        For a zero-byte file, a non-image or truncated file, or a layout that is not 2-D.
    """
    path = Path(path)
    array = _channels_last(path, _read_array(path))
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def image_info(path: str | Path, array: np.ndarray | None = None) -> ImageInfo:
    """Read (or take) an image and describe it."""
    array = read_image(path) if array is None else array
    return ImageInfo(
        sha256=file_sha256(path),
        height=int(array.shape[0]),
        width=int(array.shape[1]),
        channels=1 if array.ndim == 2 else int(array.shape[2]),
        dtype=str(array.dtype),
        nbytes=Path(path).stat().st_size,
    )


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an instance label image (0 = background, 1..N = objects).

    Parameters
    ----------
    path : path
        TIFF or PNG label image.
    shape : (M, N), optional
        The image's spatial shape; the mask must match it.

    Returns
    -------
    ndarray of shape (M, N), dtype int32
        Object labels, not necessarily consecutive.

    Raises
    ------
    BadMask
        When it is not 2-D, not integral, negative, or its shape differs from ``shape``.
    """
    path = Path(path)
    try:
        array = _read_array(path)
    except (UnreadableImage, EmptyFile) as exc:
        raise BadMask(path, f"mask is not readable: {exc.args[0].split(': ', 1)[-1]}") from exc
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise BadMask(path, f"mask has shape {array.shape}; expected a 2-D label image")
    if array.dtype == bool:
        array = array.astype(np.int32)
    elif not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.mod(array, 1) == 0):
            raise BadMask(
                path,
                f"mask dtype {array.dtype} has non-integer values; expected an integer label "
                "image (0 = background, 1..N = objects), not a probability map",
            )
    if array.size and array.min() < 0:
        raise BadMask(path, "mask has negative labels; expected 0 = background, 1..N = objects")
    if array.size and array.max() > np.iinfo(np.int32).max:
        raise BadMask(path, "mask labels exceed the int32 range")
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise BadMask(
            path,
            f"mask shape {tuple(array.shape)} differs from its image's {tuple(shape)}",
        )
    return array.astype(np.int32, copy=False)


def write_labels(path: str | Path, mask: np.ndarray) -> None:
    """Write a label image as a compressed TIFF (uint16, or uint32 past 65535 objects),
    atomically: a reader never sees a half-written file."""

    import tifffile

    dtype = np.uint16 if mask.max(initial=0) < 65536 else np.uint32
    with atomic_path(path) as tmp:  # a full disk, a kill: no half-written file left behind
        tifffile.imwrite(tmp, mask.astype(dtype), compression="zlib")


def count_objects(mask: np.ndarray) -> int:
    """Number of distinct non-zero labels in ``mask``."""
    labels = np.unique(mask)
    return int(np.count_nonzero(labels))


def normalize_percentile(
    image: np.ndarray,
    lower: float = 1.0,
    upper: float = 99.0,
    *,
    per_channel: bool = True,
    brightest: float | None = None,
) -> np.ndarray:
    """Percentile normalisation, as Cellpose's ``normalize99``.

    Maps the ``lower`` percentile to 0 and the ``upper`` percentile to 1 (values outside are
    not clipped). A flat channel becomes zeros. With ``brightest``, the 99.9th percentile
    maps to at most that value: in a sparse image (a few nuclei on a dark field, under 1% of
    the pixels) the ``upper`` percentile is background, which would stretch the noise to
    [0, 1] and the objects to tens; the scale is then widened until they are at ``brightest``.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype.
    lower, upper : float
        Percentiles in [0, 100].
    per_channel : bool
        Normalise each channel on its own (True) or all channels together.
    brightest : float, optional
        The most the 99.9th percentile may become (None: no bound).

    Returns
    -------
    ndarray of the same shape, dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> out = normalize_percentile(np.arange(101, dtype=np.uint16), 0, 100)
    >>> float(out.min()), float(out.max())
    (0.0, 1.0)
    >>> sparse = np.full((100, 100), 10.0)
    >>> sparse[::2] += 1  # noise
    >>> sparse[:2, :20] = 250  # one small object: 0.4% of the pixels
    >>> float(normalize_percentile(sparse).max())
    240.0
    >>> float(normalize_percentile(sparse, brightest=4).max())
    4.0
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and per_channel:
        return np.stack(
            [
                normalize_percentile(image[..., c], lower, upper, brightest=brightest)
                for c in range(image.shape[-1])
            ],
            axis=-1,
        )
    lo, hi, top = np.percentile(image, [lower, upper, 99.9])
    if brightest is not None:
        hi = max(hi, lo + (top - lo) / brightest)
    if hi - lo <= 1e-12:
        return np.zeros_like(image)
    return ((image - lo) / (hi - lo)).astype(np.float32, copy=False)


# --- metadata --------------------------------------------------------------------------

KEY_COLUMNS = ("id", "filename", "path", "file", "image")
CLASS_COLUMNS = ("class", "label", "category")


def _match_key(row: dict, source: Path) -> str:
    lowered = {k.strip().lower(): v for k, v in row.items() if k is not None}
    for key in KEY_COLUMNS:
        value = lowered.get(key)
        if value not in (None, ""):
            return str(value)
    raise MetadataError(
        f"{source}: a row has none of the key columns {', '.join(KEY_COLUMNS)}: {row!r}; "
        "add an `id` column (the file name without extension) or a `filename` column"
    )


def read_table(path: str | Path) -> list[dict]:
    """Read a metadata table: CSV with a header, or JSON (a list of objects, or an object
    mapping id to an object)."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: no such metadata file")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = [{"id": key, **value} for key, value in data.items()]
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise MetadataError(
                    f"{path}: expected a JSON list of objects or an object of objects"
                )
            return data
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise MetadataError(f"{path}: cannot parse ({exc})") from exc
    if not rows:
        raise MetadataError(f"{path}: the table has no rows")
    return rows


def index_table(rows: list[dict], source: str | Path) -> dict[str, dict]:
    """Index metadata rows by the key they name an image with.

    The key is the first non-empty of ``id``, ``filename``, ``path``, ``file``, ``image``;
    images are then found by relative path, file name, or stem (see :func:`lookup`).
    """
    source = Path(source)
    index: dict[str, dict] = {}
    for row in rows:
        key = _match_key(row, source).replace("\\", "/")
        if key in index:
            raise MetadataError(f"{source}: the key {key!r} appears in more than one row")
        index[key] = row
    return index


def lookup(index: dict[str, dict], relpath: str) -> dict | None:
    """The row for an image at ``relpath`` (relative path, then file name, then stem)."""
    name = relpath.rsplit("/", 1)[-1]
    for key in (relpath, name, name.rsplit(".", 1)[0]):
        if key in index:
            return index[key]
    return None


def read_sidecar(image_path: Path) -> dict | None:
    """Metadata next to an image: ``a.png.json`` or ``a.json`` (a JSON object)."""
    for candidate in (
        image_path.with_name(image_path.name + ".json"),
        image_path.with_suffix(".json"),
    ):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise MetadataError(f"{candidate}: sidecar is not valid JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise MetadataError(f"{candidate}: sidecar must be a JSON object")
            return data
    return None


def class_of(row: dict, source: str | Path) -> str:
    """The class named in a labels-table row (column ``class``, ``label`` or ``category``)."""
    lowered = {k.strip().lower(): v for k, v in row.items() if k is not None}
    for key in CLASS_COLUMNS:
        value = lowered.get(key)
        if value not in (None, ""):
            return str(value).strip()
    raise MetadataError(
        f"{source}: a row has none of the class columns {', '.join(CLASS_COLUMNS)}: {row!r}"
    )
