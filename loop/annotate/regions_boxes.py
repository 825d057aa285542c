"""Region tasks of boxes (detection): the annotators' boxes that touch the region's frame are
compared (pairwise F1 at IoU 0.5, or within the point radius), fused by majority and merged
into the image's partial consensus, a box file whose known pixels grow by the region and the
boxes drawn in it; a box seen in two regions is kept once (the newer replaces an older one
it overlaps)."""

from __future__ import annotations

import itertools
import json

import numpy as np

from loop.annotate.partial import CONSENSUS_DIR, save_partial_label
from loop.core.box_fusion import fuse_boxes, pair_agreement
from loop.core.boxes import as_boxes, in_tile, overlap
from loop.core.images import read_mask
from loop.core.regions import relative
from loop.store.boxes import read_boxes_file, write_boxes_file
from loop.store.labels import label_of
from loop.tasks import box_classes
from loop.tasks.detection import match_radius


def agree_boxed_region(study, image, task_id, rows, tile, method, min_agreement, report) -> None:
    """Agreement, consensus and merge of one region task of boxes (see the module); the
    outcome is recorded in ``report`` (:class:`loop.annotate.regions.RegionReport`)."""
    classes, radius = box_classes(study.config), match_radius(study.config)
    points = radius is not None
    region = json.loads(rows[0]["task_region"])
    frame = relative(region, tile)
    drawn = {r["annotator"]: read_boxes_file(study.resolve(r["mask_path"]), classes) for r in rows}
    at = {}
    for name, (boxes, index) in drawn.items():
        keep = in_tile(boxes, frame, points=points)[1]  # touching the frame, kept whole
        at[name] = (boxes[keep], index[keep])
    off = sum(len(drawn[n][0]) - len(at[n][0]) for n in drawn)
    if off:
        report.outside[task_id] = off
    pairs = [
        pair_agreement(*at[a], *at[b], radius=radius)["f1"]
        for a, b in itertools.combinations(at, 2)
    ]
    agreement = float(np.mean(pairs)) if pairs else None
    report.agreement[task_id] = agreement
    if agreement is not None and agreement < min_agreement:
        report.low[task_id] = agreement
        return
    boxes, index, _ = fuse_boxes(list(at.values()), radius=radius)
    if not len(boxes):
        report.empty.append(task_id)
    shift = [tile[1], tile[0], tile[1], tile[0]]  # into the image's coordinates
    boxes = as_boxes(boxes) + shift
    merged, merged_index, known = _merged(study, image, boxes, index, radius)
    r, c, h, w = region
    known[r : r + h, c : c + w] = True
    if not points:
        for x1, y1, x2, y2 in boxes.astype(int):
            known[max(y1, 0) : y2, max(x1, 0) : x2] = True
    path, sha = write_boxes_file(
        study.path / CONSENSUS_DIR, merged, [classes[int(i)] for i in merged_index]
    )
    label = {
        "kind": "boxes",
        "mask_path": path.relative_to(study.path).as_posix(),
        "mask_sha256": sha,
        "n_objects": len(merged),
    }
    save_partial_label(study, image, task_id, label, known, rows, method, agreement)
    report.fused.append(task_id)


def _merged(study, image, boxes, index, radius):
    """The image's partial consensus so far (boxes, classes, known pixels) with ``boxes``
    added: an older box that a new one overlaps (IoU >= 0.5, or within the radius) is the same
    object seen again, and goes."""
    shape = (image["height"], image["width"])
    existing = label_of(study.store, image["id"], "consensus")
    if existing is None or not existing.get("known_path"):
        return boxes, np.asarray(index, np.int64), np.zeros(shape, bool)
    old, old_index = read_boxes_file(
        study.resolve(existing["mask_path"]), box_classes(study.config)
    )
    known = read_mask(study.resolve(existing["known_path"]), shape) > 0
    if len(old) and len(boxes):
        seen = (overlap(old, boxes, radius) >= 0.5).any(axis=1)
        old, old_index = old[~seen], old_index[~seen]
    merged = np.concatenate([old, as_boxes(boxes)])
    return merged, np.concatenate([old_index, np.asarray(index, np.int64)]), known.copy()
