"""Adjudication: tasks whose annotators disagree go to a named reviewer, whose label wins.

Label Studio's Community edition has no review stream, so a review is a task in the study's
second project (``purpose='adjudicate'``, one annotation wanted) whose pre-annotations are
every annotator's version of the image (named after the annotator, scored by their agreement
with the others) and the consensus of them all; the reviewer opens the version they trust,
corrects it and submits.

1. :func:`record` turns the reviewer's submitted annotation of each review task into the
   image's label (``labels.source='adjudicated'``: it outranks the consensus for training and
   export) and moves the image from ``pool`` to ``labeled``. Annotations of a review task by
   anyone but its reviewer are kept in the store, never used, and reported.
2. :func:`candidates` lists the tasks below ``min_agreement`` whose image has no adjudicated
   label yet.
3. :func:`send` pushes them (crash-safe and idempotent, like every push: an image is sent for
   review once).

:func:`adjudicate` runs pull, record, candidates and send, so running it again both collects
the decisions made since and sends what newly fell below the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loop.annotate.consensus import TaskAgreement, agree
from loop.annotate.pull import pull
from loop.annotate.push import PushReport, push
from loop.core.box_fusion import fuse_boxes
from loop.core.classmaps import fuse
from loop.core.fusion import consensus_mask
from loop.core.images import read_mask
from loop.errors import AdjudicationError
from loop.store import annotations, dumps
from loop.store.boxes import read_boxes_file
from loop.store.labels import images_with, save_label
from loop.study import Study
from loop.tasks import box_classes, pixel_classes
from loop.tasks.detection import match_radius
from loop.types import AnnotationTool, Boxes, Prediction

_SRC = "adjudicated"


@dataclass
class RecordReport:
    decided: int = 0  # adjudicated labels written or changed
    unchanged: int = 0
    waiting: int = 0  # review tasks the reviewer has not answered
    skipped_by_reviewer: int = 0
    ignored: list[str] = field(default_factory=list)  # others' annotations of review tasks


@dataclass
class AdjudicationReport:
    recorded: RecordReport
    candidates: list[TaskAgreement]
    sent: int = 0  # review tasks created now
    already: int = 0  # candidates sent for review before
    project: str | None = None


def check_request(study: Study, tool_name: str, *, reviewer: str, min_agreement: float) -> None:
    """Raise :class:`AdjudicationError` for a threshold outside (0, 1] or a reviewer without an
    account on the study's annotation tool."""
    if not 0 < min_agreement <= 1:
        raise AdjudicationError(
            f"--min-agreement {min_agreement}: give a mean pairwise agreement in (0, 1], "
            "e.g. 0.7 (tasks below it are reviewed)"
        )
    if not annotations.has_account(study.store, tool_name, reviewer):
        raise AdjudicationError(
            f"reviewer {reviewer!r} has no account in this study's Label Studio: run "
            f"`loop annotators add {study.path} {reviewer}` first"
        )


def candidates(
    study: Study,
    *,
    min_agreement: float,
    round: int | None = None,
    method: str = "majority",
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskAgreement]:
    """Annotation tasks below ``min_agreement`` whose image has no adjudicated label yet.

    Measures agreement without writing anything (``loop agree`` writes the consensus)."""
    report = agree(
        study,
        round=round,
        method=method,
        min_agreement=min_agreement,
        write=False,
        progress=progress,
    )
    decided = images_with(study.store, _SRC)
    return [t for t in report.tasks if t.adjudicate and t.image_id not in decided]


def _versions(study: Study, item: TaskAgreement, method: str) -> list[Prediction]:
    """Every annotator's current annotation of the task as a pre-annotation, then (for masks)
    their consensus."""
    image = study.store.image(item.image_id)
    rows = annotations.annotations_of_task(study.store, item.task_id)
    shape = (image["height"], image["width"])
    classes = pixel_classes(study.config)  # a painting's classes named (semantic)
    versions, masks, drawn = [], [], []
    objects = box_classes(study.config)
    points = match_radius(study.config) is not None
    for row in rows:
        score = item.per_annotator.get(row["annotator"])
        if row["mask_path"] and _kind_of(row["mask_path"]) == "boxes":
            boxes, index = read_boxes_file(study.resolve(row["mask_path"]), objects)
            drawn.append((boxes, index))
            named = Boxes(boxes, tuple(objects[int(i)] for i in index), shape, points=points)
            versions.append(Prediction(boxes=named, score=score, model_version=row["annotator"]))
        elif row["mask_path"]:
            mask = read_mask(study.resolve(row["mask_path"]), shape)
            masks.append(mask)
            versions.append(
                Prediction(mask=mask, score=score, model_version=row["annotator"], labels=classes)
            )
        else:
            versions.append(
                Prediction(klass=row["class"], score=score, model_version=row["annotator"])
            )
    if len(drawn) > 1:
        boxes, index, _ = fuse_boxes(drawn, radius=match_radius(study.config))
        named = Boxes(boxes, tuple(objects[int(i)] for i in index), shape, points=points)
        versions.append(
            Prediction(boxes=named, score=item.agreement, model_version="consensus (majority)")
        )
    if len(masks) > 1:
        if classes:
            fused = fuse(masks, len(classes), method=method)
        else:
            fused = consensus_mask(masks, method=method)
        versions.append(
            Prediction(
                mask=fused,
                score=item.agreement,
                model_version=f"consensus ({method})",
                labels=classes,
            )
        )
    return versions


def send(
    study: Study,
    tool: AnnotationTool,
    items: Sequence[TaskAgreement],
    *,
    reviewer: str,
    method: str = "majority",
    progress: Callable[[int, int], None] | None = None,
) -> PushReport | None:
    """Push one review task per item for ``reviewer`` (an image already sent is not sent again).

    Returns ``None`` when there is nothing to send."""
    if not items:
        return None
    by_image = {item.image_id: item for item in items}
    arms = annotations.arms_of_tasks(study.store, [item.task_id for item in items])
    groups: dict[tuple[str, int | None], list[dict]] = {}
    for item in items:
        key = (arms[item.task_id], item.round)
        groups.setdefault(key, []).append(study.store.image(item.image_id))
    total: PushReport | None = None
    for (arm, round_), images in groups.items():
        report = push(
            study,
            tool,
            images,
            overlap=1,
            arm=arm,
            round=round_,
            purpose="adjudicate",
            reviewer=reviewer,
            predictions=lambda image: _versions(study, by_image[image["id"]], method),
            progress=progress,
        )
        if total is None:
            total = report
        else:
            total.created += report.created
            total.adopted += report.adopted
            total.already += report.already
            total.task_ids += report.task_ids
    return total


def record(study: Study) -> RecordReport:
    """Store each reviewer's decision as the image's adjudicated label (idempotent)."""
    report = RecordReport()
    for task in annotations.review_tasks(study.store):
        rows = annotations.annotations_of_task(study.store, task["id"], ("current", "skipped"))
        for row in rows:
            if row["annotator"] != task["reviewer"]:
                report.ignored.append(
                    f"task {task['id']} (image {task['image_id']}): {row['annotator']} is not "
                    f"its reviewer ({task['reviewer']})"
                )
        decision = next((r for r in rows if r["annotator"] == task["reviewer"]), None)
        if decision is None:
            report.waiting += 1
        elif decision["status"] == "skipped":
            report.skipped_by_reviewer += 1
        elif _store_decision(study, task, decision):
            report.decided += 1
        else:
            report.unchanged += 1
    return report


def _kind_of(path: str | None) -> str:
    """The kind of a label made from an annotation file: boxes (a box file), a mask, or a
    class (no file)."""
    if not path:
        return "class"
    return "boxes" if path.endswith(".json") else "mask"


def _store_decision(study: Study, task: dict, decision: dict) -> bool:
    """Write (or update) the adjudicated label; False when it is already stored as is."""
    reviewed = annotations.annotators_of_image(study.store, task["image_id"])
    provenance = dumps(
        {
            "reviewer": task["reviewer"],
            "annotation": decision["id"],
            "annotation_version": decision["version"],
            "annotators": reviewed,
            "method": "adjudicated",
            "round": task["round"],
            "task": task["id"],
        }
    )
    label = {
        "kind": _kind_of(decision["mask_path"]),
        "mask_path": decision["mask_path"],
        "n_objects": decision["n_objects"],
        "class": decision["class"],
        "object_classes": decision.get("object_classes"),
        "method": "adjudicated",
        "provenance": provenance,
    }
    return save_label(study.store, task["image_id"], source=_SRC, label=label)


def adjudicate(
    study: Study,
    tool: AnnotationTool,
    *,
    reviewer: str,
    min_agreement: float = 0.7,
    round: int | None = None,
    method: str = "majority",
    progress: Callable[[str, int, int], None] | None = None,
) -> AdjudicationReport:
    """Collect the reviewer decisions made so far, then send the tasks newly below
    ``min_agreement`` to ``reviewer``.

    Raises
    ------
    AdjudicationError
        For a threshold outside (0, 1] or a reviewer without an account.
    """
    check_request(study, tool.name, reviewer=reviewer, min_agreement=min_agreement)

    def stage(name: str):
        return None if progress is None else (lambda done, total: progress(name, done, total))

    pull(study, tool, progress=stage("pull"))
    recorded = record(study)
    found = candidates(
        study, min_agreement=min_agreement, round=round, method=method, progress=stage("agree")
    )
    pushed = send(study, tool, found, reviewer=reviewer, method=method, progress=stage("push"))
    report = AdjudicationReport(recorded=recorded, candidates=found)
    if pushed is not None:
        report.sent = pushed.created + pushed.adopted
        report.already = pushed.already
        report.project = pushed.project
    return report
