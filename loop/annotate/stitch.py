"""Tiled images: each annotator's tile annotations stitched into one annotation of the image.

Tasks of tiled images (see :mod:`loop.annotate.push`) are the tiles; a pull stitches each
annotator's tiles into an annotation of the image's own task once every tile is done
(:func:`stitch_tiled`), so agreement, consensus and rounds see one annotation per annotator
per image, as for whole images.
"""

from __future__ import annotations

import json

from loop.annotate.pulled import PullReport, store_annotations, write_mask
from loop.core.images import count_objects, read_mask
from loop.core.tiles import stitch
from loop.errors import MalformedAnnotation
from loop.store import annotations as q
from loop.store import dumps
from loop.study import Study


def stitch_tiled(study: Study, report: PullReport) -> None:
    """For each tiled image, each annotator who has done every tile gets one annotation of
    the image (the tiles stitched, :func:`loop.core.tiles.stitch`); idempotent: made again only
    when one of the tile annotations changed, marked deleted when one is deleted.

    A skipped tile makes the image's annotation skipped, a malformed one malformed (kept and
    reported, as for whole images).
    """
    store = study.store
    for parent, tiles in q.tiled_images(store):
        by_annotator: dict[str, dict[int, dict]] = {}
        for row in q.live_annotations(store, [t["id"] for t in tiles]):
            by_annotator.setdefault(row["annotator"], {})[row["task_id"]] = row
        image = store.image(parent["image_id"])
        current = q.current_annotations(store, parent["id"])
        prepared, present = [], set()
        for name, by_tile in by_annotator.items():
            if len(by_tile) < len(tiles):
                continue  # not every tile done yet
            present.add(name)
            rows = [by_tile[t["id"]] for t in tiles]
            signature = dumps(
                {"tiles": [[r["task_id"], r["external_id"], r["version"]] for r in rows]}
            )
            old = current.get(name)
            if old is not None and old["result"] == signature and old["status"] != "deleted":
                continue
            version = 1 if old is None else old["version"] + 1
            row = _stitched(study, parent, image, name, version, tiles, rows, report)
            prepared.append((old, {**row, "result": signature}))
        overlap = parent["overlap"] or 1
        if len(present) < overlap and all(t["status"] == "done" for t in tiles):
            report.tile_gaps.append(
                _tile_gap(image, len(tiles), overlap, len(present), by_annotator)
            )
        written = PullReport()
        store_annotations(study, parent, prepared, current, present, written)
        report.stitched += written.new + written.updated
        report.deleted += written.deleted


def _tile_gap(image: dict, n_tiles: int, overlap: int, complete: int, by_annotator: dict) -> str:
    """Why a tiled image cannot get its ``overlap`` whole annotations (``complete`` people
    did every tile), and what to do."""
    done = ", ".join(f"{n} {len(t)}/{n_tiles}" for n, t in sorted(by_annotator.items()))
    partial = sorted(n for n, t in by_annotator.items() if len(t) < n_tiles)
    return (
        f"{image['name']}: every tile has its {overlap} annotations, but "
        f"{complete} annotator(s) did all "
        f"{n_tiles} tiles ({done}): Label Studio's queue gave its tiles to different people. "
        f"Ask {' or '.join(partial)} to open the image's other tiles in the Data Manager and "
        "annotate them (tasks named after the image), or give tiled images as many annotators "
        "as the overlap"
    )


def _stitched(
    study: Study,
    parent: dict,
    image: dict,
    name: str,
    version: int,
    tiles: list[dict],
    rows: list[dict],
    report: PullReport,
) -> dict:
    """The annotation row of an image made from one annotator's tile annotations (``rows``,
    in the order of ``tiles``); its mask written."""
    times = [r["lead_time"] for r in rows if r["lead_time"] is not None]
    row = {
        "task_id": parent["id"],
        "image_id": image["id"],
        "annotator": name,
        "external_id": None,
        "mask_path": None,
        "class": None,
        "n_objects": None,
        "lead_time": sum(times) if times else None,
        "status": "current",
        "version": version,
    }
    statuses = {r["status"] for r in rows}
    where = f"task {parent['id']} ({image['name']}), {name}"
    if "malformed" in statuses:
        report.malformed.append(f"{where}: a tile's annotation is malformed, see its task")
        return {**row, "status": "malformed"}
    if "edited" in statuses:
        report.edited.append(f"{where}: a tile's annotation was saved by someone else")
        return {**row, "status": "edited"}
    if "skipped" in statuses:
        return {**row, "status": "skipped"}
    boxes = [tuple(json.loads(t["tile"])) for t in tiles]
    try:
        mask = stitch(
            [
                (box, read_mask(study.resolve(r["mask_path"]), box[2:]))
                for box, r in zip(boxes, rows)
            ],
            (image["height"], image["width"]),
        )
    except MalformedAnnotation as exc:
        report.malformed.append(f"{where}: {exc}")
        return {**row, "status": "malformed"}
    return {
        **row,
        "mask_path": write_mask(study, parent["id"], name, version, mask),
        "n_objects": count_objects(mask),
    }
