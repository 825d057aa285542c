"""Whole-image classification: scikit-image features + a scikit-learn classifier in modAL.

Small labeled sets of microscopy crops (hundreds of images) do not train a CNN from scratch
on a CPU in minutes; texture, colour and shape features do. The estimator sits inside a
modAL :class:`~modAL.models.ActiveLearner`, so modAL's query strategies
(``uncertainty_sampling``, ``margin_sampling``, ``entropy_sampling``,
``uncertainty_batch_sampling``) apply directly to it; a bootstrap committee of the same
estimator gives a disagreement (BALD) measure.

Features of an image (resized to ``image_size``²), see :func:`features`:
per-channel intensity percentiles and 16-bin histograms, HOG of the grey image, a uniform LBP
histogram and grey-level co-occurrence (GLCM) properties.

Saved models are pickles (scikit-learn has no safe format); :func:`load` checks the file's
sha256 against the one recorded in the study before unpickling.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from modAL.models import ActiveLearner
from skimage.feature import graycomatrix, graycoprops, hog, local_binary_pattern
from skimage.transform import resize
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loop.config import AugmentConfig, ClassifierConfig
from loop.core.augment import dihedral, photometric
from loop.core.files import atomic_path
from loop.core.images import file_sha256
from loop.errors import ModelError


def features(image: np.ndarray, *, size: int = 64) -> np.ndarray:
    """A fixed-length feature vector of one image.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
        Any dtype; integer images are scaled by their dtype's range.
    size : int
        Side of the square the image is resized to.

    Returns
    -------
    ndarray of shape (F,), float32
        F depends on ``size`` and the channel count only.
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        x = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    else:
        x = image.astype(np.float32)
    if x.ndim == 2:
        x = x[..., None]
    x = x[..., :3]
    x = resize(x, (size, size, x.shape[-1]), anti_aliasing=True, preserve_range=True)
    parts = []
    for c in range(x.shape[-1]):
        channel = x[..., c]
        parts.append(np.percentile(channel, [5, 25, 50, 75, 95]))
        parts.append([channel.mean(), channel.std()])
        hist, _ = np.histogram(np.clip(channel, 0, 1), bins=16, range=(0, 1))
        parts.append(hist / channel.size)
    grey = x.mean(axis=-1)
    parts.append(
        hog(
            grey,
            orientations=8,
            pixels_per_cell=(size // 4, size // 4),
            cells_per_block=(2, 2),
            feature_vector=True,
        )
    )
    grey8 = np.clip(grey * 255, 0, 255).astype(np.uint8)
    lbp = local_binary_pattern(grey8, P=8, R=1, method="uniform")
    hist, _ = np.histogram(lbp, bins=10, range=(0, 10))
    parts.append(hist / lbp.size)
    glcm = graycomatrix(
        grey8 // 8,
        distances=[1, 3],
        angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
        levels=32,
        symmetric=True,
        normed=True,
    )
    for prop in ("contrast", "homogeneity", "energy", "correlation"):
        parts.append(graycoprops(glcm, prop).ravel())
    return np.nan_to_num(np.concatenate([np.ravel(p) for p in parts])).astype(np.float32)


def _estimator(config: ClassifierConfig, seed: int):
    if config.estimator == "random-forest":
        return RandomForestClassifier(
            n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1
        )
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced", random_state=seed),
    )


def augmented(image: np.ndarray, rng: np.random.Generator, augment: AugmentConfig) -> np.ndarray:
    """A random flip/transpose and photometric variant of an image (channels last)."""
    x = np.asarray(image)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    planes = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    if augment.flips:
        planes = dihedral(planes, int(rng.integers(8)))
    planes = photometric(planes, rng, augment)
    return planes[0] if x.ndim == 2 else np.moveaxis(planes, 0, -1)


@dataclass
class Classifier:
    """A trained classifier: the modAL learner, its committee and the class list."""

    learner: ActiveLearner
    committee: list
    classes: list[str]
    size: int

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, F) -> (n, len(classes)), columns in ``classes``."""
        return _aligned(self.learner.estimator, x, self.classes)

    def member_proba(self, x: np.ndarray) -> np.ndarray:
        """Each committee member's probabilities, shape (M, n, len(classes))."""
        return np.stack([_aligned(m, x, self.classes) for m in self.committee])

    def predict(self, x: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.proba(x).argmax(axis=1)]


def _aligned(estimator, x: np.ndarray, classes: list[str]) -> np.ndarray:
    out = np.zeros((len(x), len(classes)))
    proba = estimator.predict_proba(x)
    for j, c in enumerate(estimator.classes_):
        out[:, classes.index(str(c))] = proba[:, j]
    return out


def train(
    x: np.ndarray,
    y: Sequence[str],
    *,
    config: ClassifierConfig,
    rng: np.random.Generator,
    classes: Sequence[str] | None = None,
) -> Classifier:
    """Fit the learner (and its bootstrap committee) on features ``x`` of shape (n, F).

    Raises
    ------
    ModelError
        With fewer than two classes among the labels.
    """
    y = np.asarray([str(v) for v in y])
    present = sorted(set(y))
    if len(present) < 2:
        raise ModelError(
            f"the labeled images have {len(present)} class(es) ({', '.join(present) or 'none'}): "
            "a classifier needs at least two; label images of another class first"
        )
    classes = sorted(set(classes or []) | set(present))
    seed = int(rng.integers(2**31))
    learner = ActiveLearner(estimator=_estimator(config, seed), X_training=x, y_training=y)
    committee = []
    for m in range(config.committee):
        idx = rng.integers(0, len(y), len(y))
        if len(set(y[idx])) < 2:  # a bootstrap sample needs two classes too
            idx = np.arange(len(y))
        committee.append(_estimator(config, seed + m + 1).fit(x[idx], y[idx]))
    return Classifier(learner, committee, classes, config.image_size)


def save(model: Classifier, path: str | Path) -> Path:
    """Pickle the classifier atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(model))
    return path


def load(path: str | Path, sha256: str) -> Classifier:
    """Unpickle a classifier after checking that the file is the one the study recorded.

    Raises
    ------
    ModelError
        When the file is missing or its sha256 differs from the recorded one.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"the model file {path} is missing: run `loop train` again")
    actual = file_sha256(path)
    if actual != sha256:
        raise ModelError(
            f"{path} has changed since it was trained (sha256 {actual[:12]}…, recorded "
            f"{sha256[:12]}…): refusing to unpickle it; run `loop train` again"
        )
    return pickle.loads(path.read_bytes())
