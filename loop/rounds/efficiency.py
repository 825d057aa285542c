"""Label efficiency: how many labeled images a strategy needs to reach a given accuracy,
against random selection, measured with the loop itself.

Each (strategy, seed) is an arm of the study (named ``<strategy>-s<seed>``) that starts from
the study's initial labeled set and runs rounds of ``batch`` images: train (warm-started, the
seed sets the network's initialisation and the random choices), evaluate on the test split,
select, annotate (simulated annotators through Label Studio), fuse, admit. The arms go round
by round (round 0 of every arm, then round 1, ...), so a stopped run has balanced curves and
resumes where it stopped: every step is cached in the study (``rounds``, ``models``,
``evaluations``). Labels belong to images, so an image two arms choose is annotated once
(the same consensus in both).

Definitions
-----------
- curve: per round, the mean number of labeled images (initial set included) and the mean
  and standard deviation over seeds of the held-out headline metric (AP@0.5 or macro-F1).
- full pool: models trained with the same recipe on every pool image with its ground truth,
  one per seed (the arms' seeds: training from scratch is seed-sensitive, on DSB one seed in
  three lands 5 points of AP@0.5 lower), in a copy of the study (so the study is untouched),
  evaluated on the same test split; the reference is their mean. Each gets the median number
  of steps an arm used over all its rounds; with ``full_pool_chunks`` > 1 they are trained
  further in chunks of that size, each warm-started from the last, all seeds together, until a
  chunk gains less than ``full_pool_plateau`` on average over the seeds (each seed's best chunk
  counts), to check that the budget was not what held it back.
- ``labels_to_90`` / ``labels_to_95``: the smallest labeled count at which the mean curve
  reaches 90% / 95% of the full-pool figure; ``None`` when it never does within the rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loop.core import strategies
from loop.core.curves import (
    area_under,
    cost_to,
    interval_curve,
    mean_curve,
    paired_at_cost,
    paired_curve,
    summarize,
)
from loop.core.metrics import HEADLINE, group_figures
from loop.errors import RoundError
from loop.reports.status import round_summaries
from loop.rounds.full_pool import full_pool
from loop.rounds.round import (
    Annotate,
    Log,
    Progress,
    RoundOptions,
    _quiet,
    current_round,
    run_round,
)
from loop.store.models import steps_of
from loop.store.rounds import initial_count
from loop.study import Study
from loop.types import AnnotationTool


@dataclass(frozen=True)
class EfficiencyOptions:
    """What a label-efficiency run compares.

    Parameters
    ----------
    strategies : tuple of str
        Strategy names (``loop strategies``); ``random`` is the baseline and is added when
        missing.
    seeds : int
        Arms per strategy (seeds 0..seeds-1).
    rounds : int
        Rounds of annotation; rounds 0..rounds are evaluated (the last one trains on every
        batch).
    batch : int
        Images chosen per round.
    region_batch : int, optional
        Regions chosen per round by a region strategy (``NAME@region``); default ``batch``.
        A region costs an expert a fraction of an image: give more regions than images to
        compare the arms over the same range of effort.
    steps : int, optional
        Training steps per round (default: the study's recipe).
    full_pool_chunks : int
        At most this many chunks of training for each full-pool model (1: the arms' budget).
    full_pool_plateau : float
        The full-pool reference stops growing its budget when a chunk gains less than this
        on average over the seeds (absolute, in the headline metric).
    """

    strategies: tuple[str, ...]
    seeds: int = 3
    rounds: int = 5
    batch: int = 8
    region_batch: int | None = None
    steps: int | None = None
    gpu: bool | None = None
    full_pool_chunks: int = 1
    full_pool_plateau: float = 0.01

    def __post_init__(self):
        for name in ("seeds", "rounds", "batch", "region_batch", "full_pool_chunks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RoundError(f"--{name.replace('_', '-')} {value}: give at least 1")
        if not 0 <= self.full_pool_plateau < 1:
            raise RoundError(
                f"--full-pool-plateau {self.full_pool_plateau}: give a gain in [0, 1), e.g. 0.01"
            )
        if not self.strategies:
            raise RoundError("--strategies: name at least one strategy (e.g. random)")


def arm_name(strategy: str, seed: int) -> str:
    return f"{strategy}-s{seed}"


def details(study: Study, arm: str) -> list[dict]:
    """Per evaluated round of an arm: ``n_labeled``, ``n_objects`` (annotated objects in its
    training labels), ``effort`` (the experts' weighted edits on the batches of the rounds
    before it, :func:`loop.store.rounds.effort_of_batch`; the initial labels, the same for
    every arm, count nothing), ``score`` and ``per_group`` (group -> headline metric)."""
    metric = HEADLINE[study.config.task]
    out, spent = [], 0.0
    for r in round_summaries(study, arm):
        if r["n_labeled"] is not None and r["score"] is not None:
            out.append(
                {
                    "n_labeled": r["n_labeled"],
                    "n_objects": r["n_objects"],
                    "effort": spent,
                    "score": r["score"],
                    "per_group": group_figures(r["metrics"], metric),
                }
            )
        spent += r["effort"] or 0.0  # round_summaries weighed the batch's edits
    return out


def summarize_details(
    per_strategy: dict[str, list[list[dict]]], full: float | None, *, baseline: str = "random"
) -> dict:
    """The interval curves, per-group curves, costs on both axes (labeled images, annotated
    objects) with bootstrap intervals, and the normalised area under the curve, per strategy;
    for every strategy but the baseline, ``paired_vs_<baseline>``: its gain over the baseline
    seed by seed, per round (:func:`loop.core.curves.paired_curve`), and
    ``paired_vs_<baseline>_by_effort``: the same at equal effort, the baseline's seed read off
    its effort curve (:func:`loop.core.curves.paired_at_cost`).
    """
    out = {}
    target = None if full is None else 0.95 * full
    images = {name: _along(seeds, _labels) for name, seeds in per_strategy.items()}
    effort = {name: _along(seeds, _effort) for name, seeds in per_strategy.items()}
    for name, seeds in per_strategy.items():
        by_images, by_effort = images[name], effort[name]
        by_objects = _along(seeds, lambda p: p["n_objects"] or 0)
        groups = sorted({g for run in seeds for p in run for g in p["per_group"]})
        per_group = _group_curves(seeds, groups, _labels)
        per_group_effort = _group_curves(seeds, groups, _effort)
        finals = {g: c[-1][1] for g, c in per_group.items() if c}
        curve = interval_curve(by_images)
        out[name] = {
            "interval_curve": curve,
            "labels_to_95": cost_to(by_images, target),
            "objects_to_95": cost_to(by_objects, target),
            "objects_curve": interval_curve(by_objects),
            "effort_to_90": cost_to(by_effort, None if full is None else 0.90 * full),
            "effort_to_95": cost_to(by_effort, target),
            "effort_curve": interval_curve(by_effort),
            "auc": area_under(curve, full),
            "per_group": per_group,
            "per_group_effort": per_group_effort,
            "worst_group": min(finals, key=finals.get) if finals else None,
            "worst_group_final": min(finals.values()) if finals else None,
        }
    if baseline in images:
        for name, runs in images.items():
            if name != baseline:
                out[name][f"paired_vs_{baseline}"] = paired_curve(runs, images[baseline])
                out[name][f"paired_vs_{baseline}_by_effort"] = paired_at_cost(
                    effort[name], effort[baseline]
                )
    return out


def _labels(point: dict) -> float:
    return point["n_labeled"]


def _effort(point: dict) -> float:
    return point.get("effort") or 0.0


def _along(seeds: list[list[dict]], x, y=lambda p: p["score"]) -> list[list[tuple]]:
    """Per seed, the ``(x(point), y(point))`` pairs of its rounds: a run on one cost axis."""
    return [[(x(p), y(p)) for p in run] for run in seeds]


def _group_curves(seeds: list[list[dict]], groups: list[str], x) -> dict:
    """Group -> its interval curve (:func:`interval_curve`) on the cost axis ``x``."""
    return {
        g: interval_curve(_along(seeds, x, lambda p, g=g: p["per_group"].get(g))) for g in groups
    }


def run_arms(
    study: Study,
    tool: AnnotationTool,
    options: EfficiencyOptions,
    *,
    annotate: Annotate,
    progress: Progress = _quiet,
    log: Log = _quiet,
) -> dict[str, list[list[tuple[float, float]]]]:
    """Run every (strategy, seed) arm round by round; returns strategy -> per seed ->
    [(n_labeled, metric)] by round."""
    task = study.config.task
    names = _with_baseline(options.strategies)
    k = {
        name: (options.region_batch or options.batch)
        if strategies.parse(name, task).unit == "region"
        else options.batch
        for name in names
    }
    for number in range(options.rounds + 1):
        for name in names:
            for seed in range(options.seeds):
                arm = arm_name(name, seed)
                if current_round(study, arm) > number:
                    continue
                run_round(
                    study,
                    tool,
                    options=RoundOptions(
                        arm=arm,
                        strategy=name,
                        k=k[name],
                        seed=seed,
                        steps=options.steps,
                        gpu=options.gpu,
                    ),
                    annotate=annotate,
                    wait=True,
                    until="agree" if number < options.rounds else "evaluate",
                    progress=progress,
                    log=log,
                )
    return {
        name: [_points(study, arm_name(name, s)) for s in range(options.seeds)] for name in names
    }


def _with_baseline(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    return names if "random" in names else ["random", *names]


def _points(study: Study, arm: str) -> list[tuple[float, float]]:
    return [
        (r["n_labeled"], r["score"])
        for r in round_summaries(study, arm)
        if r["n_labeled"] is not None and r["score"] is not None
    ]


def steps_used(study: Study, arm: str) -> int:
    """Training steps of the distinct models an arm used over its rounds."""
    ids = {r["model_id"] for r in study.store.rounds(arm) if r["model_id"]}
    return steps_of(study.store, ids)


def label_efficiency(
    study: Study,
    tool: AnnotationTool,
    options: EfficiencyOptions,
    *,
    annotate: Annotate,
    full_pool_folder: str | Path | None = None,
    progress: Progress = _quiet,
    log: Log = _quiet,
) -> dict:
    """Run the arms, the full-pool reference (unless ``full_pool_folder`` is None) and
    summarise; the returned dict is what ``loop bench al --json`` prints."""
    runs = run_arms(study, tool, options, annotate=annotate, progress=progress, log=log)
    curves = {name: mean_curve(per_seed) for name, per_seed in runs.items()}
    per_strategy = {
        name: [details(study, arm_name(name, s)) for s in range(options.seeds)] for name in runs
    }
    default = study.config.score.strategy or strategies.DEFAULTS[study.config.task]
    reference = None
    if full_pool_folder is not None:
        budget = int(
            np.median(
                [
                    steps_used(study, arm_name(name, s))
                    for name in runs
                    for s in range(options.seeds)
                ]
            )
        )
        log(f"full-pool reference: {options.seeds} seed(s), {budget} training steps each")
        reference = full_pool(
            study,
            full_pool_folder,
            steps=budget,
            seeds=options.seeds,
            chunks=options.full_pool_chunks,
            plateau=options.full_pool_plateau,
            gpu=options.gpu,
            progress=progress,
            log=log,
        )
    metric = HEADLINE[study.config.task]
    value = None if reference is None else reference["value"]
    efficiency = summarize(curves, value)
    extra = summarize_details(per_strategy, value)
    for name in efficiency:
        efficiency[name].update(
            {k: v for k, v in extra[name].items() if k not in ("labels_to_95",)},
            labels_to_95_interval=extra[name]["labels_to_95"],
        )
        for key in ("effort_to_90", "effort_to_95"):  # the value beside the curve, as a number
            efficiency[name][f"{key}_interval"] = extra[name][key]
            efficiency[name][key] = extra[name][key]["value"]
    groups = sorted({g for r in extra.values() for g in r["per_group"]})
    return {
        "metric": metric,
        f"full_pool_{metric}": value,
        "full_pool": reference,
        "default_strategy": default,
        "groups": groups,
        "seeds": options.seeds,
        "pool_ranked": study.config.score.pool_sample == 0,
        "cost_axis": {
            name: {
                "objects_to_95": r["objects_to_95"]["value"],
                "objects_to_95_interval": r["objects_to_95"],
                "effort_to_90": r["effort_to_90"]["value"],
                "effort_to_95": r["effort_to_95"]["value"],
                "effort_to_95_interval": r["effort_to_95"],
            }
            for name, r in extra.items()
        },
        "label_efficiency": efficiency,
        "runs": {name: [[list(p) for p in r] for r in per_seed] for name, per_seed in runs.items()},
        "details": per_strategy,
        "settings": {
            "strategies": list(runs),
            "seeds": options.seeds,
            "rounds": options.rounds,
            "batch": options.batch,
            "region_batch": options.region_batch or options.batch,
            "steps": options.steps,
            "full_pool_chunks": options.full_pool_chunks,
            "full_pool_plateau": options.full_pool_plateau,
            "initial": _initial(study),
            "test_images": study.store.count_by("split").get("test", 0),
        },
    }


def _initial(study: Study) -> int:
    return initial_count(study.store)
