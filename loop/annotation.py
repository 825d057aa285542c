"""Push images to the annotation tool and pull annotations back, crash-safely.

Push
----
1. The study's task rows are written first (``status='pending'``, no external id), in one
   transaction: the store knows what it is about to create.
2. Pending tasks the tool already has (a push killed after creating them) are found by the key
   stored in their data and adopted; the rest are created in batches with their
   pre-annotations, and their external ids written back in one transaction per batch.
So a killed push re-run ends with exactly one task per image, and pushing an image again
creates nothing.

Tiles
-----
With a :class:`~loop.tiles.Tiling`, an image larger than ``tiling.above`` gets one task row
of its own (``tile`` NULL, never sent to the tool) and one row per tile (``purpose='tile'``,
``tile`` = JSON [row, col, height, width]) which are the tool's tasks, all written in the same
transaction. Pull stitches each annotator's tiles into an annotation of the image's own task
once every tile is done (:func:`stitch_tiled`), so agreement, consensus and rounds see one
annotation per annotator per image, as for whole images.

Pull
----
Every task of the study's project is read a page at a time; each task's annotations are
written in one transaction: new ones inserted, changed ones replace the current version (the
old one moves to ``annotation_versions``), ones gone from the tool are marked ``deleted``.
Masks are written as label TIFFs under ``STUDY/annotations/`` before the transaction that
points at them. A malformed annotation is kept (raw payload, ``status='malformed'``) and
reported, never dropped. A pull stopped at any point leaves whole tasks, and the next pull
picks up the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop.errors import MalformedAnnotation, PushRefused
from loop.faults import crash_points
from loop.images import count_objects, read_image, read_mask, to_display_uint8, write_labels
from loop.store import dumps, utcnow
from loop.study import Study
from loop.tiles import Box, Tiling, crop, stitch
from loop.types import AnnotationTool, Prediction, ToolAnnotation, ToolTask

PUSHABLE_SPLITS = ("pool", "labeled")
MEDIA_DIR = Path("labelstudio") / "media"
ANNOTATIONS_DIR = Path("annotations")
BATCH = 100


def project_title(study: Study) -> str:
    """A title unique to the study's folder (Label Studio wants 3..50 characters)."""
    digest = hashlib.sha1(str(study.path.resolve()).encode()).hexdigest()[:8]
    return f"loop {study.path.resolve().name[:30]} {digest}"


def classes_of(study: Study) -> list[str]:
    """The classes a classification study knows (from its ground truth and consensus)."""
    rows = study.store.db.execute(
        "SELECT DISTINCT class FROM labels WHERE kind = 'class' AND class IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def ensure_project(
    study: Study, tool: AnnotationTool, *, overlap: int, purpose: str = "annotate"
) -> str:
    """The study's project in the tool (created on first use, recorded in ``tool_projects``)."""
    db = study.store.db
    rows = list(db["tool_projects"].rows_where("tool = ? and purpose = ?", [tool.name, purpose]))
    existing = rows[0]["project"] if rows else None
    title = project_title(study) if purpose == "annotate" else f"{project_title(study)} adj"
    project = tool.ensure_project(
        title=title,
        task=study.config.task,
        classes=classes_of(study),
        overlap=overlap,
        existing=existing,
    )
    with study.store.atomic():
        if rows:
            db["tool_projects"].update(rows[0]["id"], {"project": project, "overlap": overlap})
        else:
            db["tool_projects"].insert(
                {
                    "tool": tool.name,
                    "purpose": purpose,
                    "project": project,
                    "title": title,
                    "overlap": overlap,
                    "created_at": utcnow(),
                }
            )
    return project


def select_for_push(
    study: Study,
    *,
    image_ids: Sequence[int] | None = None,
    split: str = "pool",
    limit: int | None = None,
) -> list[dict]:
    """The images to push: given ids (checked), or the first ``limit`` of a split.

    Raises
    ------
    PushRefused
        For unknown ids, or images of the test split or excluded ones.
    """
    store = study.store
    if image_ids is not None:
        rows = []
        for image_id in image_ids:
            found = store.images("id = ?", [image_id])
            if not found:
                raise PushRefused(f"no image with id {image_id} in the study")
            rows.append(found[0])
    else:
        if split not in PUSHABLE_SPLITS:
            raise PushRefused(
                f"--split {split}: only {' or '.join(PUSHABLE_SPLITS)} images are annotated"
            )
        rows = store.images("split = ?", [split])
        rows = rows[:limit] if limit is not None else rows
    refused = [r for r in rows if r["split"] not in PUSHABLE_SPLITS]
    if refused:
        names = ", ".join(f"{r['id']} ({r['split']})" for r in refused[:5])
        raise PushRefused(
            f"{len(refused)} image(s) cannot be annotated: {names}; test images are held out "
            "and never offered for annotation, excluded images are outside the study"
        )
    return rows


def display_png(study: Study, image: dict, tile: Box | None = None) -> str:
    """Write (once) a browser-viewable PNG of an image, or of one tile of it (contrast set on
    the whole image, so that tiles match); returns its path relative to the study."""
    from PIL import Image

    suffix = "" if tile is None else "_tile_{}_{}_{}x{}".format(*tile)
    rel = MEDIA_DIR / f"{image['id']}_{image['sha256'][:12]}{suffix}.png"
    target = study.path / rel
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = to_display_uint8(read_image(Path(image["root"]) / image["path"]))
        if tile is not None:
            pixels = crop(pixels, tile)
        tmp = target.with_suffix(".tmp.png")
        Image.fromarray(pixels).save(tmp)
        os.replace(tmp, target)
    return rel.as_posix()


@dataclass
class PushReport:
    project: str
    created: int = 0
    adopted: int = 0  # created by a push that was killed, found again
    already: int = 0  # pushed before
    task_ids: list[int] = field(default_factory=list)  # one per image
    tiled: int = 0  # images of this push cut into tiles


def push(
    study: Study,
    tool: AnnotationTool,
    images: Sequence[dict],
    *,
    overlap: int = 3,
    arm: str = "main",
    round: int | None = None,
    predictions: Callable[[dict], Prediction | Sequence[Prediction] | None] | None = None,
    purpose: str = "annotate",
    reviewer: str | None = None,
    tiling: Tiling | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Create one task per image (or per tile of a large image) in the project of
    ``purpose`` (idempotent, resumable).

    Parameters
    ----------
    images : sequence of images rows
        From :func:`select_for_push`.
    overlap : int
        Distinct annotators wanted per task.
    predictions : callable(image row) -> Prediction, sequence of them, or None, optional
        The pre-annotations of an image: the model's, or each annotator's for a review.
    purpose : {"annotate", "adjudicate"}
        Which of the study's projects the tasks go to.
    reviewer : str, optional
        Adjudication: the annotator whose label decides (stored with the task).
    tiling : Tiling, optional
        Cut images larger than ``tiling.above`` into tiles, one task each (segmentation).

    Raises
    ------
    PushRefused
        For an overlap below 1, or tiles asked for a classification study or a review.
    """
    if overlap < 1:
        raise PushRefused(f"--overlap {overlap}: ask for at least one annotator per task")
    if tiling is not None and (study.config.task != "segmentation" or purpose != "annotate"):
        raise PushRefused(
            "--tile: only segmentation images are annotated in tiles (a class belongs to the "
            "whole image, and a review shows the whole image)"
        )
    store, db = study.store, study.store.db
    project = ensure_project(study, tool, overlap=overlap, purpose=purpose)
    report = PushReport(project=project)
    crash = crash_points()
    now = utcnow()
    with store.atomic():
        for image in images:
            row = db.execute(
                "SELECT id FROM tasks WHERE image_id = ? AND tool = ? AND project = ? "
                "AND purpose = ?",
                [image["id"], tool.name, project, purpose],
            ).fetchone()
            if row is not None:
                report.already += 1
                report.task_ids.append(row[0])
                continue
            boxes = tiling.boxes(image["height"], image["width"]) if tiling else []
            base = {
                "image_id": image["id"],
                "arm": arm,
                "round": round,
                "purpose": purpose,
                "reviewer": reviewer,
                "tool": tool.name,
                "project": project,
                "external_id": None,
                "overlap": overlap,
                "status": "pending" if len(boxes) < 2 else "open",
                "created_at": now,
                "updated_at": now,
            }
            report.task_ids.append(db["tasks"].insert(base).last_pk)
            if len(boxes) > 1:
                report.tiled += 1
                db["tasks"].insert_all(
                    {**base, "purpose": "tile", "status": "pending", "tile": json.dumps(box)}
                    for box in boxes
                )
    pending = list(
        db["tasks"].rows_where(
            "tool = ? AND project = ? AND status = 'pending'", [tool.name, project], order_by="id"
        )
    )
    if pending:
        found = tool.find_tasks(project, {t["id"] for t in pending})
        if found:
            with store.atomic():
                for key, external in found.items():
                    db["tasks"].update(
                        key, {"external_id": external, "status": "open", "updated_at": utcnow()}
                    )
            report.adopted = len(found)
        pending = [t for t in pending if t["id"] not in found]
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        tool_tasks = []
        predicted: dict[int, tuple[Prediction, ...]] = {}  # per image, for all its tiles
        for task in batch:
            image = db["images"].get(task["image_id"])
            if image["id"] not in predicted:
                predicted[image["id"]] = _as_tuple(predictions(image) if predictions else None)
            tile = tuple(json.loads(task["tile"])) if task["tile"] else None
            tool_tasks.append(
                ToolTask(
                    key=task["id"],
                    image_id=image["id"],
                    name=image["name"] if tile is None else f"{image['name']} {_where(tile)}",
                    image_url=tool.media_url(display_png(study, image, tile)),
                    height=image["height"] if tile is None else tile[2],
                    width=image["width"] if tile is None else tile[3],
                    predictions=_cropped(predicted[image["id"]], tile),
                    reviewer=task["reviewer"],
                    tile=tile,
                )
            )
        external_ids = tool.create_tasks(project, tool_tasks)
        crash.hit("push.created")
        with store.atomic():
            for task, external in zip(batch, external_ids):
                db["tasks"].update(
                    task["id"],
                    {"external_id": str(external), "status": "open", "updated_at": utcnow()},
                )
        report.created += len(batch)
        if progress:
            progress(start + len(batch), len(pending))
    return report


def _as_tuple(value: Prediction | Sequence[Prediction] | None) -> tuple[Prediction, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, Prediction) else tuple(value)


def _where(tile: Box) -> str:
    """A tile's place, as people read it: ``[rows 0-195, cols 222-476]``."""
    r, c, h, w = tile
    return f"[rows {r}-{r + h}, cols {c}-{c + w}]"


def _cropped(preds: tuple[Prediction, ...], tile: Box | None) -> tuple[Prediction, ...]:
    if tile is None:
        return preds
    return tuple(
        Prediction(mask=crop(p.mask, tile), score=p.score, model_version=p.model_version)
        if p.mask is not None
        else p
        for p in preds
    )


# --- pull --------------------------------------------------------------------------------


@dataclass
class PullReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped_by_annotator: int = 0
    malformed: list[str] = field(default_factory=list)
    unknown_tasks: int = 0
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
    the image (the tiles stitched, :func:`loop.tiles.stitch`); idempotent: made again only
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
