"""What makes a kind of task (instance segmentation, classification, ...): one :class:`Task`
per kind, in a file of its own, registered in :mod:`loop.tasks`.

The loop's stages ask the study's task what they need (:func:`loop.tasks.task_of`) instead of
comparing its name: which model family trains it, what a label is, which metric heads the
report, which ingest options and strategies apply, how annotators are instructed. A new task
is a new file here (and the files its stages register), not a branch in every stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measure:
    """An uncertainty measure: the key of its value in a model's per-image measures, the pass
    that computes it (``forward``: network outputs only, the whole pool; ``segment``: masks
    reconstructed, and ``tta``: 4 flipped predictions, both on a shortlist), and what it is."""

    key: str
    tier: str
    doc: str


@dataclass(frozen=True)
class Task:
    """A kind of annotation task and what the loop's stages need to know of it."""

    name: str
    """The ``task`` of ``loop.toml``."""
    summary: str
    """One line for ``loop init``'s template and ``loop --help``."""
    family: str
    """The ``models.kind`` that trains it (:data:`loop.models.family.FAMILIES`)."""
    control: str
    """The Label Studio control annotators use (``BrushLabels``, ``Choices``; see
    :func:`connectors.ls_results.label_config`)."""
    label_kind: str
    """What a label is: ``mask`` (a label image) or ``class`` (one class per image)."""
    headline: str
    """The metric that heads rounds, reports and benchmarks."""
    model_figure: str = "f1"
    """The model's held-out figure set beside the annotators' agreement (the same kind of
    figure: the human ceiling) in round tables."""
    truth_figure: str = "f1_50"
    """The key of the consensus' (and each annotator's) figure against the ground truth in an
    agreement report (:mod:`loop.annotate.consensus`)."""
    legend: str = ""
    """What ``score``, ``F1``, ``agree`` and ``cons.`` of a round table are, for this task."""
    measures: dict[str, Measure] = field(default_factory=dict)
    """Its uncertainty measures by strategy name (``loop strategies --task NAME``)."""
    shortlist_by: str = ""
    """The forward-pass measure that shortlists images for a measure of a costlier tier."""
    default_strategy: str = "random"
    """The strategy of ``[score] strategy = ""``."""
    auto: tuple[str, str] = ("typiclust", "random")
    """``auto``: coverage (the first) while few images are labeled, then the second."""
    stratify: tuple[str, ...] = ()
    """What ``loop split`` stratifies by unless ``[split] stratify`` says."""
    ingest_options: frozenset[str] = frozenset()
    """Ground-truth options of ``loop ingest``: ``masks`` and/or ``classes``."""
    objects: bool = False
    """Its predictions are objects with outlines: per-object measurement, tiles."""
    gallery: bool = False
    """The report draws the model's predictions on test images beside the reference."""
    regions: bool = False
    """Annotated in regions or tiles of an image, not only whole images."""
    fits_to_convergence: bool = False
    """Its model trains to convergence (no step budget to grow)."""
    what: str = ""
    """What annotators make, for project titles; ``{object}`` is ``[labels] object``."""
    instructions: Callable[[object], str] = lambda labels: ""
    """What annotators are asked to do, from the study's ``[labels]``
    (:class:`loop.config_view.LabelsConfig`)."""
    classes: tuple[str, ...] = ()
    """The ``[labels] classes`` that ``loop init`` writes (semantic segmentation)."""
    count_truth: Callable[[object, object], int] = lambda mask, labels: 0
    """Checks a ground-truth label image read by ``loop ingest --masks`` (an integer array of
    shape (M, N)) against the study's ``[labels]`` and counts what it holds (objects, or the
    classes present); raises ``ValueError`` with the reason it is unusable."""
    check: Callable[[object], None] = lambda config: None
    """Raises :class:`~loop.errors.ConfigError` when a study's configuration
    (:class:`loop.config.StudyConfig`) lacks what the task needs."""

    control_by: Callable[[object], str] | None = None
    """The Label Studio control for a study's configuration, where it depends on it
    (detection: rectangles or key points); None: ``control``."""

    def control_for(self, config) -> str:
        """The Label Studio control annotators of a study with ``config`` use."""
        return self.control if self.control_by is None else self.control_by(config)

    def what_for(self, object_name: str) -> str:
        return self.what.format(object=object_name)
