"""Large images read region by region: TIFF (multi-page, tiled, pyramidal, OME-TIFF) through
tifffile's Zarr store, and OME-Zarr folders through zarr.

``loop predict`` and ``loop measure`` segment an image larger than ``model.predict_tile_above``
tile by tile; :func:`open_image` gives them such an image as a :class:`LazyImage`, whose tiles
are read from the file when they are needed, so that no process holds the raw pixels whole
(the label image, one int32 per pixel, is still made whole). Smaller images, and formats
without random access (PNG, JPEG), are read whole by :func:`loop.core.images.read_image`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loop.core.images import MAX_CHANNELS, TIFF_SUFFIXES, file_sha256, read_image, too_large
from loop.errors import UnreadableImage, UnsupportedImage

MAX_LABEL_PIXELS = 2**31
"""The most pixels an image read tile by tile may have: its label image (int32, made whole)
then takes 8 GiB. A header that declares more is refused before anything is allocated."""


class LazyImage:
    """A 2-D image, channels last, whose pixels stay in the file until a region is read.

    Parameters
    ----------
    path : Path
        The TIFF file or OME-Zarr folder (for messages).
    array : zarr array
        The full-resolution level, in the file's axis order.
    axes : str
        One letter per axis of ``array`` (tifffile's or OME's): ``Y`` and ``X``, and at most
        one other axis longer than 1, the channels (``C``, ``S``, or unnamed pages as
        :func:`~loop.core.images.read_image` takes them; never ``Z`` or ``T``).

    Attributes
    ----------
    shape : (M, N) or (M, N, C)
    dtype : numpy dtype
    missing_chunks : int
        Chunks of a Zarr store that are not on disk (read as the array's fill value).
    """

    def __init__(self, path: Path, array, axes: str):
        self.path, self._array, axes = Path(path), array, axes.upper()
        if len(axes) != array.ndim or "Y" not in axes or "X" not in axes:
            raise UnsupportedImage(
                path, f"axes {axes!r} for shape {array.shape}: expected a Y and an X axis"
            )
        others = [i for i, a in enumerate(axes) if a not in "YX" and array.shape[i] > 1]
        if (
            len(others) > 1
            or (others and axes[others[0]] in "ZT")
            or (others and array.shape[others[0]] > MAX_CHANNELS)
        ):
            raise UnsupportedImage(
                path,
                f"axes {axes} of shape {tuple(array.shape)}: only 2-D images with up to "
                f"{MAX_CHANNELS} channels are supported (project z-stacks or time series to "
                "2-D first)",
            )
        self._y, self._x = axes.index("Y"), axes.index("X")
        self._c = others[0] if others else None
        height, width = array.shape[self._y], array.shape[self._x]
        if height * width > MAX_LABEL_PIXELS:
            raise too_large(
                path,
                f"{height:,} x {width:,} pixels: its label image alone would take "
                f"{height * width * 4 / 2**30:,.0f} GiB",
            )
        channels = () if self._c is None else (array.shape[self._c],)
        self.missing_chunks = 0
        self.shape = (height, width, *channels)
        self.dtype = np.dtype(array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        """``image[r0:r1, c0:c1]``: that region read from the file, shape (h, w[, C])."""
        if not (
            isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)
        ):
            raise TypeError("index a LazyImage with two slices: image[r0:r1, c0:c1]")
        index = [0] * self._array.ndim
        index[self._y], index[self._x] = key
        if self._c is not None:
            index[self._c] = slice(None)
        region = np.asarray(self._array[tuple(index)])
        kept = sorted(i for i in (self._y, self._x, self._c) if i is not None)
        order = [kept.index(i) for i in (self._y, self._x, self._c) if i is not None]
        return region.transpose(order)  # (h, w[, C]) whatever the file's axis order

    def __repr__(self) -> str:
        return f"LazyImage({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


def whole(image: np.ndarray | LazyImage) -> np.ndarray:
    """The pixels of ``image``, read whole when it is a :class:`LazyImage`."""
    if isinstance(image, LazyImage):
        return image[0 : image.shape[0], 0 : image.shape[1]]
    return image


def open_image(path: str | Path, *, lazy_above: int) -> np.ndarray | LazyImage:
    """An image to segment tile by tile: a :class:`LazyImage` for an OME-Zarr folder and for a
    TIFF with a side longer than ``lazy_above``; otherwise the pixels, read whole.

    Raises
    ------
    UnreadableImage, UnsupportedImage
        For a file or folder that cannot be read, or a layout that is not a 2-D image.
    """
    path = Path(path)
    if path.is_dir():
        return _open_zarr(path)
    if path.suffix.lower() in TIFF_SUFFIXES and path.is_file() and path.stat().st_size:
        image = _open_tiff(path)
        if image is not None and max(image.shape[:2]) > lazy_above:
            return image
    return read_image(path)


def _open_tiff(path: Path) -> LazyImage | None:
    """The first series' full-resolution level, or None when tifffile cannot map it (the
    whole-file reader then gives the error)."""
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                return None
            series = tif.series[0]
            axes, store = series.axes, series.aszarr(level=0)
        return LazyImage(path, zarr.open_array(store, mode="r"), axes.replace("S", "C"))
    except (tifffile.TiffFileError, ValueError, KeyError, OSError):
        return None


def _open_zarr(path: Path) -> LazyImage:
    """Level 0 of an OME-Zarr image (NGFF 0.4: ``multiscales`` in the attributes; 0.5: under
    ``ome``), or a plain 2-D/3-D Zarr array (axes YX, or CYX / YXC by the channel count)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except (ValueError, OSError, KeyError, TypeError) as exc:  # zarr's errors are ValueErrors
        raise UnreadableImage(
            path, f"not a readable Zarr store ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(node, zarr.Array):
        return _counted(LazyImage(path, node, _plain_axes(path, node.shape)), node)
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise UnreadableImage(
            path,
            "a Zarr group without OME-NGFF 'multiscales' metadata: give the folder of the image "
            "itself (e.g. image.ome.zarr or image.ome.zarr/0 for a plate's field)",
        )
    scale = multiscales[0]
    axes = "".join(
        (a["name"] if isinstance(a, dict) else a)[0].upper() for a in scale.get("axes", [])
    )
    array = node[scale["datasets"][0]["path"]]
    return _counted(LazyImage(path, array, axes or _plain_axes(path, array.shape)), array)


def _counted(image: LazyImage, array) -> LazyImage:
    """``image`` with the chunks its Zarr ``array`` lacks counted (a copy cut short, a chunk
    deleted: Zarr reads them as the fill value without a word)."""
    image.missing_chunks = int(array.nchunks - array.nchunks_initialized)
    return image


def missing_note(image) -> str | None:
    """The sentence a table carries for an image with missing chunks, else None."""
    missing = getattr(image, "missing_chunks", 0)
    if not missing:
        return None
    return (
        f"{missing} of {image._array.nchunks} chunks are missing from the Zarr store: "
        f"those regions were read as its fill value ({image._array.fill_value})"
    )


def _plain_axes(path: Path, shape: tuple) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "CYX" if shape[0] <= MAX_CHANNELS else "YXC"
    raise UnsupportedImage(
        path, f"a Zarr array of shape {tuple(shape)} without OME axes: save it as OME-Zarr"
    )


def store_sha256(path: Path) -> str:
    """Hex sha256 of an OME-Zarr folder: every file's relative path and bytes, in path order
    (the same store copied elsewhere has the same digest)."""
    import hashlib

    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(json.dumps(item.relative_to(path).as_posix()).encode())
        file_sha256(item, digest)
    return digest.hexdigest()
