"""Per-object measurements of one label image: shape, size, border contact, raw intensities
per channel and the model's mean probability inside each object, in pixels and micrometres.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import regionprops_table

from loop.errors import MeasureError

SHAPE = (
    "label",
    "centroid",
    "bbox",
    "area",
    "perimeter",
    "equivalent_diameter_area",
    "major_axis_length",
    "minor_axis_length",
    "eccentricity",
    "solidity",
    "orientation",
)


RENAME = {
    "centroid-0": "centroid_row",
    "centroid-1": "centroid_col",
    "bbox-0": "bbox_min_row",
    "bbox-1": "bbox_min_col",
    "bbox-2": "bbox_max_row",
    "bbox-3": "bbox_max_col",
    "equivalent_diameter_area": "equivalent_diameter",
}


LENGTHS = ("perimeter", "equivalent_diameter", "major_axis_length", "minor_axis_length")


def measure_objects(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    pixel_size: float | None = None,
    probability: np.ndarray | None = None,
) -> list[dict]:
    """Measurements of every object of a label image.

    Parameters
    ----------
    labels : ndarray of shape (M, N)
        Instance labels, 0 = background.
    image : ndarray of shape (M, N) or (M, N, C), optional
        The raw image: mean, min, max and integrated intensity per channel (``intensity_*``
        for one channel, ``c<k>_intensity_*`` for several), in the file's own units.
    pixel_size : float, optional
        Micrometres per pixel: adds ``area_um2`` and ``<length>_um`` columns.
    probability : ndarray of shape (M, N), optional
        The model's foreground probability: adds ``model_probability``, its mean over the
        object (low values flag objects the model was unsure of).

    Returns
    -------
    list of dict
        One dict per object, in label order. ``touches_border`` says whether the object is cut
        by the image's edge (its size is then biased low).

    Raises
    ------
    MeasureError
        When ``image`` or ``probability`` does not have the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((8, 8), int); labels[1:4, 1:4] = 1; labels[5:8, 5:8] = 2
    >>> [(r["label"], r["area"], r["touches_border"]) for r in measure_objects(labels)]
    [(1, 9, False), (2, 9, True)]
    """
    labels = np.asarray(labels)
    for name, extra in (("image", image), ("probability", probability)):
        if extra is not None and extra.shape[:2] != labels.shape:
            raise MeasureError(
                f"the {name} has shape {extra.shape[:2]} but the labels {labels.shape}: "
                "measure each label image with its own image"
            )
    if pixel_size is not None and pixel_size <= 0:
        raise MeasureError(f"--pixel-size {pixel_size}: give micrometres per pixel, > 0")
    labels = labels.astype(np.int64, copy=False)
    if not labels.any():
        return []
    table = {RENAME.get(k, k): v for k, v in regionprops_table(labels, properties=SHAPE).items()}
    rows = [{k: _plain(v[i]) for k, v in table.items()} for i in range(len(table["label"]))]
    height, width = labels.shape
    for row in rows:
        row["area"] = int(row["area"])  # a pixel count
        row["touches_border"] = bool(
            row["bbox_min_row"] == 0
            or row["bbox_min_col"] == 0
            or row["bbox_max_row"] == height
            or row["bbox_max_col"] == width
        )
        if pixel_size is not None:
            row["area_um2"] = row["area"] * pixel_size**2
            for name in LENGTHS:
                row[f"{name}_um"] = row[name] * pixel_size
    ids = np.array([r["label"] for r in rows], dtype=np.int64)
    if image is not None:
        per_channel = per_object_stats(labels, image, ids)
        for k, stats in enumerate(per_channel):
            prefix = "intensity" if len(per_channel) == 1 else f"c{k}_intensity"
            for row, (mean, low, high, total) in zip(rows, stats):
                row[f"{prefix}_mean"], row[f"{prefix}_min"] = mean, low
                row[f"{prefix}_max"], row[f"{prefix}_integrated"] = high, total
    if probability is not None:
        (stats,) = per_object_stats(labels, probability, ids)
        for row, (mean, *_rest) in zip(rows, stats):
            row["model_probability"] = mean
    return rows


BAND_VALUES = 1 << 24
"""Pixels per band of rows that :func:`per_object_stats` converts to float64 at a time."""


def per_object_stats(labels: np.ndarray, image, ids: np.ndarray) -> list[list[tuple]]:
    """(mean, min, max, sum) of each channel of ``image`` over each object in ``ids``.

    The image is read and converted band by band of rows (:data:`BAND_VALUES` pixels), the
    per-band sums, counts, minima and maxima combined, so that memory stays bounded by a band
    whether ``image`` is an array or a :class:`loop.core.lazy.LazyImage` read from its file.
    A band's pixels are sorted by label once (stably: each object's pixels keep their order),
    and every channel's statistics are then reductions over each object's run of pixels
    (4.5-10x faster than SciPy's labelled minimum and maximum, which sort for every call; the
    same numbers, bit for bit, on 40 DSB images, grey and with 3 channels).

    Parameters
    ----------
    labels : ndarray of shape (M, N)
    image : ndarray or LazyImage of shape (M, N) or (M, N, C)
    ids : ndarray of shape (K,), sorted
        The object labels to measure.

    Returns
    -------
    list (one per channel) of list (one per id) of (mean, min, max, sum)
    """
    height, width = labels.shape
    channels = 1 if image.ndim == 2 else image.shape[2]
    counts = np.zeros(len(ids))
    sums = np.zeros((channels, len(ids)))
    lows = np.full((channels, len(ids)), np.inf)
    highs = np.full((channels, len(ids)), -np.inf)
    step = max(1, BAND_VALUES // max(width, 1))
    for r0 in range(0, height, step):
        band = labels[r0 : r0 + step]
        # the band's pixels by label (int32: a band has far fewer than 2**31 pixels)
        order = np.argsort(band, axis=None, kind="stable").astype(np.int32)
        ordered = band.ravel()[order]
        first = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1  # where each next label starts
        labels_here = np.concatenate([ordered[:1], ordered[first]])
        present = np.intersect1d(labels_here, ids, assume_unique=True)
        if not present.size:
            continue
        at = np.searchsorted(ids, present)
        starts = np.searchsorted(ordered, present)
        ends = np.searchsorted(ordered, present, side="right")
        counts[at] += ends - starts
        runs = np.column_stack([starts, ends]).ravel()  # [start, end) of each object's run
        if runs[-1] == ordered.size:  # the last run ends with the band: reduceat's own end
            runs = runs[:-1]
        del ordered  # the band's memory goes to its pixels
        pixels = image[r0 : r0 + step, 0:width]
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        for k in range(channels):
            values = pixels[..., k].ravel()[order].astype(np.float64)
            sums[k, at] += np.add.reduceat(values, runs)[::2]
            lows[k, at] = np.minimum(lows[k, at], np.minimum.reduceat(values, runs)[::2])
            highs[k, at] = np.maximum(highs[k, at], np.maximum.reduceat(values, runs)[::2])
    means = sums / np.where(counts > 0, counts, np.nan)
    return [
        [tuple(float(x) for x in t) for t in zip(means[k], lows[k], highs[k], sums[k])]
        for k in range(channels)
    ]


def _plain(value):
    """numpy scalars as Python numbers (for CSV and JSON)."""
    return value.item() if hasattr(value, "item") else value
