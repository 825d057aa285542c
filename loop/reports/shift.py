"""Domain shift and batch effects: do images of one instrument, session or batch look
different from the others, and is each group represented where it matters (labeled, test)?

Each image gets a short vector of named, model-free features (:func:`image_features`:
intensity level and spread, saturation, noise, focus, texture, colour, size). For a metadata
key (instrument, session, modality, or the split), each group is compared with the rest:

- a **domain classifier**: a logistic regression on the standardised features, cross-validated
  (stratified 5-fold); its ROC AUC is 0.5 when the group cannot be told from the rest and 1.0
  when it always can (:func:`domain_auc`);
- the features that differ most, by standardised mean difference (Cohen's d), so the report
  says *what* differs (brighter, noisier, blurrier, larger);
- its images per split: a group absent from the labeled or test split is one the model has not
  learnt or cannot be checked on.

Verdicts: AUC < 0.6 no detectable shift, < 0.8 moderate, else strong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop.core.features import FEATURES, image_features
from loop.core.images import read_image
from loop.errors import ShiftError
from loop.learn.labels import image_path
from loop.store import META_PREFIX, meta_column
from loop.store.images import images_in
from loop.study import Study

MODERATE, STRONG = 0.6, 0.8
MISSING = {
    "labeled": "the model has not learnt from this group",
    "test": "held-out figures say nothing about this group",
}


def domain_auc(
    x: np.ndarray, in_group: np.ndarray, *, rng: np.random.Generator | int | None = 0
) -> float:
    """Cross-validated ROC AUC of telling ``in_group`` images from the others by ``x``.

    Parameters
    ----------
    x : ndarray of shape (n, F)
    in_group : ndarray of shape (n,), bool
    rng : Generator or int, optional
        Seeds the folds.

    Returns
    -------
    float
        0.5: indistinguishable; 1.0: always told apart. Uses min(5, smaller class size) folds.

    Raises
    ------
    ShiftError
        When either side has fewer than 2 images.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    in_group = np.asarray(in_group, dtype=bool)
    smaller = int(min(in_group.sum(), (~in_group).sum()))
    if smaller < 2:
        raise ShiftError(
            f"a group of {smaller} image(s) cannot be compared: give at least 2 on each side"
        )
    seed = int(np.random.default_rng(rng).integers(2**31))
    folds = StratifiedKFold(n_splits=min(5, smaller), shuffle=True, random_state=seed)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
    )
    scores = cross_val_predict(model, x, in_group, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(in_group, scores))


def effect_sizes(x: np.ndarray, in_group: np.ndarray) -> np.ndarray:
    """Cohen's d of each feature, group minus rest (pooled standard deviation; 0 where a
    feature is constant). Shape (F,)."""
    a, b = x[in_group], x[~in_group]
    pooled = np.sqrt(
        ((len(a) - 1) * a.var(axis=0, ddof=1) + (len(b) - 1) * b.var(axis=0, ddof=1))
        / max(len(a) + len(b) - 2, 1)
    )
    diff = a.mean(axis=0) - b.mean(axis=0)
    return np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 1e-12)


def verdict(auc: float) -> str:
    if auc < MODERATE:
        return "no detectable shift"
    return "moderate shift" if auc < STRONG else "strong shift"


@dataclass
class GroupShift:
    """One group against the rest."""

    group: str
    n_images: int
    splits: dict[str, int]  # images per split
    auc: float | None  # None: too few images to compare
    verdict: str
    differs_in: list[tuple[str, float]]  # (feature, Cohen's d), largest |d| first
    warnings: list[str] = field(default_factory=list)


@dataclass
class ShiftReport:
    key: str
    n_images: int
    groups: list[GroupShift]
    plot: Path | None = None


def default_key(study: Study) -> str:
    """The first of the study's groups (``groups`` in loop.toml, else categorical metadata).

    Raises
    ------
    ShiftError
        When the study has neither.
    """
    from loop.reports.status import group_keys

    keys = group_keys(study)
    if not keys:
        raise ShiftError(
            "the study has no metadata to group by: give --by KEY (a metadata key, or "
            "split), or ingest a metadata table with an instrument/session column"
        )
    return keys[0]


def shift_report(
    study: Study,
    *,
    key: str | None = None,
    splits: Sequence[str] = ("pool", "labeled", "test"),
    min_images: int = 5,
    plot: str | Path | None = None,
    rng: np.random.Generator | int | None = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> ShiftReport:
    """Compare each group of ``key`` with the rest of the study's images.

    Parameters
    ----------
    key : str, optional
        A metadata key (``instrument``, ``session``, ...) or ``split``; default the first of
        the study's groups (``groups`` in loop.toml, else categorical metadata).
    splits : sequence of str
        Images of these splits are compared (excluded images are left out by default).
    min_images : int
        Groups with fewer images are listed without an AUC.
    plot : path, optional
        Write a PNG of the first two principal components of the features, one colour per
        group.

    Raises
    ------
    ShiftError
        When the key is unknown, has a single group, or no image is in ``splits``.
    """
    key = default_key(study) if key is None else key
    if key == "split":
        column = "split"
    else:
        column, known = meta_column(key), study.store.meta_columns()
        if column[len(META_PREFIX) :] not in known:
            raise ShiftError(
                f"--by {key}: no such metadata key (known: {', '.join(known) or 'none'}; or split)"
            )
    images = images_in(study.store, splits, column)
    if not images:
        raise ShiftError(f"no image in the splits {', '.join(splits)}")
    labels = np.array(["(none)" if r["grp"] is None else str(r["grp"]) for r in images])
    present = sorted({r["split"] for r in images})
    names = sorted(set(labels))
    if len(names) < 2:
        raise ShiftError(
            f"every image has {key} = {names[0]}: there is nothing to compare; choose another "
            "--by key"
        )
    rows = []
    for i, image in enumerate(images):
        rows.append(image_features(read_image(image_path(image))))
        if progress:
            progress("image features", i + 1, len(images))
    x = np.vstack(rows)
    groups = []
    for name in names:
        in_group = labels == name
        of_group = [r["split"] for r, g in zip(images, in_group) if g]
        counts = {s: of_group.count(s) for s in present}
        warnings = []
        if key != "split":
            for split, what in MISSING.items():
                if split in present and counts.get(split, 0) == 0:
                    warnings.append(f"no {split} image: {what}")
        n = int(in_group.sum())
        if n < min_images or len(images) - n < min_images:
            auc, says, differs = None, f"too few images to compare (< {min_images})", []
        else:
            auc = domain_auc(x, in_group, rng=rng)
            says = verdict(auc)
            d = effect_sizes(x, in_group)
            order = np.argsort(-np.abs(d))[:3]
            differs = [(FEATURES[j], round(float(d[j]), 2)) for j in order]
        groups.append(GroupShift(str(name), n, counts, auc, says, differs, warnings))
    report = ShiftReport(key=key, n_images=len(images), groups=groups)
    if plot is not None:
        from loop.reports.plots import feature_map

        report.plot = feature_map(x, labels, Path(plot), title=f"image features by {key}")
    return report
