"""Held-out evaluation: instance-segmentation and classification metrics on arrays.

Segmentation follows the convention of the Cellpose and DSB2018 papers: objects are matched
one-to-one by IoU (Hungarian, see :func:`loop.core.agreement.match`) and the *average precision*
at a threshold ``t`` of one image is ``TP / (TP + FP + FN)`` with a match counted when its
IoU >= ``t``; a data set's AP is the mean over its images.

References
----------
Stringer, C., Wang, T., Michaelos, M., Pachitariu, M. (2021). Cellpose: a generalist
algorithm for cellular segmentation. Nat. Methods 18, 100-106 (the AP definition).
Caicedo, J. C. et al. (2019). Nucleus segmentation across imaging experiments: the 2018 Data
Science Bowl. Nat. Methods 16, 1247-1253.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from loop.core.agreement import cohen_kappa, iou_matrix, match, matched_ious, pixel_dice
from loop.tasks import REGISTERED

AP_THRESHOLDS = (0.5, 0.75, 0.9)


def segmentation_scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Scores of one predicted instance label image against the truth.

    Parameters
    ----------
    truth, pred : ndarray of shape (M, N)
        Instance label images, 0 = background.

    Returns
    -------
    dict
        ``ap50``, ``ap75``, ``ap90`` (TP / (TP + FP + FN); 1.0 when both are empty),
        ``precision``, ``recall``, ``f1`` (at IoU 0.5), ``matched_iou`` (mean IoU of the
        pairs matched at >= 0.5, NaN when none), ``dice`` (pixel foreground Dice),
        ``n_true``, ``n_pred``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((6, 6), int); t[:3, :3] = 1; t[4:, 4:] = 2
    >>> p = t.copy(); p[4:, 4:] = 0
    >>> segmentation_scores(t, p)["ap50"]
    0.5
    """
    ious, n_true, n_pred = matched_ious(truth, pred)
    out = {}
    for t in AP_THRESHOLDS:
        tp = int(np.sum(ious >= t))
        denominator = n_true + n_pred - tp
        out[f"ap{int(round(t * 100))}"] = 1.0 if denominator == 0 else tp / denominator
    tp = int(np.sum(ious >= 0.5))
    out["precision"] = tp / n_pred if n_pred else float(n_true == 0)
    out["recall"] = tp / n_true if n_true else float(n_pred == 0)
    out["f1"] = 2 * tp / (n_true + n_pred) if n_true + n_pred else 1.0
    good = ious[ious >= 0.5]
    out["matched_iou"] = float(good.mean()) if good.size else float("nan")
    out["dice"] = pixel_dice(truth, pred)
    out["n_true"], out["n_pred"] = int(n_true), int(n_pred)
    return out


def _nanmean(values) -> float | None:
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    return float(np.nanmean(values))


SEGMENTATION_KEYS = ("ap50", "ap75", "ap90", "precision", "recall", "f1", "matched_iou", "dice")


def summarize_segmentation(per_image: Sequence[dict], groups: Sequence[str] | None = None) -> dict:
    """Mean of per-image scores, overall and per group.

    Parameters
    ----------
    per_image : sequence of dict
        Outputs of :func:`segmentation_scores`.
    groups : sequence of str, optional
        The group of each image (same length); ``per_group`` is empty without it.

    Returns
    -------
    dict
        The mean of each key of :data:`SEGMENTATION_KEYS`, ``n_images``, and ``per_group``
        (group -> the same summary without ``per_group``).
    """

    def mean_of(rows):
        summary = {key: _nanmean(r[key] for r in rows) for key in SEGMENTATION_KEYS}
        summary["n_images"] = len(rows)
        return summary

    out = mean_of(per_image)
    by_group = defaultdict(list)
    if groups is not None:
        for row, group in zip(per_image, groups, strict=True):
            by_group[str(group)].append(row)
    out["per_group"] = {g: mean_of(rows) for g, rows in sorted(by_group.items())}
    return out


def classification_scores(
    truth: Sequence, pred: Sequence, groups: Sequence[str] | None = None
) -> dict:
    """Accuracy, macro-F1 and Cohen's kappa of predicted classes against the truth.

    Parameters
    ----------
    truth, pred : sequence of hashable, length n
    groups : sequence of str, optional
        The group of each item; adds ``per_group``.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (unweighted mean of per-class F1 over the classes present
        in truth or prediction), ``kappa``, ``per_class`` (class -> precision, recall, f1,
        support), ``n_images``, ``per_group``.

    Examples
    --------
    >>> classification_scores(["a", "a", "b", "b"], ["a", "b", "b", "b"])["accuracy"]
    0.75
    """
    truth, pred = list(truth), list(pred)
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} true classes but {len(pred)} predictions")
    out = _class_summary(truth, pred)
    by_group = defaultdict(lambda: ([], []))
    if groups is not None:
        for t, p, g in zip(truth, pred, groups, strict=True):
            by_group[str(g)][0].append(t)
            by_group[str(g)][1].append(p)
    out["per_group"] = {g: _class_summary(t, p) for g, (t, p) in sorted(by_group.items())}
    return out


def _class_summary(truth: list, pred: list) -> dict:
    n = len(truth)
    if n == 0:
        return {"accuracy": None, "macro_f1": None, "kappa": None, "per_class": {}, "n_images": 0}
    per_class = {}
    for c in sorted(set(truth) | set(pred), key=str):
        tp = sum(t == c and p == c for t, p in zip(truth, pred))
        n_pred, n_true = sum(p == c for p in pred), sum(t == c for t in truth)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0
        per_class[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": n_true}
    return {
        "accuracy": sum(t == p for t, p in zip(truth, pred)) / n,
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "kappa": cohen_kappa(truth, pred),
        "per_class": per_class,
        "n_images": n,
    }


HEADLINE = {name: task.headline for name, task in REGISTERED.items()}
"""The held-out figure a task is judged by (learning curves, gates, lagging groups)."""


def group_figures(metrics: dict, metric: str) -> dict[str, float | None]:
    """Group -> the ``metric`` figure of each group, from an evaluation's ``per_group``
    summaries (empty when it has none).

    >>> group_figures({"ap50": 0.5, "per_group": {"site=a": {"ap50": 0.7, "n_images": 3}}}, "ap50")
    {'site=a': 0.7}
    """
    return {g: m.get(metric) for g, m in (metrics.get("per_group") or {}).items()}


def lagging_groups(
    per_group: dict, metric: str, *, floor: float = 0.1, gap: float = 0.3
) -> list[dict]:
    """Groups (modality, instrument, ...) the model fails while it works on others.

    Parameters
    ----------
    per_group : dict
        Group -> summary (with ``metric`` and ``n_images``), as ``per_group`` of
        :func:`summarize_segmentation` or :func:`classification_scores`.
    metric : str
        The headline key (``ap50``, ``macro_f1``).
    floor, gap : float
        A group lags when its figure is below ``floor`` while the best group's is at least
        ``floor + gap``.

    Returns
    -------
    list of dict
        ``group``, ``value``, ``n_images``, ``best_group``, ``best_value``, ``message``.

    Examples
    --------
    >>> groups = {"modality=fluo": {"ap50": 0.6, "n_images": 9},
    ...           "modality=tissue": {"ap50": 0.0, "n_images": 4}}
    >>> [g["group"] for g in lagging_groups(groups, "ap50")]
    ['modality=tissue']
    """
    values = {g: s.get(metric) for g, s in per_group.items() if s.get(metric) is not None}
    if len(values) < 2:
        return []
    best = max(values, key=values.get)
    if values[best] < floor + gap:
        return []
    out = []
    for group, value in sorted(values.items()):
        if value < floor:
            n = per_group[group].get("n_images")
            out.append(
                {
                    "group": group,
                    "value": value,
                    "n_images": n,
                    "best_group": best,
                    "best_value": values[best],
                    "message": (
                        f"{group}: {metric} {value:.2f} on {n} test images while {best} "
                        f"reaches {values[best]:.2f}: the model fails this group. Label more "
                        "of it (a strategy with +groups), check its input (model.invert) or "
                        "train it apart"
                    ),
                }
            )
    return out


def flagged_errors(truth: np.ndarray, pred: np.ndarray, flagged, *, iou: float = 0.5) -> dict:
    """How well a set of flagged predicted objects points at the wrong ones.

    A predicted object is wrong when no reference object matches it one-to-one at IoU >=
    ``iou`` (a false positive, or an outline too far off).

    Parameters
    ----------
    truth, pred : ndarray of shape (M, N)
        Reference and predicted instance labels, 0 = background.
    flagged : iterable of int
        Labels of ``pred`` the model flagged as doubtful.

    Returns
    -------
    dict
        ``objects``, ``wrong``, ``flagged`` and ``wrong_flagged`` (counts of predicted
        objects).

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2, 2, 0, 0]])
    >>> p = np.array([[1, 1, 0, 0, 0, 2, 0, 3]])   # 1 right, 2 a third of one, 3 false
    >>> flagged_errors(t, p, [3])
    {'objects': 3, 'wrong': 2, 'flagged': 1, 'wrong_flagged': 1}
    """
    matrix, _, labels = iou_matrix(truth, pred)
    _, cols, ious = match(matrix)
    right = set(labels[cols[ious >= iou]].tolist())
    wrong = {int(v) for v in labels} - right
    flagged = {int(v) for v in flagged} & {int(v) for v in labels}
    return {
        "objects": int(labels.size),
        "wrong": len(wrong),
        "flagged": len(flagged),
        "wrong_flagged": len(wrong & flagged),
    }
