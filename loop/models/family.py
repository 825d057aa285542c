"""The seam between the loop and its models: one :class:`~loop.models.base.ModelFamily` per
kind of model, registered here.

Every caller that trains (:mod:`loop.learn.train`) or predicts (training's validation,
evaluation, scoring, pre-annotation, folder prediction, measurement, the report) goes through
:func:`family` (or :func:`family_for_task`), so that a new kind of model is one new adapter
file registered in :data:`FAMILIES`, touching nothing else.

A family turns a model file into a model object (``load``) and a batch of images into
:class:`Output` records: the instance labels or the class, the per-image measures that query
strategies rank by, and the embedding that diversity and coverage work on. It also says how it
trains (``recipe``, ``fit``), validates (``validate``) and writes (``save``) a model.
"""

from __future__ import annotations

from loop.errors import ModelError
from loop.models.base import Fitted, ModelFamily, Output, Recipe
from loop.models.cellpose_family import CellposeFamily
from loop.models.centernet_family import CenterNetFamily
from loop.models.classifier_family import ClassifierFamily
from loop.models.unet_family import UNetFamily
from loop.tasks import REGISTERED

__all__ = [
    "FAMILIES",
    "CellposeFamily",
    "CenterNetFamily",
    "ClassifierFamily",
    "UNetFamily",
    "Fitted",
    "ModelFamily",
    "Output",
    "Recipe",
    "family",
    "family_for_task",
]

FAMILIES: dict[str, ModelFamily] = {
    f.kind: f for f in (CellposeFamily(), ClassifierFamily(), UNetFamily(), CenterNetFamily())
}


def family(kind: str) -> ModelFamily:
    """The adapter of a ``models.kind``.

    Raises
    ------
    ModelError
        For a kind no family is registered for.
    """
    try:
        return FAMILIES[kind]
    except KeyError:
        raise ModelError(
            f"no model family {kind!r} (known: {', '.join(FAMILIES)}): the study was made "
            "by a newer loop, or the models table was edited"
        ) from None


TASK_FAMILY = {name: task.family for name, task in REGISTERED.items()}
"""The family that trains a study's model, by task."""


def family_for_task(task: str) -> ModelFamily:
    """The adapter that trains models for ``task``.

    Raises
    ------
    ModelError
        For a task no family trains.
    """
    if task not in TASK_FAMILY:
        raise ModelError(f"no model family trains {task!r} (known: {', '.join(TASK_FAMILY)})")
    return family(TASK_FAMILY[task])
