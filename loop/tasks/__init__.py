"""The kinds of task a study can be: one :class:`~loop.tasks.base.Task` per file, registered
in :data:`REGISTERED` (see :mod:`loop.tasks.base`)."""

from __future__ import annotations

from collections.abc import Callable

from loop.errors import ConfigError
from loop.tasks.base import Task
from loop.tasks.classification import CLASSIFICATION
from loop.tasks.detection import DETECTION, object_classes
from loop.tasks.segmentation import SEGMENTATION
from loop.tasks.semantic import SEMANTIC

__all__ = [
    "REGISTERED",
    "TASKS",
    "Task",
    "box_classes",
    "described",
    "names",
    "pixel_classes",
    "task_of",
]

REGISTERED: dict[str, Task] = {
    t.name: t for t in (SEGMENTATION, CLASSIFICATION, SEMANTIC, DETECTION)
}
TASKS: tuple[str, ...] = tuple(REGISTERED)
"""The names a study's ``task`` may take."""


def task_of(name: str) -> Task:
    """The registered task called ``name``.

    Raises
    ------
    ConfigError
        For a name no task is registered under.
    """
    try:
        return REGISTERED[name]
    except KeyError:
        raise ConfigError(f"task = {name!r}: choose one of {', '.join(TASKS)}") from None


def pixel_classes(config) -> tuple[str, ...]:
    """The pixel classes of a study whose labels are class maps (``[labels] classes``, the
    background first); empty for a study of any other task."""
    return config.labels.classes if task_of(config.task).label_kind == "classmap" else ()


def box_classes(config) -> tuple[str, ...]:
    """The object classes of a study whose labels are boxes (``[labels] object``, then
    ``others``); empty for a study of any other task."""
    if task_of(config.task).label_kind != "boxes":
        return ()
    return object_classes(config.labels)


def names(where: Callable[[Task], bool]) -> str:
    """The registered tasks for which ``where`` holds, named for a message.

    >>> names(lambda t: t.label_kind == "class")
    'classification'
    """
    found = [t.name for t in REGISTERED.values() if where(t)]
    if len(found) > 1:
        return f"{', '.join(found[:-1])} or {found[-1]}"
    return found[0] if found else "no"


def described() -> str:
    """Every registered task with its one-line summary, for help texts.

    >>> described().split(" or ")[:2]
    ['segmentation (instance masks)', 'classification (one class per image)']
    """
    return " or ".join(f"{t.name} ({t.summary})" for t in REGISTERED.values())
