"""Learning curves of label efficiency, as pure functions on arrays: a curve per strategy is
the held-out metric by labeled images (or annotated objects) over seeds.

Definitions
-----------
- a run: one seed's points, round by round, ``(cost, metric)``;
- a mean curve: per round, ``[mean cost, mean metric, sd]`` over the runs that reached it;
- ``labels_to(curve, target)``: the smallest cost at which the mean reaches ``target`` (90% or
  95% of the full-pool figure), ``None`` when it never does within the rounds;
- ``cost_to``: the same with a bootstrap over the runs (seeds);
- ``area_under``: the area under the mean curve over the full-pool figure times the cost range;
- ``paired_curve``: per round, a strategy's gain over the baseline seed by seed (the same seed
  shares the initial model and the test split, so the pairs cancel most of the training noise);
- ``paired_at_cost``: the same at equal cost (effort), the baseline read off its own seed's
  curve by linear interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def labels_to(curve: Sequence[Sequence[float]], target: float | None) -> int | None:
    """The smallest labeled count whose mean reaches ``target`` (``None``: never).

    Parameters
    ----------
    curve : sequence of (n_labeled, mean, sd)

    >>> labels_to([[8, 0.5, 0], [16, 0.8, 0], [24, 0.9, 0]], 0.8)
    16
    >>> labels_to([[8, 0.5, 0]], 0.9) is None
    True
    """
    if target is None:
        return None
    for n, mean, _sd in curve:
        if mean is not None and mean >= target:
            return int(round(n))
    return None


def _by_round(runs: Sequence[Sequence[tuple]]):
    """Round by round, the points of the runs that reached that round."""
    for i in range(max((len(r) for r in runs), default=0)):
        yield [r[i] for r in runs if len(r) > i]


def mean_curve(runs: Sequence[Sequence[tuple[float, float]]]) -> list[list[float]]:
    """Per round, [mean n_labeled, mean metric, sd metric] over the runs that reached it.

    Parameters
    ----------
    runs : sequence of sequences of (n_labeled, metric)
        One per seed, round by round.
    """
    out = []
    for points in _by_round(runs):
        ns = [p[0] for p in points]
        values = [p[1] for p in points]
        out.append(
            [
                round(float(np.mean(ns)), 2),
                round(float(np.mean(values)), 4),
                round(float(np.std(values)), 4),
            ]
        )
    return out


def summarize(
    curves: dict[str, list[list[float]]], full: float | None, *, baseline: str = "random"
) -> dict:
    """``label_efficiency`` records: labels to 90% / 95% of ``full`` and ratios to the
    baseline (a ratio < 1 means fewer labels than the baseline)."""
    out = {}
    for name, curve in curves.items():
        out[name] = {
            "labels_to_90": labels_to(curve, None if full is None else 0.9 * full),
            "labels_to_95": labels_to(curve, None if full is None else 0.95 * full),
            "curve": curve,
        }
    base = out.get(baseline)
    for record in out.values():
        for level in ("90", "95"):
            mine, theirs = record[f"labels_to_{level}"], base and base[f"labels_to_{level}"]
            record[f"ratio_to_{baseline}_{level}"] = (
                round(mine / theirs, 3) if mine and theirs else None
            )
    return out


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of the mean of ``values`` (one per seed).

    >>> [round(v, 3) for v in interval([0.5, 0.6, 0.7])]
    [0.6, 0.352, 0.848]
    """
    from scipy import stats

    x = np.asarray(values, float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def interval_curve(runs: Sequence[Sequence[tuple[float, float]]]) -> list[list[float]]:
    """Per round, [mean x, mean, low, high] (95% interval over the runs that reached it)."""
    out = []
    for reached in _by_round(runs):
        points = [p for p in reached if p[1] is not None]
        if not points:
            continue
        mean, low, high = interval([p[1] for p in points])
        out.append(
            [round(float(np.mean([p[0] for p in points])), 2)]
            + [round(v, 4) for v in (mean, low, high)]
        )
    return out


def paired_curve(
    runs: Sequence[Sequence[tuple[float, float]]],
    baseline: Sequence[Sequence[tuple[float, float]]],
) -> list[list[float]]:
    """Per round, the gain of ``runs`` over ``baseline`` paired by seed.

    Parameters
    ----------
    runs, baseline : sequence of sequences of (n_labeled, metric)
        One per seed, in the same seed order, round by round; a round counts the seeds that
        reached it in both.

    Returns
    -------
    list of [mean n_labeled, mean gain, low, high, ahead, n]
        The 95% t-interval of the mean per-seed difference, the number of seeds on which
        ``runs`` is ahead, and the number of pairs.

    >>> paired_curve([[(4, 0.5), (8, 0.7)], [(4, 0.4), (8, 0.6)]],
    ...              [[(4, 0.5), (8, 0.6)], [(4, 0.4), (8, 0.55)]])
    [[4.0, 0.0, 0.0, 0.0, 0, 2], [8.0, 0.075, -0.2427, 0.3927, 2, 2]]
    """
    _check_pairs("paired_curve", runs, baseline)
    out = []
    for i in range(max((len(r) for r in runs), default=0)):
        pairs = [
            (r[i], b[i])
            for r, b in zip(runs, baseline)
            if len(r) > i and len(b) > i and r[i][1] is not None and b[i][1] is not None
        ]
        if pairs:
            out.append(_paired_row([r[0] for r, _ in pairs], [r[1] - b[1] for r, b in pairs]))
    return out


def _check_pairs(name: str, runs, baseline) -> None:
    if len(runs) != len(baseline):
        raise ValueError(
            f"{name}: {len(runs)} runs against {len(baseline)} baseline runs; pair them by "
            "seed (the same seeds for both)"
        )


def _paired_row(costs: Sequence[float], gains: Sequence[float]) -> list[float]:
    """[mean cost, mean gain, low, high, seeds ahead, pairs] of one round's pairs."""
    mean, low, high = interval(gains)
    return (
        [round(float(np.mean(costs)), 2)]
        + [round(v, 4) for v in (mean, low, high)]
        + [int(sum(g > 0 for g in gains)), len(gains)]
    )


def paired_at_cost(
    runs: Sequence[Sequence[tuple[float, float]]],
    baseline: Sequence[Sequence[tuple[float, float]]],
) -> list[list[float]]:
    """Per round, the gain of ``runs`` over ``baseline`` at equal cost, paired by seed.

    Each run's point ``(cost, metric)`` is compared with the same seed's baseline run read at
    that cost, linearly between the baseline's two rounds around it (a straight line between
    measured rounds: an approximation of a curve that rises and flattens). A point whose cost
    lies beyond the baseline's last round is not compared (no extrapolation); nor is one without
    a metric.

    Parameters
    ----------
    runs, baseline : sequence of sequences of (cost, metric)
        One per seed, in the same seed order; costs rising round by round.

    Returns
    -------
    list of [mean cost, mean gain, low, high, ahead, n]
        As :func:`paired_curve`, for each round with at least one pair.

    Raises
    ------
    ValueError
        When the two sides hold different numbers of seeds.

    >>> paired_at_cost([[(0, 0.5), (10, 0.7)]], [[(0, 0.5), (20, 0.6), (40, 0.8)]])
    [[0.0, 0.0, 0.0, 0.0, 0, 1], [10.0, 0.15, 0.15, 0.15, 1, 1]]
    """
    _check_pairs("paired_at_cost", runs, baseline)
    curves = [[(float(c), float(m)) for c, m in base if m is not None] for base in baseline]
    out = []
    for i in range(max((len(r) for r in runs), default=0)):
        costs, gains = [], []
        for run, points in zip(runs, curves):
            if len(run) <= i or run[i][1] is None or not points:
                continue
            cost = float(run[i][0])
            xs, ys = zip(*points)
            if cost > max(xs) or cost < min(xs):
                continue
            costs.append(cost)
            gains.append(float(run[i][1]) - float(np.interp(cost, xs, ys)))
        if gains:
            out.append(_paired_row(costs, gains))
    return out


def cost_to(
    runs: Sequence[Sequence[tuple[float, float]]],
    target: float | None,
    *,
    resamples: int = 1000,
    rng=0,
) -> dict:
    """Cost (the runs' x: labeled images or annotated objects) at which the mean curve first
    reaches ``target``, with a bootstrap over the runs (seeds).

    Returns
    -------
    dict
        ``value`` (None: never), ``low`` and ``high`` (2.5 and 97.5 percentiles of the
        resamples that reach it), ``never`` (share of resamples that never reach it).
    """
    if target is None or not runs:
        return {"value": None, "low": None, "high": None, "never": None}

    def reach(sample):
        curve = mean_curve(sample)
        return labels_to(curve, target)

    value = reach(runs)
    gen = np.random.default_rng(rng)
    draws = [
        reach([runs[i] for i in gen.integers(len(runs), size=len(runs))]) for _ in range(resamples)
    ]
    hits = [d for d in draws if d is not None]
    return {
        "value": value,
        "low": float(np.percentile(hits, 2.5)) if hits else None,
        "high": float(np.percentile(hits, 97.5)) if hits else None,
        "never": round(1 - len(hits) / resamples, 3),
    }


def area_under(curve: Sequence[Sequence[float]], full: float | None) -> float | None:
    """Area under a mean curve ([x, mean, ...] rows) by the trapezoid rule, over the full-pool
    figure times the x range (1.0: at the full pool from the first point on).

    >>> area_under([[4, 0.5], [8, 1.0]], 1.0)
    0.75
    """
    if not full or len(curve) < 2:
        return None
    x = np.array([c[0] for c in curve], float)
    y = np.array([c[1] for c in curve], float)
    return round(float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (full * (x[-1] - x[0]))), 4)
