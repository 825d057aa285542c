"""The classifier family: scikit-learn classifiers on scikit-image features
(:mod:`.classifier`), inside a modAL ``ActiveLearner``, for whole-image classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from loop.config import ClassifierConfig, StudyConfig
from loop.models.base import Fitted, Output, Recipe


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

    def shared(self, model, config, shape=None) -> int:
        """One image at a time: :meth:`predict` gains nothing from taking more at once."""
        return 1

    def measure(self, model, images, *, config=None) -> list[Output]:
        return self.predict(model, images, config=config)  # features + probabilities: cheap

    # --- evaluation -----------------------------------------------------------------------
    def score(self, output: Output, truth, *, config) -> dict:
        return {"truth": truth, "pred": output.klass}

    def summarize(self, per_image, groups=None, *, config) -> dict:
        """Accuracy, macro-F1, kappa and per class
        (:func:`loop.core.metrics.classification_scores`)."""
        from loop.core.metrics import classification_scores

        truth = [r["truth"] for r in per_image]
        pred = [r["pred"] for r in per_image]
        return classification_scores(truth, pred, groups)

    # --- training -------------------------------------------------------------------------
    label_kind = "class"
    suffix = ".pkl"

    def recipe(self, config, *, n_train, seed, steps, parent, extend) -> Recipe:
        classifier = config.classifier
        seed = classifier.seed if seed is None else seed
        params = {"config": asdict(classifier), "augment": asdict(config.augment), "seed": seed}
        return Recipe(params=params, digest=params, seed=seed)

    def fit(
        self, images, targets, *, config, recipe, parent_path, gpu, classes=(), progress
    ) -> Fitted:
        """Features of each image (and of ``augment_copies`` seeded variants), then the
        classifier with its committee (:func:`loop.models.classifier.train`)."""
        from loop.models import classifier as cl

        c = config.classifier
        rng = np.random.default_rng(recipe.seed)
        rows = []
        for i, pixels in enumerate(images):
            rows.append(cl.features(pixels, size=c.image_size))
            progress("features", i + 1, len(images))
        y = list(targets)
        for pixels, label in zip(images, targets) if c.augment_copies else ():
            for _ in range(c.augment_copies):
                variant = cl.augmented(pixels, rng, config.augment)
                rows.append(cl.features(variant, size=c.image_size))
                y.append(label)
        x = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        return Fitted(cl.train(x, y, config=c, rng=rng, classes=classes), [], "cpu")

    def blind(self, model, pairs, *, config) -> bool:
        """Never: a classifier always answers some class (a poor one shows in validation)."""
        return False

    def validate(self, model, pairs, *, config) -> tuple[float, list[float]]:
        """Macro-F1, and per image 1 when right, 0 when wrong."""
        from loop.core.metrics import classification_scores

        pairs = list(pairs)
        if not pairs:
            return 0.0, []
        x = self.features(model, [pixels for pixels, _ in pairs])
        truth = [label for _, label in pairs]
        predicted = model.predict(x)
        right = [float(a == t) for a, t in zip(predicted, truth)]
        return classification_scores(truth, predicted)["macro_f1"], right

    def save(self, fitted: Fitted, path: Path, *, title: str) -> Path:
        from loop.models import classifier as cl

        return cl.save(fitted.model, path)


def _scaled(model, x: np.ndarray) -> np.ndarray:
    """Features standardised as the estimator sees them (its scaler), else over the batch."""
    estimator = model.learner.estimator
    if hasattr(estimator, "named_steps") and "standardscaler" in estimator.named_steps:
        return estimator.named_steps["standardscaler"].transform(x)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
