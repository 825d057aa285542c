"""Simulated annotators: real Label Studio accounts that annotate from ground truth with a
seeded, per-annotator noise model. For demos, tests and benchmarks.

Each simulated annotator asks Label Studio's own queue for its next task (``/next``, with its
own token, as the labeling stream does), so the overlap Label Studio enforces is what is
tested, then saves a noisy copy of the ground truth (of the task's tile, for a tiled image)
with a plausible lead time.

Noise for instance masks (:func:`noisy_mask`): boundary jitter (erode or dilate by a few
pixels), missed small objects, false positives, merges of touching objects, splits; for
classes (:func:`noisy_class`): label flips. How much of each: a
:class:`loop.noise.NoiseProfile` (built-in ones, or ``[noise.NAME]`` in ``loop.toml``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from connectors.accounts import connect_as
from connectors.labelstudio import LabelStudio
from connectors.ls_boxes import boxes_to_results, results_to_boxes
from connectors.ls_results import (
    OBJECT_LABEL,
    class_to_results,
    mask_to_results,
    results_to_objects,
)
from connectors.simulated_boxes import corrected_boxes, seen_boxes
from loop.core.images import read_mask
from loop.core.regions import touching
from loop.core.tiles import crop
from loop.errors import MalformedAnnotation, ToolRejected
from loop.noise import NoiseProfile


def noisy_mask(truth: np.ndarray, profile: NoiseProfile, rng: np.random.Generator) -> np.ndarray:
    """A plausible human annotation of ``truth``.

    Parameters
    ----------
    truth : ndarray of shape (M, N)
        Instance labels, 0 = background.
    profile : NoiseProfile
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (M, N), dtype int32
        Objects relabelled 1..K.
    """
    truth = np.asarray(truth)
    labels = [int(v) for v in np.unique(truth) if v != 0]
    out = np.zeros(truth.shape, dtype=np.int32)
    if not labels:
        return out
    areas = ndi.sum_labels(np.ones_like(truth), truth, labels)
    small = areas < 0.5 * np.median(areas)
    # merges: relabel an object as a touching neighbour
    alias = {v: v for v in labels}
    if profile.merge > 0:
        grown = ndi.grey_dilation(truth, size=3)
        for v in labels:
            if rng.random() < profile.merge:
                neighbours = np.unique(grown[(truth == v) | (ndi.binary_dilation(truth == v))])
                neighbours = [int(n) for n in neighbours if n not in (0, v)]
                if neighbours:
                    alias[v] = alias[neighbours[0]]
    next_label = 1
    assigned: dict[int, int] = {}
    for v, is_small in zip(labels, small):
        if rng.random() < (profile.miss_small if is_small else profile.miss):
            continue
        region = truth == v
        lo, hi = profile.jitter
        k = int(rng.integers(lo, hi + 1)) if hi > 0 else 0
        if k:
            if rng.random() < 0.5:
                eroded = ndi.binary_erosion(region, iterations=k)
                region = eroded if eroded.sum() >= 4 else region
            else:
                region = ndi.binary_dilation(region, iterations=k) & (
                    (out == 0) & ((truth == 0) | region)
                )
        target = alias[v]
        if target not in assigned:
            assigned[target] = next_label
            next_label += 1
        label = assigned[target]
        if profile.split > 0 and region.sum() > 60 and rng.random() < profile.split:
            rows, cols = np.nonzero(region)
            along = rows if np.ptp(rows) >= np.ptp(cols) else cols  # cut across the long axis
            half = along > np.median(along)
            out[rows[half], cols[half]] = next_label
            out[rows[~half], cols[~half]] = label
            next_label += 1
        else:
            out[region & (out == 0)] = label
    n_false = rng.poisson(profile.false_positive * len(labels)) if profile.false_positive else 0
    radius = max(2.0, float(np.sqrt(np.median(areas) / np.pi)) / 2)
    for _ in range(n_false):
        r, c = rng.integers(0, truth.shape[0]), rng.integers(0, truth.shape[1])
        rr, cc = np.ogrid[: truth.shape[0], : truth.shape[1]]
        blob = ((rr - r) ** 2 + (cc - c) ** 2 <= radius**2) & (out == 0) & (truth == 0)
        if blob.sum() >= 4:
            out[blob] = next_label
            next_label += 1
    return out


def corrected_mask(
    pre: np.ndarray | None, truth: np.ndarray, profile: NoiseProfile, rng: np.random.Generator
) -> np.ndarray:
    """What an annotator of ``profile`` leaves after correcting the pre-annotation ``pre``
    toward ``truth``: the true objects whose pre-drawn outline matches at IoU >=
    ``profile.accept`` keep that outline; the others are drawn as :func:`noisy_mask` draws
    them; a pre-drawn object that matches no true object is deleted, or overlooked (kept)
    with probability ``profile.miss``. Without a pre-annotation: :func:`noisy_mask`.
    """
    drawn = noisy_mask(truth, profile, rng)
    if pre is None or not np.any(pre):
        return drawn
    from loop.core.agreement import iou_matrix, match

    iou, pre_ids, truth_ids = iou_matrix(pre, truth)
    rows, cols, ious = match(iou)
    accepted = {int(truth_ids[c]): int(pre_ids[r]) for r, c, v in zip(rows, cols, ious)
                if v >= profile.accept}  # fmt: skip
    false = [int(pre_ids[i]) for i in range(len(pre_ids)) if not (iou[i] >= 0.5).any()]
    kept = [v for v in false if profile.miss and rng.random() < profile.miss]
    out = drawn.copy()
    if accepted:  # the annotator's own drawing of an accepted object gives way to the model's
        own = np.unique(drawn[np.isin(truth, list(accepted))])
        out[np.isin(out, own[own != 0])] = 0
    next_label = int(out.max()) + 1
    for pre_label in [*accepted.values(), *kept]:
        region = (pre == pre_label) & (out == 0)
        if region.any():
            out[region] = next_label
            next_label += 1
    return out


def noisy_classes(truth: np.ndarray, profile: NoiseProfile, rng: np.random.Generator) -> np.ndarray:
    """A plausible human painting of a class map: each class's connected areas drawn as
    :func:`noisy_mask` draws objects (outlines off by a few pixels, some missed, some false),
    the classes painted in order (a later class over an earlier one).

    Parameters
    ----------
    truth : ndarray of shape (M, N)
        Class indices, 0 = background (unpainted).
    """
    truth = np.asarray(truth)
    out = np.zeros(truth.shape, np.uint8)
    for k in (int(v) for v in np.unique(truth) if v != 0):
        areas, _ = ndi.label(truth == k)
        out[noisy_mask(areas, profile, rng) > 0] = k
    return out


def noisy_class(truth: str, classes, profile: NoiseProfile, rng: np.random.Generator) -> str:
    """``truth``, or with probability ``profile.flip`` another class chosen uniformly."""
    others = [c for c in classes if c != truth]
    if others and rng.random() < profile.flip:
        return others[int(rng.integers(len(others)))]
    return truth


def lead_time(profile: NoiseProfile, n_objects: int, rng: np.random.Generator) -> float:
    """Seconds a person of this profile would plausibly spend (log-normal spread)."""
    base = profile.seconds_per_image + profile.seconds_per_object * n_objects
    return float(base * rng.lognormal(0.0, 0.3))


@dataclass(frozen=True)
class Truth:
    """The ground truth a simulated annotator copies: a label image (``mask_path``, of the
    image's ``shape``) or a class."""

    kind: str  # mask | class | classmap
    shape: tuple[int, int]
    mask_path: Path | None = None
    klass: str | None = None
    classmap: np.ndarray | None = None  # classmap: the class of each pixel (0: background)
    names: tuple[str, ...] = ()  # classmap: the class names, the background first; boxes:
    # the object classes
    boxes: np.ndarray | None = None  # boxes: (B, 4) x1, y1, x2, y2
    box_classes: np.ndarray | None = None  # boxes: (B,) indices into ``names``
    radius: float | None = None  # boxes: points (of zero size) matched within this radius


@dataclass
class SimulationReport:
    annotated: dict  # annotator -> tasks annotated
    skipped: dict  # annotator -> tasks skipped (no ground truth)


def simulate(
    admin: LabelStudio,
    profiles: dict[str, NoiseProfile],
    *,
    root: Path,
    project: str | int | None,
    truth_of: Callable[[int], Truth | None],
    classes: Sequence[str] = (),
    label: str = OBJECT_LABEL,
    seed: int = 0,
    limit: int | None = None,
    purpose: str = "annotate",
    progress: Callable[[str, int], None] | None = None,
) -> SimulationReport:
    """Each named annotator annotates every task Label Studio's queue gives it in ``project``
    (the tool's project id; None: nothing to do), from ``truth_of(image id)`` with its noise
    profile; ``purpose`` ``"adjudicate"`` seeds a simulated reviewer apart.

    Parameters
    ----------
    root : Path
        The study's folder (its credentials file holds each annotator's token).
    classes : sequence of str
        The classes a flip may choose (classification).
    label : str
        The label of the regions drawn (the project's object name).

    Raises
    ------
    ToolRejected
        When the queue serves the same task twice (it would never end).
    """
    report = SimulationReport(annotated={}, skipped={})
    names = list(profiles)
    for name, profile in profiles.items():
        client = connect_as(root, name, admin)
        done = skipped = 0
        try:
            seen: set[str] = set()
            while project is not None and (limit is None or done + skipped < limit):
                task = client.next_task(project)
                if task is None:
                    break
                task_id = str(task["id"])
                if task_id in seen:
                    raise ToolRejected(f"Label Studio served task {task_id} twice to {name}")
                seen.add(task_id)
                image_id = int(task["data"]["loop_image_id"])
                tile = task["data"].get("loop_tile")  # [row, col, height, width]
                key = [seed, names.index(name), image_id, *(tile or [])[:2]]
                rng = np.random.default_rng(key + ([1] if purpose != "annotate" else []))
                truth = truth_of(image_id)
                if truth is None:
                    client.annotate(task_id, [], lead_time=5.0, cancelled=True)
                    skipped += 1
                    continue
                region = task["data"].get("loop_region")  # in the tile: objects touching it
                result, seconds = _annotation(
                    truth, tile, profile, classes, name, label, rng, region=region,
                    pre=_preannotation(task, truth, tile),
                )  # fmt: skip
                client.annotate(task_id, result, lead_time=round(seconds, 1))
                done += 1
                if progress:
                    progress(name, done)
        finally:
            client.close()
        report.annotated[name], report.skipped[name] = done, skipped
    return report


def _preannotation(task: dict, truth: Truth, tile):
    """The objects pre-drawn in a task (its first prediction), as a label image (or boxes
    and their class indices), or None."""
    if truth.kind == "boxes":
        shape = truth.shape if tile is None else (tile[2], tile[3])
        for prediction in task.get("predictions") or []:
            try:
                boxes, names = results_to_boxes(prediction.get("result") or [], shape)
            except MalformedAnnotation:
                return None
            index = {n: i for i, n in enumerate(truth.names)}
            return boxes, np.array([index.get(n.removesuffix("?"), 0) for n in names], np.int64)
        return None
    if truth.kind != "mask":
        return None
    shape = truth.shape if tile is None else (tile[2], tile[3])
    for prediction in task.get("predictions") or []:
        try:
            return results_to_objects(prediction.get("result") or [], shape)[0]
        except MalformedAnnotation:
            return None
    return None


def _annotation(
    truth: Truth, tile, profile, classes, name, label, rng, *, region=None, pre=None
) -> tuple[list, float]:
    """The result payload and lead time of one simulated annotation: a correction of the
    pre-annotation ``pre`` (:func:`corrected_mask`; of a region task: the objects that touch
    the region, whole, as the rule says)."""
    if truth.kind == "classmap":
        whole = truth.classmap if tile is None else crop(truth.classmap, tile)
        painted = noisy_classes(whole, profile, rng)
        results = mask_to_results(painted, prefix=f"{name}-", names=truth.names)
        return results, lead_time(profile, len(np.unique(painted)), rng)
    if truth.kind == "boxes":
        found, shape = seen_boxes(truth, tile, region)
        boxes, index = corrected_boxes(
            pre, found, len(truth.names), shape, profile, rng, radius=truth.radius
        )
        names = [truth.names[int(i)] for i in index]
        points = truth.radius is not None
        results = boxes_to_results(boxes, names, shape, prefix=f"{name}-", points=points)
        return results, lead_time(profile, len(boxes), rng)
    if truth.kind == "mask":
        whole = read_mask(truth.mask_path, truth.shape)
        if tile is not None:
            whole = crop(whole, tile)
        if region is not None:
            whole = touching(whole, region)
        mask = corrected_mask(pre, whole, profile, rng)
        results = mask_to_results(mask, prefix=f"{name}-", label=label)
        return results, lead_time(profile, int(mask.max()), rng)
    result = class_to_results(noisy_class(truth.klass, classes, profile, rng))
    return result, lead_time(profile, 0, rng)
