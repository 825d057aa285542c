"""PNG plots for people: learning curves, agreement against the model, overlays, feature
maps (a training run's loss curve is drawn by its model family).

Matplotlib with the non-interactive Agg backend, imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loop.core.figures import pyplot as _pyplot
from loop.core.figures import save_figure as _save


def learning_curves(rounds: Sequence[dict], path: str | Path, *, metric: str) -> Path:
    """Held-out ``metric`` per round against labeled images and against annotator-hours,
    one line per arm.

    Parameters
    ----------
    rounds : sequence of dict
        :func:`loop.reports.status.round_summary` records (``arm``, ``n_labeled``, ``score``,
        ``annotator_hours``).
    """
    plt = _pyplot()
    path = Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100, sharey=True)
    for arm in sorted({r["arm"] for r in rounds}, key=lambda a: (a != "main", a)):
        rows = [r for r in rounds if r["arm"] == arm and r["score"] is not None]
        if not rows:
            continue
        style = {"marker": "o", "label": arm, "linestyle": "-" if arm == "main" else "--"}
        left.plot([r["n_labeled"] for r in rows], [r["score"] for r in rows], **style)
        # hours spent before each round's model: the batches of the earlier rounds
        hours = np.concatenate([[0.0], np.cumsum([r["annotator_hours"] or 0 for r in rows])])
        right.plot(hours[: len(rows)], [r["score"] for r in rows], **style)
    left.set_xlabel("labeled images")
    right.set_xlabel("annotator-hours spent (lead times)")
    left.set_ylabel(f"held-out {metric}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    return _save(fig, path)


def efficiency_curves(
    efficiency: dict,
    path: str | Path,
    *,
    metric: str,
    full: float | None,
    title: str = "",
    effort: bool = False,
) -> Path:
    """Mean held-out ``metric`` against labeled images (band: ± 1 sd over seeds), or with
    ``effort`` against the experts' effort spent (band: the 95% interval), one line per
    strategy, with 90% and 95% of the full-pool figure as dotted lines.

    Parameters
    ----------
    efficiency : dict
        strategy -> ``{"curve": [[n_labeled, mean, sd], ...], "effort_curve": [[effort,
        mean, low, high], ...], ...}``.
    """
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=100)
    for name, record in efficiency.items():
        style = "--" if name == "random" else "-"
        if effort:
            curve = np.asarray(record["effort_curve"], dtype=float).reshape(-1, 4)
            low, high = curve[:, 2], curve[:, 3]
        else:
            curve = np.asarray(record["curve"], dtype=float).reshape(-1, 3)
            low, high = curve[:, 1] - curve[:, 2], curve[:, 1] + curve[:, 2]
        ax.plot(curve[:, 0], curve[:, 1], style, marker="o", label=name)
        ax.fill_between(curve[:, 0], low, high, alpha=0.2)
    if full is not None:
        for share, style in ((1.0, "-"), (0.95, ":"), (0.9, ":")):
            ax.axhline(share * full, color="grey", linestyle=style, linewidth=1)
            ax.annotate(
                f"{share:.0%} of full pool",
                (ax.get_xlim()[0], share * full),
                fontsize=7,
                color="grey",
                va="bottom",
            )
    ax.set_xlabel(
        "experts' effort (weighted edits of the pre-annotations)"
        if effort
        else "labeled images (initial set included)"
    )
    ax.set_ylabel(f"held-out {metric}")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def group_curves(
    efficiency: dict,
    path: str | Path,
    *,
    metric: str,
    ceilings: dict[str, float] | None = None,
    title: str = "",
    effort: bool = False,
) -> Path | None:
    """One panel per metadata group: the mean held-out ``metric`` and its 95% interval against
    labeled images (with ``effort``, against the experts' effort spent), one line per strategy
    (the colours of :func:`efficiency_curves`), and the full pool's figure for the group as a
    grey line (what the recipe reaches with every label).

    Parameters
    ----------
    efficiency : dict
        strategy -> ``{"per_group": {group: [[n_labeled, mean, low, high], ...]}, ...}`` (and
        ``"per_group_effort"``, the same against effort).
    ceilings : dict, optional
        group -> the full pool's figure.

    Returns
    -------
    Path or None
        None when no strategy has per-group figures (the study names no groups).
    """
    key = "per_group_effort" if effort else "per_group"
    groups = sorted({g for r in efficiency.values() for g in (r.get(key) or {})})
    if not groups:
        return None
    plt = _pyplot()
    path = Path(path)
    fig, axes = plt.subplots(
        1, len(groups), figsize=(3.2 * len(groups), 3.4), dpi=100, sharey=True, squeeze=False
    )
    for ax, group in zip(axes[0], groups):
        for i, (name, record) in enumerate(efficiency.items()):
            points = (record.get(key) or {}).get(group) or []
            curve = np.asarray(points, dtype=float).reshape(-1, 4)
            style = "--" if name == "random" else "-"
            ax.plot(curve[:, 0], curve[:, 1], style, marker="o", color=f"C{i}", label=name)
            ax.fill_between(curve[:, 0], curve[:, 2], curve[:, 3], color=f"C{i}", alpha=0.15)
        ceiling = (ceilings or {}).get(group)
        if ceiling is not None:
            ax.axhline(ceiling, color="grey", linewidth=1)
            ax.annotate(
                "full pool", (ax.get_xlim()[0], ceiling), fontsize=7, color="grey", va="bottom"
            )
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("experts' effort" if effort else "labeled images")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"held-out {metric}")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def agreement_vs_model(rounds: Sequence[dict], path: str | Path) -> Path:
    """Per round of the main arm: the model's held-out F1 next to the annotators' mean
    pairwise agreement on the batch (the human ceiling) and the consensus against truth."""
    plt = _pyplot()
    path = Path(path)
    rows = [r for r in rounds if r["arm"] == "main"]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    x = [r["round"] for r in rows]
    for key, label, style in (
        ("f1", "model F1 (held-out)", "o-"),
        ("agreement", "annotators' pairwise agreement", "s--"),
        ("consensus_vs_truth", "consensus vs ground truth", "^:"),
    ):
        points = [(xi, r[key]) for xi, r in zip(x, rows) if r[key] is not None]
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("F1 at IoU 0.5 (or accuracy)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # e.g. an arm-only study has no main arm to draw
        ax.legend(fontsize=8)
    return _save(fig, path)


def overlay(
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    path: str | Path,
    *,
    title: str,
) -> Path:
    """The image with the outlines of the reference objects (green) and of the predicted
    ones (magenta), side by side with the image alone.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
    reference, prediction : ndarray of shape (M, N)
        Label images (0 = background).
    """
    from skimage.segmentation import find_boundaries

    from loop.core.display import to_display_uint8

    plt = _pyplot()
    path = Path(path)
    grey = to_display_uint8(image)
    rgb = np.stack([grey] * 3, axis=-1) if grey.ndim == 2 else grey.copy()
    shown = rgb.copy()
    shown[find_boundaries(reference, mode="inner")] = (0, 220, 0)
    shown[find_boundaries(prediction, mode="inner")] = (255, 0, 255)
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.6), dpi=100)
    a.imshow(rgb)
    b.imshow(shown)
    for ax in (a, b):
        ax.set_axis_off()
    b.set_title("green: reference, magenta: model", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def overlay_boxes(image: np.ndarray, reference, found, path: str | Path, *, title: str) -> Path:
    """The image with the reference boxes (green) and the model's (magenta), side by side
    with the image alone.

    Parameters
    ----------
    image : ndarray of shape (M, N) or (M, N, C)
    reference, found : array_like of shape (B, 4)
        ``x1, y1, x2, y2`` in pixels.
    """
    from matplotlib.patches import Rectangle

    from loop.core.display import to_display_uint8

    plt = _pyplot()
    grey = to_display_uint8(image)
    rgb = np.stack([grey] * 3, axis=-1) if grey.ndim == 2 else grey
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.6), dpi=100)
    a.imshow(rgb)
    b.imshow(rgb)
    for boxes, colour in ((reference, "#00dc00"), (found, "#ff00ff")):
        for x1, y1, x2, y2 in np.asarray(boxes, float).reshape(-1, 4):
            b.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=0.8, ec=colour))
    for ax in (a, b):
        ax.set_axis_off()
    b.set_title("green: reference, magenta: model", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, Path(path))


def feature_map(x: np.ndarray, groups: Sequence[str], path: str | Path, *, title: str) -> Path:
    """The first two principal components of standardised features ``x`` (shape (n, F)),
    one colour per group (``groups``, shape (n,)), into ``path`` (PNG)."""
    plt = _pyplot()
    path = Path(path)
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
    _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    pcs = z @ vt[:2].T
    explained = s[:2] ** 2 / max(float((s**2).sum()), 1e-12)
    groups = np.asarray(groups)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=100)
    for name in sorted(set(groups)):
        at = groups == name
        ax.scatter(pcs[at, 0], pcs[at, 1], s=12, alpha=0.7, label=f"{name} ({int(at.sum())})")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%})" if len(explained) > 1 else "PC 2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)
