"""Small value types shared by the core and the connectors, and the annotation-tool protocol.

The core (``loop``) never imports a connector: the CLI builds a connector and hands it to the
core functions, which only use the :class:`AnnotationTool` protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PartialMask:
    """A label known in part: the objects drawn in some regions of an image, and which pixels
    are known (the regions, and the whole of every object drawn in them)."""

    mask: np.ndarray  # (M, N) int, 0 = background where known
    known: np.ndarray  # (M, N) bool


@dataclass(frozen=True)
class Boxes:
    """Boxes with a class name each (detection) in an image of ``shape`` (height, width)."""

    boxes: np.ndarray  # (B, 4) x1, y1, x2, y2 in pixels
    names: tuple[str, ...]
    shape: tuple[int, int]
    scores: np.ndarray | None = None  # (B,): a model's scores
    points: bool = False  # points: each box of zero size, shown as a key point


@dataclass(frozen=True)
class Prediction:
    """A model's pre-annotation of one image: a label image or a class, with a score."""

    mask: np.ndarray | None = None  # (M, N) int labels, 0 = background
    klass: str | None = None
    score: float | None = None
    model_version: str = "loop"
    unsure: tuple[int, ...] = ()  # labels of the objects the model is unsure of (shown apart)
    labels: tuple[str, ...] = ()  # a class map: the name of value k at k (0: not drawn)
    boxes: Boxes | None = None  # detection: the model's boxes (``<class>?``: doubtful ones)


@dataclass(frozen=True)
class LabelSpec:
    """What the objects are called and how they look in the tool (segmentation)."""

    name: str = "Object"
    colour: str = "#ff3b30"
    unsure_name: str | None = None  # the model's doubtful objects; None: not shown apart
    unsure_colour: str = "#ffb000"
    others: tuple[tuple[str, str], ...] = ()  # (name, colour) of other kinds of object


@dataclass(frozen=True)
class ToolTask:
    """One task to create in the annotation tool."""

    key: int  # our tasks.id: stored in the tool's task data, to find it again after a crash
    image_id: int
    name: str
    image_url: str
    height: int
    width: int
    predictions: tuple[Prediction, ...] = ()  # the model's, or each annotator's for a review
    reviewer: str | None = None  # adjudication: the one account whose label decides
    tile: tuple[int, int, int, int] | None = None  # (row, col, height, width) in the image
    info: dict = field(default_factory=dict)  # shown to annotators: round, why it was chosen


@dataclass(frozen=True)
class ToolAnnotation:
    """One annotator's annotation of one task, as the tool has it now."""

    task_external_id: str
    external_id: str
    user_external_id: str
    result: list  # raw payload
    cancelled: bool = False
    lead_time: float | None = None
    updated_at: str | None = None
    editor_external_id: str | None = None  # who saved it last, when the tool says


@dataclass(frozen=True)
class ToolTaskState:
    """A task as the tool has it now, with all its annotations."""

    external_id: str
    key: int | None
    annotations: list[ToolAnnotation] = field(default_factory=list)


class AnnotationTool(Protocol):
    """What the loop needs from an annotation tool (Label Studio implements it)."""

    name: str

    def ensure_project(
        self,
        *,
        title: str,
        control: str,
        classes: Sequence[str],
        overlap: int,
        existing: str | None,
        labels: LabelSpec | None = None,
        description: str = "",
    ) -> str:
        """Create the project (or check the existing one) with the objects' names and colours
        and the annotators' instructions; returns its id."""

    def media_url(self, relative_path: str) -> str:
        """The URL the tool shows for a file under the study folder."""

    def find_tasks(self, project: str, keys: set[int]) -> dict[int, str]:
        """Tasks already in the tool whose key is in ``keys``: key -> external id."""

    def create_tasks(self, project: str, tasks: Sequence[ToolTask]) -> list[str]:
        """Create tasks (with their predictions); returns their external ids, in order."""

    def clock(self) -> datetime:
        """The tool's time now (UTC), the clock its tasks' update times are on."""

    def iter_tasks(
        self, project: str, page_size: int = 100, *, updated_after: datetime | None = None
    ) -> Iterator[list[ToolTaskState]]:
        """The project's tasks with their annotations, a page at a time: every task, or those
        updated (an annotation made, changed or deleted) after ``updated_after``."""

    def get_task(self, external_id: str) -> ToolTaskState | None:
        """One task with its annotations, or ``None`` when the tool has no such task."""

    def to_objects(self, result: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
        """An annotation result as a label image and the label name of each object (label
        ``k`` at ``k - 1``); raises MalformedAnnotation."""

    def to_class(self, result: list) -> str | None:
        """An annotation result as a class (raises MalformedAnnotation)."""

    def to_boxes(self, result: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
        """An annotation result as boxes (shape (B, 4), pixels) and each box's label name;
        raises MalformedAnnotation."""
