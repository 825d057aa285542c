"""Pull annotations back from the annotation tool, crash-safely, and stitch tiled images.

Pull
----
The project's tasks are read a page at a time: all of them on the first pull and when the
last full pass began ``rounds.full_pull_minutes`` ago or more, otherwise only those updated
since the previous pull began.
Each task's annotations are written in one transaction: new ones inserted, changed ones
replace the current version (the old one moves to ``annotation_versions``), ones gone from the
tool are marked ``deleted``. Masks are written as label TIFFs under ``STUDY/annotations/``
before the transaction that points at them. A malformed annotation is kept (raw payload,
``status='malformed'``) and reported, never dropped. A pull stopped at any point leaves whole
tasks and does not move the project's clock, so the next pull picks up the rest.

Each pull ends by stitching the tile annotations of tiled images into whole-image ones
(:func:`loop.annotate.stitch.stitch_tiled`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from loop.annotate.preannotations import effort_of
from loop.annotate.pulled import PullReport, store_annotations, write_mask
from loop.annotate.stitch import stitch_tiled
from loop.core.classmaps import from_regions
from loop.core.images import count_objects
from loop.errors import MalformedAnnotation
from loop.faults import crash_points
from loop.store import annotations as q
from loop.store import dumps
from loop.store.lock import locked
from loop.study import Study
from loop.tasks import box_classes, task_of
from loop.types import AnnotationTool, Boxes, ToolAnnotation, ToolTaskState

CLOCK_MARGIN = timedelta(seconds=5)
"""An incremental pull asks for tasks updated after the previous pull's start less this: an
annotation saved just before the tool's clock was read, but committed after, is not missed."""


def _convert(study: Study, tool: AnnotationTool, task: dict, image: dict, ann: ToolAnnotation):
    """(mask, class, n_objects, object classes) of an annotation of a task (an image or a
    tile of it; the mask a class map for pixel classes, a :class:`~loop.types.Boxes` for
    boxes); raises MalformedAnnotation. Object
    classes (JSON, label ``k`` at ``k - 1``) only when ``[labels] others`` names more kinds of
    object, and not for tiles."""
    if ann.cancelled:
        return None, None, None, None
    kind = task_of(study.config.task).label_kind
    shape = (image["height"], image["width"])
    if task["tile"]:
        shape = tuple(json.loads(task["tile"])[2:])
    if kind == "classmap":  # one painted region per class (or several): a class map
        regions, names = tool.to_objects(ann.result, shape)
        try:
            classes = from_regions(regions, names, study.config.labels.classes)
        except ValueError as exc:
            raise MalformedAnnotation(str(exc)) from None
        return classes, None, count_objects(classes), None
    if kind == "boxes":
        return _boxes(study, tool, ann, shape), None, None, None
    if kind == "mask":
        mask, names = tool.to_objects(ann.result, shape)
        labels = study.config.labels
        classes = None
        if labels.others and not task["tile"]:
            known = set(labels.others)  # doubtful and older label names: the main object
            classes = dumps([n if n in known else labels.object for n in names])
        return mask, None, count_objects(mask), classes
    return None, tool.to_class(ann.result), None, None


def _boxes(study: Study, tool: AnnotationTool, ann: ToolAnnotation, shape) -> Boxes:
    """The boxes of an annotation, named by class (a doubtful ``<class>?`` box kept as its
    class); raises MalformedAnnotation for a box of a class the study does not have."""
    boxes, names = tool.to_boxes(ann.result, shape)
    names = [n.removesuffix("?") for n in names]
    unknown = sorted(set(names) - set(box_classes(study.config)))
    if unknown:
        raise MalformedAnnotation(
            f"boxes labelled {', '.join(map(repr, unknown))}, not one of the study's classes "
            f"({', '.join(box_classes(study.config))})"
        )
    return Boxes(boxes, tuple(names), shape, points=study.config.detection.shape == "point")


@locked("pull")
def pull(
    study: Study,
    tool: AnnotationTool,
    *,
    page_size: int = 100,
    full: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> PullReport:
    """Bring the tool's annotations into the store (never loses one), from the study's
    annotation project and its adjudication project.

    Each project is read whole on its first pull, when its last full pass began
    ``rounds.full_pull_minutes`` ago or more (by the tool's clock), and when ``full``; the
    other pulls ask only for tasks updated after the tool's clock at the start of the
    previous pull (less :data:`CLOCK_MARGIN`). A task of the tool that the store does not map
    but whose data carries one of our task keys (a duplicate) is adopted: its annotations
    count as the task's.
    """
    store = study.store
    report = PullReport()
    crash = crash_points()
    names = q.annotator_names(store, tool.name)
    total = q.count_mapped(store, tool.name)
    for project_row in q.tool_projects(store, tool.name):
        started = tool.clock() - CLOCK_MARGIN
        last_full = project_row["full_pull_at"]
        whole = (
            full
            or project_row["last_pull_at"] is None
            or last_full is None
            or started - datetime.fromisoformat(last_full)
            >= timedelta(minutes=study.config.rounds.full_pull_minutes)
        )
        _pull_project(
            study,
            tool,
            project_row,
            whole,
            names,
            report,
            page_size,
            crash,
            lambda seen, whole=whole: progress and progress(seen, total if whole else None),
        )
        q.record_pull(store, project_row["id"], clock=started, whole=whole)
        report.full = report.full and whole
    stitch_tiled(study, report)
    report.tasks_done = q.count_done(store, tool.name)
    return report


def _pull_project(study, tool, project_row, whole, names, report, page_size, crash, progress):
    """One project's tasks (all, or those updated since its last pull) into the store."""
    store, project = study.store, project_row["project"]
    by_external = q.mapped_tasks(store, tool.name, project)
    by_key = {t["id"]: t for t in by_external.values()}
    aliases = q.aliases(store, tool.name, project)  # our task id -> the tool's other tasks
    alias_of = {e: task_id for task_id, ext in aliases.items() for e in ext}
    unmapped = set() if whole else q.unmapped_of(project_row)
    deferred: dict[int, dict[str, ToolTaskState]] = {}  # tasks with aliases: merged at the end
    since = None if whole else datetime.fromisoformat(project_row["last_pull_at"])
    for page in tool.iter_tasks(project, page_size=page_size, updated_after=since):
        for state in page:
            report.tasks_seen += 1
            task = by_external.get(state.external_id)
            task_id = task["id"] if task else alias_of.get(state.external_id)
            if task_id is None and state.key in by_key:  # a duplicate of one of ours: adopt it
                task_id = state.key
                q.add_alias(
                    store, task_id, tool=tool.name, project=project, external_id=state.external_id
                )
                aliases.setdefault(task_id, set()).add(state.external_id)
                alias_of[state.external_id] = task_id
                report.adopted += 1
            if task_id is None:
                unmapped.add(state.external_id)
            elif task_id in aliases:
                deferred.setdefault(task_id, {})[state.external_id] = state
            else:
                _pull_task(study, tool, task, state.annotations, names, report)
            crash.hit("pull.task")
        progress(report.tasks_seen)
    for task_id, seen in deferred.items():
        task = by_key[task_id]
        annotations = []
        for external in {task["external_id"], *aliases[task_id]}:
            state = seen.get(external) or tool.get_task(external)
            if state is None:  # the duplicate was deleted in the tool
                q.drop_alias(store, tool=tool.name, project=project, external_id=external)
                continue
            annotations += state.annotations
        _pull_task(study, tool, task, annotations, names, report)
    unmapped -= set(alias_of)
    q.record_unmapped(store, project_row["id"], unmapped)
    report.unknown_tasks += len(unmapped)


def _edited_by_other(ann: ToolAnnotation, names: dict[str, str]) -> str | None:
    """The name of whoever saved ``ann`` last when that is not its author (None otherwise, or
    when the tool does not say)."""
    editor = ann.editor_external_id
    if editor is None or editor == ann.user_external_id:
        return None
    return names.get(editor, f"user{editor}")


def _latest_per_annotator(
    annotations, names: dict[str, str]
) -> tuple[dict[str, ToolAnnotation], dict[str, list[str]]]:
    """One annotation per annotator (the newest, by id, if someone made several), and the ids
    of the older ones each annotator made; accounts the study does not know are named
    ``user<id>``."""
    out: dict[str, ToolAnnotation] = {}
    older: dict[str, list[str]] = {}
    for ann in sorted(annotations, key=lambda a: int(a.external_id)):
        name = names.get(ann.user_external_id, f"user{ann.user_external_id}")
        if name in out:
            older.setdefault(name, []).append(out[name].external_id)
        out[name] = ann
    return out, older


def _pull_task(
    study: Study,
    tool: AnnotationTool,
    task: dict,
    annotations,
    names: dict[str, str],
    report: PullReport,
) -> None:
    image = study.store.image(task["image_id"])
    current = q.current_annotations(study.store, task["id"])
    latest, older = _latest_per_annotator(annotations, names)
    for name, ids in older.items():
        report.superseded.append(
            f"task {task['id']} ({image['name']}): {name} made {len(ids) + 1} annotations; "
            f"the newest ({latest[name].external_id}) counts, the older ({', '.join(ids)}) "
            "stay in the tool"
        )
    for name in latest:
        if name not in names.values() and name not in report.unknown_accounts:
            report.unknown_accounts.append(name)  # kept, but said: agreement counts them
    prepared = []
    for name, ann in latest.items():
        payload = dumps({"result": ann.result, "cancelled": ann.cancelled})
        old = current.get(name)
        edited = _edited_by_other(ann, names)
        if (
            old is not None
            and old["result"] == payload
            and old["external_id"] == ann.external_id
            and old["status"] != "deleted"
            and (old["status"] == "edited") == (edited is not None)
        ):
            report.unchanged += 1
            continue
        version = 1 if old is None else old["version"] + 1
        status, mask_path, klass, n_objects, classes = "current", None, None, None, None
        changes, cost = None, None
        try:
            mask, klass, n_objects, classes = _convert(study, tool, task, image, ann)
        except MalformedAnnotation as exc:
            status = "malformed"
            report.malformed.append(f"task {task['id']} ({image['name']}), {name}: {exc}")
        else:
            if ann.cancelled:
                status = "skipped"
                report.skipped_by_annotator += 1
            elif mask is not None:
                mask_path = write_mask(study, task["id"], name, version, mask)
                changes, cost = effort_of(study, task["id"], mask)
                n_objects = len(mask.names) if isinstance(mask, Boxes) else n_objects
            if edited is not None and not ann.cancelled:
                status = "edited"  # whose drawing is it? not counted as the author's
                report.edited.append(
                    f"task {task['id']} ({image['name']}): {name}'s annotation was last saved "
                    f"by {edited}; kept, not used for agreement until {name} saves it again "
                    "(or it is deleted)"
                )
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
                    "object_classes": classes,
                    "lead_time": ann.lead_time,
                    "edits": changes,
                    "effort": cost,
                    "status": status,
                    "version": version,
                },
            )
        )
    store_annotations(study, task, prepared, current, set(latest), report)
