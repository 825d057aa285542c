"""Pull annotations back from the annotation tool, crash-safely, and stitch tiled images.

Pull
----
Every task of the study's project is read a page at a time; each task's annotations are
written in one transaction: new ones inserted, changed ones replace the current version (the
old one moves to ``annotation_versions``), ones gone from the tool are marked ``deleted``.
Masks are written as label TIFFs under ``STUDY/annotations/`` before the transaction that
points at them. A malformed annotation is kept (raw payload, ``status='malformed'``) and
reported, never dropped. A pull stopped at any point leaves whole tasks, and the next pull
picks up the rest.

Tiles
-----
Tasks of tiled images (see :mod:`loop.annotate.push`) are the tiles; pull stitches each
annotator's tiles into an annotation of the image's own task once every tile is done
(:func:`stitch_tiled`), so agreement, consensus and rounds see one annotation per annotator
per image, as for whole images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop.core.images import count_objects, read_mask, write_labels
from loop.core.tiles import stitch
from loop.errors import MalformedAnnotation
from loop.faults import crash_points
from loop.store import dumps, utcnow
from loop.store.lock import locked
from loop.study import Study
from loop.types import AnnotationTool, ToolAnnotation

ANNOTATIONS_DIR = Path("annotations")


@dataclass
class PullReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped_by_annotator: int = 0
    malformed: list[str] = field(default_factory=list)
    unknown_tasks: int = 0
    unknown_accounts: list[str] = field(default_factory=list)  # ``user<id>``: not the study's
    tasks_seen: int = 0
    tasks_done: int = 0
    stitched: int = 0  # annotations of tiled images made (or remade) from their tiles
    tile_gaps: list[str] = field(default_factory=list)  # tiled images no one can finish


def annotator_names(study: Study, tool: AnnotationTool) -> dict[str, str]:
    """The tool's user id -> our annotator name, for the accounts the study knows."""
    return dict(
        study.store.db.execute(
            "SELECT external_id, name FROM annotators WHERE tool = ?", [tool.name]
        ).fetchall()
    )


def _write_mask(study: Study, task_id: int, annotator: str, version: int, mask: np.ndarray) -> str:
    rel = ANNOTATIONS_DIR / str(task_id) / f"{annotator}_v{version}.tif"
    write_labels(study.path / rel, mask)
    return rel.as_posix()


def _convert(study: Study, tool: AnnotationTool, task: dict, image: dict, ann: ToolAnnotation):
    """(mask, class, n_objects) of an annotation of a task (an image or a tile of it); raises
    MalformedAnnotation."""
    if ann.cancelled:
        return None, None, None
    if study.config.task == "segmentation":
        shape = (image["height"], image["width"])
        if task["tile"]:
            shape = tuple(json.loads(task["tile"])[2:])
        mask = tool.to_mask(ann.result, shape)
        return mask, None, count_objects(mask)
    return None, tool.to_class(ann.result), None


@locked("pull")
def pull(
    study: Study,
    tool: AnnotationTool,
    *,
    page_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> PullReport:
    """Bring the tool's annotations into the store (incremental, never loses one), from the
    study's annotation project and its adjudication project."""
    db = study.store.db
    report = PullReport()
    projects = list(db["tool_projects"].rows_where("tool = ?", [tool.name], order_by="id"))
    crash = crash_points()
    names = annotator_names(study, tool)
    total = db.execute(
        "SELECT count(*) FROM tasks WHERE tool = ? AND external_id IS NOT NULL", [tool.name]
    ).fetchone()[0]
    for project_row in projects:
        project = project_row["project"]
        by_external = {
            t["external_id"]: t
            for t in db["tasks"].rows_where(
                "tool = ? AND project = ? AND external_id IS NOT NULL", [tool.name, project]
            )
        }
        for page in tool.iter_tasks(project, page_size=page_size):
            for state in page:
                task = by_external.get(state.external_id)
                if task is None:
                    report.unknown_tasks += 1
                    continue
                _pull_task(study, tool, task, state.annotations, names, report)
                report.tasks_seen += 1
                crash.hit("pull.task")
            if progress:
                progress(report.tasks_seen, total)
    stitch_tiled(study, report)
    return report


def stitch_tiled(study: Study, report: PullReport) -> None:
    """For each tiled image, each annotator who has done every tile gets one annotation of
    the image (the tiles stitched, :func:`loop.core.tiles.stitch`); idempotent: made again only
    when one of the tile annotations changed, marked deleted when one is deleted.

    A skipped tile makes the image's annotation skipped, a malformed one malformed (kept and
    reported, as for whole images).
    """
    db = study.store.db
    parents = db.query(
        "SELECT p.* FROM tasks p WHERE p.purpose = 'annotate' AND p.external_id IS NULL "
        "AND EXISTS (SELECT 1 FROM tasks t WHERE t.purpose = 'tile' AND t.image_id = p.image_id "
        "AND t.tool = p.tool AND t.project = p.project) ORDER BY p.id"
    )
    for parent in list(parents):
        tiles = list(
            db["tasks"].rows_where(
                "purpose = 'tile' AND image_id = ? AND tool = ? AND project = ?",
                [parent["image_id"], parent["tool"], parent["project"]],
                order_by="id",
            )
        )
        by_annotator: dict[str, dict[int, dict]] = {}
        marks = ", ".join("?" for _ in tiles)
        for row in db["annotations"].rows_where(
            f"task_id IN ({marks}) AND status != 'deleted'", [t["id"] for t in tiles]
        ):
            by_annotator.setdefault(row["annotator"], {})[row["task_id"]] = row
        image = db["images"].get(parent["image_id"])
        current = {
            a["annotator"]: a for a in db["annotations"].rows_where("task_id = ?", [parent["id"]])
        }
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
        _store_annotations(study, parent, prepared, current, present, written)
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
        "mask_path": _write_mask(study, parent["id"], name, version, mask),
        "n_objects": count_objects(mask),
    }


def _latest_per_annotator(annotations, names: dict[str, str]) -> dict[str, ToolAnnotation]:
    """One annotation per annotator (the newest, by id, if someone made several); accounts the
    study does not know are named ``user<id>``."""
    out: dict[str, ToolAnnotation] = {}
    for ann in sorted(annotations, key=lambda a: int(a.external_id)):
        out[names.get(ann.user_external_id, f"user{ann.user_external_id}")] = ann
    return out


def _pull_task(
    study: Study,
    tool: AnnotationTool,
    task: dict,
    annotations,
    names: dict[str, str],
    report: PullReport,
) -> None:
    db = study.store.db
    image = db["images"].get(task["image_id"])
    current = {a["annotator"]: a for a in db["annotations"].rows_where("task_id = ?", [task["id"]])}
    latest = _latest_per_annotator(annotations, names)
    for name in latest:
        if name not in names.values() and name not in report.unknown_accounts:
            report.unknown_accounts.append(name)  # kept, but said: agreement counts them
    prepared = []
    for name, ann in latest.items():
        payload = dumps({"result": ann.result, "cancelled": ann.cancelled})
        old = current.get(name)
        if (
            old is not None
            and old["result"] == payload
            and old["external_id"] == ann.external_id
            and old["status"] != "deleted"
        ):
            report.unchanged += 1
            continue
        version = 1 if old is None else old["version"] + 1
        status, mask_path, klass, n_objects = "current", None, None, None
        try:
            mask, klass, n_objects = _convert(study, tool, task, image, ann)
        except MalformedAnnotation as exc:
            status = "malformed"
            report.malformed.append(f"task {task['id']} ({image['name']}), {name}: {exc}")
        else:
            if ann.cancelled:
                status = "skipped"
                report.skipped_by_annotator += 1
            elif mask is not None:
                mask_path = _write_mask(study, task["id"], name, version, mask)
        prepared.append(
            (
                old,
                {
                    "task_id": task["id"],
                    "image_id": image["id"],
                    "annotator": name,
                    "external_id": ann.external_id,
                    "result": payload,
                    "mask_path": mask_path,
                    "class": klass,
                    "n_objects": n_objects,
                    "lead_time": ann.lead_time,
                    "status": status,
                    "version": version,
                },
            )
        )
    _store_annotations(study, task, prepared, current, set(latest), report)


def _store_annotations(
    study: Study,
    task: dict,
    prepared: list[tuple[dict | None, dict]],
    current: dict[str, dict],
    present: set[str],
    report: PullReport,
) -> None:
    """Write a task's new and changed annotations (``prepared``: (current row or None, new
    row)), mark those of annotators not ``present`` any more deleted, and set the task's
    status, in one transaction."""
    store, db = study.store, study.store.db
    now = utcnow()
    with store.atomic():
        for old, row in prepared:
            if old is None:
                db["annotations"].insert(
                    {**row, "created_at": now, "updated_at": now, "pulled_at": now}
                )
                report.new += 1
            else:
                _archive(db, old, now)
                db["annotations"].update(old["id"], {**row, "updated_at": now, "pulled_at": now})
                report.updated += 1
        for name, old in current.items():
            if name not in present and old["status"] != "deleted":
                _archive(db, old, now)
                db["annotations"].update(
                    old["id"],
                    {
                        "status": "deleted",
                        "version": old["version"] + 1,
                        "updated_at": now,
                        "pulled_at": now,
                    },
                )
                report.deleted += 1
        n_done = db.execute(
            "SELECT count(*) FROM annotations WHERE task_id = ? AND status = 'current'",
            [task["id"]],
        ).fetchone()[0]
        status = "done" if n_done >= (task["overlap"] or 1) else "open"
        if status != task["status"]:
            db["tasks"].update(task["id"], {"status": status, "updated_at": now})
    report.tasks_done += status == "done"


def _archive(db, old: dict, now: str) -> None:
    db["annotation_versions"].insert(
        {
            **{k: v for k, v in old.items() if k != "id"},
            "annotation_id": old["id"],
            "replaced_at": now,
        }
    )
