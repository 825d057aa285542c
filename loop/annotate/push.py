"""Push images to the annotation tool as tasks, crash-safely (the project, display images,
pre-annotations and tiles).

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
With a :class:`~loop.core.tiles.Tiling`, an image larger than ``tiling.above`` gets one task row
of its own (``tile`` NULL, never sent to the tool) and one row per tile (``purpose='tile'``,
``tile`` = JSON [row, col, height, width]) which are the tool's tasks, all written in the same
transaction. Pull stitches each annotator's tiles into an annotation of the image's own task
once every tile is done (:func:`loop.annotate.stitch.stitch_tiled`), so agreement, consensus
and rounds see one annotation per annotator per image, as for whole images.

"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loop.annotate import crops
from loop.annotate.preannotations import keep_preannotation
from loop.config import DisplayConfig
from loop.config_view import class_labels, other_labels
from loop.core.display import outline, to_display_uint8
from loop.core.files import atomic_path
from loop.core.images import read_image
from loop.core.regions import relative
from loop.core.tiles import Box, Tiling, crop
from loop.errors import PushRefused
from loop.faults import crash_points
from loop.store import annotations as q
from loop.store import meta_column, scores, utcnow
from loop.store.lock import locked
from loop.study import Study
from loop.tasks import box_classes, names, pixel_classes, task_of
from loop.types import AnnotationTool, LabelSpec, Prediction, ToolTask

PUSHABLE_SPLITS = ("pool", "labeled")
FRAME_COLOUR = "#ffd000"
"""The outline of the region to annotate on a region task's picture."""


PUBLIC_DIR = Path("labelstudio") / "public"
"""The embedded Label Studio's local-files root: what every annotator may read, nothing else."""
MEDIA_DIR = PUBLIC_DIR / "media"
"""Display images (one project storage's folder, under :data:`PUBLIC_DIR`)."""
LEGACY_MEDIA_DIR = Path("labelstudio") / "media"
"""Where display images were before the root moved (moved by the first push or pull after)."""


BATCH = 100


def project_title(study: Study) -> str:
    """A readable title unique to the study's folder: its name, what is annotated and a short
    hash of its path (Label Studio wants 3..50 characters).

    Examples: ``demo: nucleus outlines (4ed48b)``, ``wbc: image classes (91c2aa)``.
    """
    digest = hashlib.sha1(str(study.path.resolve()).encode()).hexdigest()[:6]
    what = task_of(study.config.task).what_for(study.config.labels.object)
    return f"{study.path.resolve().name[:16]}: {what[:16]} ({digest})"  # + " review": <= 50


def instructions(study: Study, purpose: str = "annotate") -> str:
    """What annotators are asked to do, shown as the project's description and instructions."""
    task = task_of(study.config.task).instructions(study.config.labels)
    if purpose == "adjudicate":
        task = (
            "Review: each annotator's version is shown as a prediction (named after them, "
            "scored by their agreement with the others), with their consensus. Pick the one "
            "you trust, correct it, and submit. " + task.split(". ", 1)[0] + "."
        )
    return f"Study {study.path.resolve().name} (loop). {task}"


def task_info(study: Study, image: dict, task: dict, chosen: dict[int, dict] | None = None) -> dict:
    """What the annotator sees of a task beyond the image (Data Manager columns): the round,
    why the image was chosen (strategy, rank in its batch, its score; ``chosen``:
    :func:`loop.store.scores.choices`, read once per push) and its groups."""
    info = {"round": task["round"]}
    chosen = scores.choices(study.store) if chosen is None else chosen
    info.update(chosen.get(image["id"], {}))
    for key in study.config.groups:
        info[key] = image.get(meta_column(key))
    return {k: v for k, v in info.items() if v is not None}


def label_spec(study: Study) -> LabelSpec:
    """The objects' names and colours in the tool, from ``[labels]``; for pixel classes
    (``classes``), one brush label per class but the background (left unpainted)."""
    labels = study.config.labels
    if pixel_classes(study.config):
        (first, colour), *rest = class_labels(labels)[1:]
        doubtful = ()
        if labels.unsure_probability > 0:  # the model's doubtful pixels of each class apart
            doubtful = tuple((f"{n}?", labels.unsure_colour) for n in labels.classes[1:])
        return LabelSpec(name=first, colour=colour, others=(*rest, *doubtful))
    if box_classes(study.config):  # boxes: a label per class, and the doubtful ones apart
        doubtful = ()
        if labels.unsure_probability > 0:
            names = box_classes(study.config)
            doubtful = tuple((f"{n}?", labels.unsure_colour) for n in names)
        return LabelSpec(
            name=labels.object, colour=labels.colour, others=(*other_labels(labels), *doubtful)
        )
    return LabelSpec(
        name=labels.object,
        colour=labels.colour,
        unsure_name=f"{labels.object}?" if labels.unsure_flow_error > 0 else None,
        unsure_colour=labels.unsure_colour,
        others=other_labels(labels),
    )


def classes_of(study: Study) -> list[str]:
    """The classes a classification study knows (from its ground truth and consensus)."""
    return q.known_classes(study.store)


def ensure_project(
    study: Study, tool: AnnotationTool, *, overlap: int, purpose: str = "annotate"
) -> str:
    """The study's project in the tool (created on first use, recorded in ``tool_projects``)."""
    row = q.project_of(study.store, tool.name, purpose)
    title = project_title(study) if purpose == "annotate" else f"{project_title(study)} review"
    project = tool.ensure_project(
        title=title,
        control=task_of(study.config.task).control_for(study.config),
        classes=classes_of(study),
        overlap=overlap,
        existing=row["project"] if row else None,
        labels=label_spec(study),
        description=instructions(study, purpose),
    )
    q.save_project(
        study.store, tool=tool.name, purpose=purpose, project=project, title=title, overlap=overlap
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


def display_png(
    study: Study, image: dict, tile: Box | None = None, *, frame: Box | None = None
) -> str:
    """Write (once) a browser-viewable PNG of an image, or of one tile of it (contrast set on
    the whole image, so that tiles match), with ``frame`` (a box of the tile) outlined in the
    region colour; returns its path relative to the study."""
    from PIL import Image

    display = study.config.display
    suffix = "" if tile is None else "_tile_{}_{}_{}x{}".format(*tile)
    suffix += "" if frame is None else "_frame_{}_{}_{}x{}".format(*frame)
    if display != DisplayConfig():  # another look is another file (tasks keep theirs)
        suffix += "_" + hashlib.sha1(repr(display).encode()).hexdigest()[:6]
    rel = MEDIA_DIR / f"{image['id']}_{image['sha256'][:12]}{suffix}.png"
    target = study.path / rel
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = to_display_uint8(
            read_image(Path(image["root"]) / image["path"]),
            display.lower,
            display.upper,
            channels=display.channels,
            colours=display.colours,
        )
        if tile is not None:
            pixels = crop(pixels, tile)
        if frame is not None:
            pixels = outline(pixels, frame, FRAME_COLOUR)
        with atomic_path(target) as tmp:
            Image.fromarray(pixels).save(tmp)
    return rel.as_posix()


@dataclass
class PushReport:
    project: str
    created: int = 0
    adopted: int = 0  # created by a push that was killed, found again
    already: int = 0  # pushed before
    task_ids: list[int] = field(default_factory=list)  # one per image
    tiled: int = 0  # images of this push cut into tiles


@locked("push")
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
        For an overlap below 1, or tiles asked for a study without objects (classification,
        semantic) or for a review.
    """
    if overlap < 1:
        raise PushRefused(f"--overlap {overlap}: ask for at least one annotator per task")
    if tiling is not None and (not task_of(study.config.task).objects or purpose != "annotate"):
        raise PushRefused(  # tiles are stitched by matching objects across their overlaps
            f"--tile: only {names(lambda t: t.objects)} images are annotated in tiles (a class "
            "belongs to the whole image, pixel classes are annotated in regions, and a review "
            "shows the whole image)"
        )
    store = study.store
    project = ensure_project(study, tool, overlap=overlap, purpose=purpose)
    report = PushReport(project=project)
    now = utcnow()
    with store.atomic():
        for image in images:
            where = {"tool": tool.name, "project": project, "purpose": purpose}
            task_id = q.task_of(store, image["id"], **where)
            if task_id is not None:
                report.already += 1
                report.task_ids.append(task_id)
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
            report.task_ids.append(q.add_task(store, base, boxes if len(boxes) > 1 else ()))
            report.tiled += len(boxes) > 1
    create_pending(study, tool, project, report, predictions=predictions, progress=progress)
    return report


def create_pending(
    study: Study,
    tool: AnnotationTool,
    project: str,
    report: PushReport,
    *,
    predictions=None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create in the tool the project's tasks the store has but the tool has not yet (those a
    killed push left are found again by their key first), a batch at a time. A region task
    (``tasks.region``) shows its crop with the region framed, and only the model's objects
    that touch the region."""
    store = study.store
    crash = crash_points()
    pending = q.pending_tasks(store, tool.name, project)
    if pending:
        found = tool.find_tasks(project, {t["id"] for t in pending})
        q.mark_created(store, found)
        report.adopted = len(found)
        pending = [t for t in pending if t["id"] not in found]
    chosen = scores.choices(store) if pending else {}
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        tool_tasks = []
        predicted: dict[int, tuple[Prediction, ...]] = {}  # per image, for all its tiles
        for task in batch:
            image = store.image(task["image_id"])
            if image["id"] not in predicted:
                predicted[image["id"]] = _as_tuple(predictions(image) if predictions else None)
            tile = tuple(json.loads(task["tile"])) if task["tile"] else None
            cropped = crops.cropped(predicted[image["id"]], tile)
            frame, info = None, task_info(study, image, task, chosen)
            if task.get("region"):
                frame = relative(json.loads(task["region"]), tile)
                cropped = tuple(crops.at_frame(p, frame) for p in cropped)
                info["loop_region"] = list(frame)
            if task["purpose"] in ("annotate", "tile", "region"):
                keep_preannotation(study, task["id"], cropped)
            tool_tasks.append(
                ToolTask(
                    key=task["id"],
                    image_id=image["id"],
                    name=image["name"] if tile is None else f"{image['name']} {_where(tile)}",
                    image_url=tool.media_url(display_png(study, image, tile, frame=frame)),
                    height=image["height"] if tile is None else tile[2],
                    width=image["width"] if tile is None else tile[3],
                    predictions=cropped,
                    reviewer=task["reviewer"],
                    tile=tile,
                    info=info,
                )
            )
        external_ids = tool.create_tasks(project, tool_tasks)
        crash.hit("push.created")
        q.mark_created(store, {t["id"]: e for t, e in zip(batch, external_ids)})
        report.created += len(batch)
        if progress:
            progress(start + len(batch), len(pending))


def _as_tuple(value: Prediction | Sequence[Prediction] | None) -> tuple[Prediction, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, Prediction) else tuple(value)


def _where(tile: Box) -> str:
    """A tile's place, as people read it: ``[rows 0-195, cols 222-476]``."""
    r, c, h, w = tile
    return f"[rows {r}-{r + h}, cols {c}-{c + w}]"
