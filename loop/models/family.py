"""The seam between the loop and its models: one :class:`ModelFamily` per kind of model.

Every caller that predicts (training's validation, evaluation, scoring, pre-annotation, folder
prediction, measurement, the report) goes through :func:`family` and
:meth:`ModelFamily.predict`, so that a new kind of model is one new adapter registered in
:data:`FAMILIES`, touching nothing else.

A family turns a model file into a model object (:meth:`~ModelFamily.load`) and a batch of
images into :class:`Output` records: the instance labels or the class, the per-image measures
that query strategies rank by, and the embedding that diversity and coverage work on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loop.config import ClassifierConfig, ModelConfig, StudyConfig
from loop.errors import ModelError


@dataclass
class Output:
    """One image's prediction by a model of any family.

    Attributes
    ----------
    masks : ndarray of shape (M, N), optional
        Instance labels, 0 = background (segmentation).
    cellprob : ndarray of shape (M, N), optional
        Cell-probability logits (segmentation).
    klass : str, optional
        The most probable class (classification).
    confidence : float, optional
        Its probability (classification).
    measures : dict of str to float
        Per-image measures that strategies rank by (``flow_error``, ``entropy``, ...).
    embedding : ndarray of shape (D,)
        The image's feature vector for diversity and coverage.
    """

    measures: dict[str, float] = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    masks: np.ndarray | None = None
    cellprob: np.ndarray | None = None
    klass: str | None = None
    confidence: float | None = None


class ModelFamily(Protocol):
    """What the loop needs from a kind of model."""

    kind: str  # the ``models.kind`` column

    def settings(self, config: StudyConfig) -> Any:
        """The family's section of a study's configuration (what ``predict`` takes)."""

    def load(self, path: Path, *, sha256: str, gpu: bool | None) -> Any:
        """The model object of a file the study recorded."""

    def predict(
        self, model: Any, images: Sequence[np.ndarray], *, config: Any, tta: bool = False
    ) -> list[Output]:
        """One :class:`Output` per image (shapes (M, N) or (M, N, C))."""

    def measure(self, model: Any, images: Sequence[np.ndarray], *, config: Any) -> list[Output]:
        """The cheap measures (tier ``forward`` of :data:`loop.core.strategies.TASK_MEASURES`)
        and the embedding of each image, as fast as the family allows: what ranks the whole
        pool. ``masks`` and ``klass`` may be None."""


class CellposeFamily:
    """Cellpose 3 networks (:mod:`loop.models.cellpose_seg`): instance segmentation."""

    kind = "cellpose"

    def settings(self, config: StudyConfig) -> ModelConfig:
        return config.model

    def load(self, path: Path, *, sha256: str, gpu: bool | None):
        from loop.models import cellpose_seg as cs

        if not path.is_file():
            raise ModelError(f"the model file {path} is missing: run `loop train` again")
        return cs.load(path, cs.device_of(gpu))

    def predict(self, model, images, *, config, tta: bool = False) -> list[Output]:
        from loop.models import cellpose_seg as cs

        out = []
        for pixels in images:
            seg = cs.segment(model, pixels, config=config, tta=tta)
            out.append(
                Output(
                    measures=seg.measures,
                    embedding=seg.style,
                    masks=seg.masks,
                    cellprob=seg.cellprob,
                )
            )
        return out

    def measure(self, model, images, *, config) -> list[Output]:
        from loop.models import cellpose_seg as cs

        return [
            Output(measures=seg.measures, embedding=seg.style, cellprob=seg.cellprob)
            for seg in cs.fast_measures(model, images, config=config)
        ]


class ClassifierFamily:
    """Feature-vector classifiers (:mod:`loop.models.classifier`): whole-image classes."""

    kind = "classifier"

    def settings(self, config: StudyConfig) -> ClassifierConfig:
        return config.classifier

    def load(self, path: Path, *, sha256: str, gpu: bool | None):
        from loop.models import classifier as cl

        return cl.load(path, sha256)

    def features(self, model, images: Sequence[np.ndarray]) -> np.ndarray:
        """The classifier's input, shape (len(images), F)."""
        from loop.models import classifier as cl

        rows = [cl.features(pixels, size=model.size) for pixels in images]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def predict(self, model, images, *, config=None, tta: bool = False) -> list[Output]:
        from loop.core import strategies

        x = self.features(model, images)
        if not len(x):
            return []
        proba = model.proba(x)
        committee = (
            strategies.committee_disagreement(model.member_proba(x))
            if model.committee
            else np.zeros(len(x))
        )
        embedding = _scaled(model, x)
        out = []
        for i in range(len(x)):
            measures = {
                name: float(f(proba[i : i + 1])[0]) for name, f in strategies.CLASS_MEASURES.items()
            }
            measures["committee"] = float(committee[i])
            best = int(proba[i].argmax())
            out.append(
                Output(
                    measures=measures,
                    embedding=embedding[i],
                    klass=model.classes[best],
                    confidence=float(proba[i, best]),
                )
            )
        return out

    def measure(self, model, images, *, config=None) -> list[Output]:
        return self.predict(model, images, config=config)  # features + probabilities: cheap


def _scaled(model, x: np.ndarray) -> np.ndarray:
    """Features standardised as the estimator sees them (its scaler), else over the batch."""
    estimator = model.learner.estimator
    if hasattr(estimator, "named_steps") and "standardscaler" in estimator.named_steps:
        return estimator.named_steps["standardscaler"].transform(x)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


FAMILIES: dict[str, ModelFamily] = {f.kind: f for f in (CellposeFamily(), ClassifierFamily())}


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
