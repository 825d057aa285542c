"""The model's objects each annotation task started from, and the effort of correcting them.

Push keeps the pre-annotation of every annotation task (``STUDY/preannotations/<task
id>.tif``, a tile's own crop for a tile task); pull compares each annotation with it
(:func:`loop.core.effort.edits`) and records the edits and their weighted sum beside the
annotation (``annotations.edits``, ``annotations.effort``). A task pushed without a
pre-annotation (no model yet) has neither: the effort is then that of drawing from scratch,
which :func:`loop.core.effort.from_scratch` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loop.core.effort import class_edits, edits, effort
from loop.core.images import read_mask, write_labels
from loop.study import Study
from loop.tasks import pixel_classes
from loop.types import Boxes, Prediction

PREANNOTATIONS_DIR = Path("preannotations")


def keep_preannotation(study: Study, task_id: int, preds) -> None:
    """Write the mask (or the boxes) of the first of ``preds``
    (:class:`~loop.types.Prediction`) that has one as task ``task_id``'s pre-annotation;
    nothing when none has."""
    from loop.core.files import atomic_path
    from loop.store.boxes import encode

    for p in preds:
        if isinstance(p, Prediction) and p.mask is not None:
            write_labels(study.path / PREANNOTATIONS_DIR / f"{task_id}.tif", p.mask)
            return
        if isinstance(p, Prediction) and p.boxes is not None:
            path = study.path / PREANNOTATIONS_DIR / f"{task_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            names = [n.removesuffix("?") for n in p.boxes.names]
            with atomic_path(path) as tmp:
                tmp.write_bytes(encode(p.boxes.boxes, names))
            return


def preannotation_of(study: Study, task_id: int) -> np.ndarray | None:
    """The label image task ``task_id`` was pushed with, or None."""
    path = study.path / PREANNOTATIONS_DIR / f"{task_id}.tif"
    return read_mask(path) if path.is_file() else None


def effort_of(study: Study, task_id: int, mask) -> tuple[str | None, float | None]:
    """(the edits as JSON, their weighted sum) from task ``task_id``'s pre-annotation to
    ``mask`` (of class maps: :func:`loop.core.effort.class_edits`; of boxes, a
    :class:`~loop.types.Boxes`: :func:`loop.core.effort.box_edits`); (None, None) for a task
    without a pre-annotation or of another shape."""
    if isinstance(mask, Boxes):
        return _box_effort(study, task_id, mask)
    pre = preannotation_of(study, task_id)
    if pre is None or pre.shape != mask.shape:
        return None, None
    classes = pixel_classes(study.config)
    if classes:  # doubtful pixels (value k + K, with_unsure) were pre-painted as their class
        pre = np.where(pre >= len(classes), pre - len(classes), pre)
    counts = class_edits(pre, mask) if classes else edits(pre, mask)
    return json.dumps(counts.as_dict()), effort(counts, study.config.effort)


def _box_effort(study: Study, task_id: int, boxes: Boxes) -> tuple[str | None, float | None]:
    from loop.core.effort import box_edits
    from loop.store.boxes import BoxLabelError, read_boxes_file
    from loop.tasks import box_classes
    from loop.tasks.detection import match_radius

    path = study.path / PREANNOTATIONS_DIR / f"{task_id}.json"
    if not path.is_file():
        return None, None
    classes = box_classes(study.config)
    try:
        pre, pre_classes = read_boxes_file(path, classes)
    except BoxLabelError:
        return None, None
    index = {n: i for i, n in enumerate(classes)}
    post_classes = np.array([index.get(n, -1) for n in boxes.names], np.int64)
    counts = box_edits(
        pre, pre_classes, boxes.boxes, post_classes, radius=match_radius(study.config)
    )
    return json.dumps(counts.as_dict()), effort(counts, study.config.effort)
