"""What a pull writes: its report, annotation masks under ``STUDY/annotations/``, and the
annotation rows of a task (shared by :mod:`loop.annotate.pull` and :mod:`loop.annotate.stitch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loop.core.images import write_labels
from loop.store import annotations as q
from loop.study import Study
from loop.types import Boxes

ANNOTATIONS_DIR = Path("annotations")


@dataclass
class PullReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped_by_annotator: int = 0
    malformed: list[str] = field(default_factory=list)
    # annotations last saved by someone else than their author: kept, not used until resolved
    edited: list[str] = field(default_factory=list)
    # an annotator's older annotations of a task when they made several: the newest counts
    superseded: list[str] = field(default_factory=list)
    unknown_tasks: int = 0  # the tool's tasks that the store cannot map (no key of ours)
    adopted: int = 0  # the tool's duplicates of our tasks, adopted by this pull
    full: bool = True  # every project read whole (not only its tasks updated since)
    unknown_accounts: list[str] = field(default_factory=list)  # ``user<id>``: not the study's
    tasks_seen: int = 0
    tasks_done: int = 0
    stitched: int = 0  # annotations of tiled images made (or remade) from their tiles
    tile_gaps: list[str] = field(default_factory=list)  # tiled images no one can finish


def write_mask(study: Study, task_id: int, annotator: str, version: int, mask) -> str:
    """Write an annotation's label image (or its boxes, a :class:`~loop.types.Boxes`, as a
    box file) under the study's annotations; returns its path relative to the study."""
    if isinstance(mask, Boxes):
        from loop.store.boxes import write_boxes_file

        folder = study.path / ANNOTATIONS_DIR / str(task_id)
        path, _ = write_boxes_file(folder, mask.boxes, mask.names)
        return path.relative_to(study.path).as_posix()
    rel = ANNOTATIONS_DIR / str(task_id) / f"{annotator}_v{version}.tif"
    write_labels(study.path / rel, mask)
    return rel.as_posix()


def store_annotations(
    study: Study,
    task: dict,
    prepared: list[tuple[dict | None, dict]],
    current: dict[str, dict],
    present: set[str],
    report: PullReport,
) -> None:
    new, updated, deleted, _ = q.write_annotations(study.store, task, prepared, current, present)
    report.new += new
    report.updated += updated
    report.deleted += deleted
