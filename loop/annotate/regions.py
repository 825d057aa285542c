"""Region tasks: an expert annotates a square of an image where the model is unsure, not the
whole image, and the consensus of each region becomes part of a *partial label*.

Push: each chosen region (:func:`loop.learn.regions.choose_regions`) is a task of purpose
``region`` in the study's project; the annotator sees the region with ``context`` pixels around
it and its frame drawn, the model's objects that touch it pre-drawn, and the rule: outline every
object that touches the frame, whole (even where it crosses the frame), nothing else.

Agree: the annotations of a region task are compared on the objects that touch the region
(pairwise object F1 at IoU 0.5), fused (majority or STAPLE) and merged into the image's
consensus label, whose *known* mask grows by the region and the objects drawn in it; an object
seen in two regions is kept once (the newer replaces an older one it overlaps at IoU >= 0.5).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from loop.annotate.partial import CONSENSUS_DIR, save_partial_label
from loop.annotate.push import PushReport, create_pending, ensure_project
from loop.core.agreement import iou_matrix, object_f1
from loop.core.fusion import consensus_mask
from loop.core.images import read_mask, write_labels
from loop.core.regions import relative, touching, with_context
from loop.errors import PushRefused
from loop.store import annotations as q
from loop.store import dumps, utcnow
from loop.store import regions as rq
from loop.store.labels import label_of
from loop.store.lock import locked
from loop.study import Study
from loop.tasks import box_classes, names, pixel_classes, task_of
from loop.types import AnnotationTool, Prediction

PURPOSE = "region"


@locked("push")
def push_regions(
    study: Study,
    tool: AnnotationTool,
    regions: Sequence[tuple[int, Sequence[int]]],
    *,
    overlap: int = 3,
    context: int = 32,
    arm: str = "main",
    round: int | None = None,
    predictions: Callable[[dict], Prediction | Sequence[Prediction] | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PushReport:
    """One task per ``(image id, [row, col, height, width])`` region (idempotent, resumable).

    Raises
    ------
    PushRefused
        For an overlap below 1, a classification study, a test image, or a region outside
        its image.
    """
    if overlap < 1:
        raise PushRefused(f"--overlap {overlap}: ask for at least one annotator per task")
    if not task_of(study.config.task).regions:
        raise PushRefused(
            f"regions are annotated in {names(lambda t: t.regions)} studies only; this study's "
            f"task is {study.config.task}"
        )
    store = study.store
    project = ensure_project(study, tool, overlap=overlap)
    report = PushReport(project=project)
    now = utcnow()
    with store.atomic():
        for image_id, box in regions:
            image = store.image(int(image_id))
            r, c, h, w = (int(v) for v in box)
            if image is None or image["split"] not in ("pool", "labeled"):
                raise PushRefused(f"image {image_id} cannot be annotated (test or excluded)")
            if (
                r < 0
                or c < 0
                or h < 1
                or w < 1
                or r + h > image["height"]
                or (c + w > image["width"])
            ):
                raise PushRefused(
                    f"region {[r, c, h, w]} lies outside image {image_id} "
                    f"({image['height']}x{image['width']})"
                )
            region = dumps([r, c, h, w])
            where = {"tool": tool.name, "project": project}
            task_id = rq.region_task_of(store, image["id"], region, **where)
            if task_id is None:
                tile = with_context((r, c, h, w), image["height"], image["width"], context)
                task_id = q.add_task(
                    store,
                    {
                        "image_id": image["id"],
                        "arm": arm,
                        "round": round,
                        "purpose": PURPOSE,
                        "tool": tool.name,
                        "project": project,
                        "external_id": None,
                        "overlap": overlap,
                        "tile": dumps(list(tile)),
                        "region": region,
                        "status": "pending",
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            else:
                report.already += 1
            report.task_ids.append(task_id)
    create_pending(study, tool, project, report, predictions=predictions, progress=progress)
    return report


@dataclass
class RegionReport:
    """What :func:`agree_regions` did."""

    fused: list[int] = field(default_factory=list)  # region tasks merged into partial labels
    already: int = 0  # fused before (or the image has a whole consensus)
    waiting: list[int] = field(default_factory=list)  # too few valid annotations yet
    low: dict[int, float] = field(default_factory=dict)  # task -> agreement below the bar
    agreement: dict[int, float | None] = field(default_factory=dict)  # task -> mean pairwise F1
    stale: list[int] = field(default_factory=list)  # the image changed since the task was pushed
    empty: list[int] = field(default_factory=list)  # no object at the frame: known background
    outside: dict[int, int] = field(default_factory=dict)  # task -> objects drawn off the frame

    def lines(self) -> list[str]:
        """What a user should read about the region tasks, one line each."""
        out = []
        if self.fused or self.already or self.waiting or self.low:
            out.append(
                f"regions: {len(self.fused)} merged into partial labels, {self.already} "
                f"before, {len(self.waiting)} waiting for annotations, {len(self.low)} below "
                f"--min-agreement (not used: {sorted(self.low)[:20]})"
            )
        return out + self.notes()

    def notes(self) -> list[str]:
        """The outcomes out of the ordinary: empty regions, objects off the frame, stale
        tasks."""
        out = []
        if self.empty:
            out.append(
                f"regions: {len(self.empty)} with no object at the frame, kept as known "
                f"background (tasks {sorted(self.empty)[:20]})"
            )
        if self.outside:
            out.append(
                f"regions: {sum(self.outside.values())} object(s) drawn away from the frame "
                f"were left out, as the task's rule says (tasks {sorted(self.outside)[:20]})"
            )
        if self.stale:
            out.append(
                f"regions: {len(self.stale)} task(s) not used, their image changed since they "
                f"were pushed (tasks {sorted(self.stale)[:20]}); their annotations are kept, "
                "and `loop push --regions` asks for the region again on the new image"
            )
        return out


def agree_regions(
    study: Study, *, method: str = "majority", min_agreement: float = 0.5, min_annotations: int = 2
) -> RegionReport:
    """Measure agreement on every region task with enough current annotations and merge its
    consensus into the image's partial consensus label (idempotent: a task is merged once)."""
    store = study.store
    report = RegionReport()
    for task_id, rows in sorted(rq.current_by_region_task(store).items()):
        needed = min(rows[0]["task_overlap"] or 1, min_annotations)
        if len(rows) < needed:
            report.waiting.append(task_id)
            continue
        image = store.image(rows[0]["image_id"])
        if task_id in _merged(store, image["id"]):
            report.already += 1
            continue
        if rq.changed_since(store, image["id"], rows[0]["task_created_at"]):
            rq.mark_stale(store, task_id)
            report.stale.append(task_id)
            continue
        tile = json.loads(rows[0]["task_tile"])
        if box_classes(study.config):
            from loop.annotate.regions_boxes import agree_boxed_region

            agree_boxed_region(study, image, task_id, rows, tile, method, min_agreement, report)
            continue
        frame = relative(json.loads(rows[0]["task_region"]), tile)
        shape = (tile[2], tile[3])
        drawn = {r["annotator"]: read_mask(study.resolve(r["mask_path"]), shape) for r in rows}
        if pixel_classes(study.config):
            _agree_painted_region(
                study, image, task_id, rows, drawn, frame, method, min_agreement, report
            )
            continue
        masks = {name: touching(mask, frame) for name, mask in drawn.items()}
        off = sum(_count(drawn[n]) - _count(masks[n]) for n in drawn)
        if off:
            report.outside[task_id] = off
        pairs = [
            object_f1(masks[a], masks[b])["f1_50"] for a, b in itertools.combinations(masks, 2)
        ]
        agreement = float(np.mean(pairs)) if pairs else None
        report.agreement[task_id] = agreement
        if agreement is not None and agreement < min_agreement:
            report.low[task_id] = agreement
            continue
        fused = touching(consensus_mask(list(masks.values()), method=method), frame)
        if not fused.any():
            report.empty.append(task_id)
        _merge(study, image, task_id, tile, json.loads(rows[0]["task_region"]), fused, rows,
               method, agreement)  # fmt: skip
        report.fused.append(task_id)
    return report


def _agree_painted_region(study, image, task_id, rows, drawn, frame, method, min_agreement, report):
    """A region task of pixel classes: the annotators' paintings inside the frame (what lies
    outside is not used), compared pairwise by mean foreground Dice (two empty paintings
    agree), fused per pixel and merged into the image's partial class map, known over the
    region exactly."""
    from loop.core.classmaps import class_scores, fuse

    classes = study.config.labels.classes
    r, c, h, w = frame
    inside = {name: m[r : r + h, c : c + w] for name, m in drawn.items()}
    pairs = []
    for a, b in itertools.combinations(inside, 2):
        dice = class_scores(inside[a], inside[b], classes)["mean_dice"]
        pairs.append(1.0 if dice is None else dice)  # None: neither painted anything
    agreement = float(np.mean(pairs)) if pairs else None
    report.agreement[task_id] = agreement
    if agreement is not None and agreement < min_agreement:
        report.low[task_id] = agreement
        return
    fused = fuse(list(inside.values()), len(classes), method=method)
    if not fused.any():
        report.empty.append(task_id)
    region = json.loads(rows[0]["task_region"])
    mask, known = _partial_consensus(study, image)
    ar, ac, ah, aw = region
    mask[ar : ar + ah, ac : ac + aw] = fused
    known[ar : ar + ah, ac : ac + aw] = True
    _save_partial(study, image, task_id, mask, known, rows, method, agreement)
    report.fused.append(task_id)


def _partial_consensus(study, image) -> tuple[np.ndarray, np.ndarray]:
    """(label image, known pixels) of the image's consensus so far (nothing known: zeros)."""
    existing = label_of(study.store, image["id"], "consensus")
    shape = (image["height"], image["width"])
    if existing is None:
        return np.zeros(shape, np.int32), np.zeros(shape, bool)
    mask = read_mask(study.resolve(existing["mask_path"]), shape).copy()
    return mask, read_mask(study.resolve(existing["known_path"]), shape) > 0


def _merged(store, image_id: int) -> set[int]:
    """The region tasks already merged into the image's consensus label (all of them when
    the consensus is of the whole image)."""
    label = label_of(store, image_id, "consensus")
    if label is None:
        return set()
    if not label.get("known_path"):
        return set(rq.region_tasks_of_image(store, image_id))
    return set(json.loads(label["provenance"] or "{}").get("regions", []))


def _count(mask: np.ndarray) -> int:
    return len(np.unique(mask[mask > 0]))


def _merge(study, image, task_id, tile, region, fused, rows, method, agreement) -> None:
    """Merge a region's consensus into the image's partial consensus label (the caller has
    checked that the task is not merged yet and that the consensus is not whole)."""
    mask, known = _partial_consensus(study, image)
    new = np.zeros(mask.shape, np.int32)
    r0, c0, h, w = tile
    new[r0 : r0 + h, c0 : c0 + w] = np.where(fused > 0, fused + mask.max(), 0)
    iou, old_ids, new_ids = iou_matrix(mask, new)
    if iou.size:
        seen = old_ids[(iou >= 0.5).any(axis=1)]  # the same object, seen again: replaced
        mask[np.isin(mask, seen)] = 0
    mask = np.where(new > 0, new, mask)
    from skimage.segmentation import relabel_sequential

    mask = relabel_sequential(mask)[0].astype(np.int32)
    r, c, rh, rw = region
    known[r : r + rh, c : c + rw] = True
    known |= mask > 0
    _save_partial(study, image, task_id, mask, known, rows, method, agreement)


def _save_partial(study, image, task_id, mask, known, rows, method, agreement) -> None:
    """Write the image's partial consensus (label image and known pixels) with the region
    task added to its provenance."""
    stem = f"{image['id']}_{image['name']}"
    mask_rel = f"{CONSENSUS_DIR}/{stem}_regions.tif"
    write_labels(study.path / mask_rel, mask)
    label = {"kind": "mask", "mask_path": mask_rel, "n_objects": _count(mask)}
    save_partial_label(study, image, task_id, label, known, rows, method, agreement)


def chosen_regions(study: Study) -> list[tuple[int, list[int]]]:
    """The ``(image id, region)`` pairs of the newest region selection (`loop score
    --strategy NAME@region`).

    Raises
    ------
    PushRefused
        When no region selection was made.
    """
    selection = rq.latest_region_selection(study.store)
    if selection is None:
        raise PushRefused(
            "no regions chosen yet: run `loop score STUDY --strategy flip@region` first"
        )
    return [(int(row[0]), [int(v) for v in row[1:]]) for row in json.loads(selection["regions"])]
