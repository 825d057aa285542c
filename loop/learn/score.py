"""Score the pool with a model (measures and embeddings stored per model and image, a chunk
per transaction) and record the batch a strategy picks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from loop.core import strategies
from loop.core.images import read_image
from loop.core.stages import timed
from loop.faults import crash_points
from loop.learn.engine import Engine, ModelRef
from loop.learn.labels import Progress, _noop, group_of, image_path
from loop.learn.registry import current_model, model_row
from loop.learn.score_jobs import Measuring, job_of
from loop.store import dumps, scores
from loop.study import Study


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class ScoreReport:
    model_id: int
    strategy: str
    k: int
    scored: int  # images measured in this call
    reused: int  # images whose measures were already stored for this model
    chosen: list[dict]  # image_id, path, score (best first)
    seconds: float
    profile: dict = field(default_factory=dict)
    """Where measuring took its time (:mod:`loop.core.stages`): ``driver`` (``start`` of a
    cluster, ``wait`` for results, ``save``) and ``workers`` (``read``, ``normalise``,
    ``network``, ...: summed over them); empty when nothing was measured."""


def _pool_sample(images: list[dict], sample: int, seed, model_id: int) -> list[dict]:
    """A seeded random subset of ``sample`` images (the same for the same model and seed), or
    all of them when ``sample`` is 0 or covers the pool."""
    if not sample or len(images) <= sample:
        return images
    keep = np.random.default_rng([seed, model_id]).choice(len(images), sample, replace=False)
    return [images[i] for i in sorted(keep)]


def score(
    study: Study,
    *,
    strategy: str | None = None,
    k: int | None = None,
    model_id: int | None = None,
    seed: int = 0,
    split: str = "pool",
    image_ids=None,
    labeled_ids=None,
    gpu: bool | None = None,
    engine: Engine = Engine(),
    progress: Progress = _noop,
) -> ScoreReport:
    """Measure every ``split`` image (or the images ``image_ids``) with the model (stored,
    skipping images already measured by the same model), then pick ``k`` with ``strategy``
    and record the selection.

    Every candidate gets the model's cheap measures (:meth:`ModelFamily.measure`: for
    Cellpose, two forward passes); a measure of a costlier tier (``flow-error``, ``tta``) is
    computed on the top ``score.shortlist * k`` candidates by the cheap measure
    :data:`~loop.core.strategies.SHORTLIST_BY` only. The labeled images (``labeled_ids``;
    default: the ``labeled`` split when ``image_ids`` is not given) are measured too, for
    the selectors that start from them (k-center, TypiClust) and to resolve ``auto``.

    With ``score.pool_sample = n`` in the config, a seeded random subset of ``n`` candidates
    is measured (the same subset for the same model and seed), which bounds the cost of a
    round on a large pool; so are the images whose regions a measured region strategy ranks.

    ``engine`` measures the images in this process or on the workers of a Dask cluster
    (:mod:`loop.learn.engine`); this process alone writes the store, a chunk per transaction,
    so a stopped run keeps its chunks and the next call measures only the rest.

    Raises
    ------
    UnknownStrategy
        For a strategy name that does not fit the task, or ``+groups`` without
        ``groups`` in the study's config.
    NoModel
        Without a trained model (except for ``random``, which needs none).
    """
    task, config = study.config.task, study.config.score
    name = strategy or config.strategy or strategies.DEFAULTS[task]
    k = config.k if k is None else k
    if image_ids is None:
        images = study.store.images("split = ?", [split])
        labeled_ids = (
            [im["id"] for im in study.store.images("split = 'labeled'")]
            if labeled_ids is None
            else labeled_ids
        )
    else:
        wanted = set(image_ids)
        images = [im for im in study.store.images() if im["id"] in wanted]
    candidates = {im["id"] for im in images}
    labeled = [study.store.image(i) for i in (labeled_ids or []) if i not in candidates]
    labeled_ids = [im["id"] for im in labeled]
    chosen_strategy = strategies.parse(
        name,
        task,
        labeled=len(labeled_ids),
        coverage_until=config.coverage_until,
        groups=bool(study.config.groups),
    )
    if chosen_strategy.name != name:
        name = f"{name}={chosen_strategy.name}"  # auto, resolved: recorded as such
    strategies.check_groups(chosen_strategy, study.config.groups)
    started = time.perf_counter()
    if chosen_strategy.unit == "region":
        from loop.learn.regions import choose_regions, record_regions

        row = None if chosen_strategy.random else model_row(study, model_id)
        used = row or current_model(study)
        if row is not None or chosen_strategy.selector == "typiclust":
            # measured regions, or the features of every region: a sample bounds the cost
            images = _pool_sample(images, config.pool_sample, seed, used["id"] if used else 0)
        scored, chosen = choose_regions(
            study, chosen_strategy, images, labeled, k, row=row, seed=seed, gpu=gpu,
            progress=progress,
        )  # fmt: skip
        record_regions(study, used["id"] if used else None, name, k, seed, chosen)
        return ScoreReport(
            used["id"] if used else 0, name, k, scored, 0, chosen, time.perf_counter() - started
        )
    model_free = chosen_strategy.random and chosen_strategy.embedding == "image"
    if chosen_strategy.selector == "random" or model_free:
        row = current_model(study)
        if model_free:
            embeddings, centers = _appearance(images, labeled, progress)
            picks = _select(
                study, chosen_strategy, None, embeddings, centers, images, labeled, k, seed
            )
        else:
            picks = _random_picks(study, chosen_strategy, images, labeled, k, seed)
        chosen = [
            {"image_id": images[i]["id"], "path": images[i]["path"], "score": None} for i in picks
        ]
        _record_selection(study, row["id"] if row else None, name, k, seed, chosen)
        return ScoreReport(
            row["id"] if row else 0, name, k, 0, 0, chosen, time.perf_counter() - started
        )

    row = model_row(study, model_id)
    images = _pool_sample(images, config.pool_sample, seed, row["id"])
    with Measuring(engine) as measuring:  # one cluster for the cheap and the costlier measures
        scored, reused, measures, embeddings = _measure_all(
            study,
            row,
            chosen_strategy,
            images,
            labeled,
            k=k,
            gpu=gpu,
            progress=progress,
            measuring=measuring,
        )
    profile = measuring.profile
    measured = time.perf_counter() - started
    values = None
    if not chosen_strategy.random:
        key = strategies.TASK_MEASURES[task][chosen_strategy.measure].key
        # images left out of an expensive measure's shortlist are never picked by it
        missing = -np.inf if chosen_strategy.expensive else np.nan
        values = np.array([m.get(key, missing) for m in measures])
    if chosen_strategy.embedding == "image":
        embeddings, centers = _appearance(images, labeled, progress)
    else:
        centers = _load_measures(study, row["id"], labeled_ids)[1] if labeled_ids else None
    picks = _select(study, chosen_strategy, values, embeddings, centers, images, labeled, k, seed)
    chosen = [
        {
            "image_id": images[i]["id"],
            "path": images[i]["path"],
            "score": None if values is None or not np.isfinite(values[i]) else float(values[i]),
        }
        for i in picks
    ]
    _record_selection(study, row["id"], name, k, seed, chosen)
    profile = {"images": scored, "seconds": measured, **profile} if scored else {}
    seconds = time.perf_counter() - started
    return ScoreReport(row["id"], name, k, scored, reused, chosen, seconds, profile)


def _measure_all(study, row, strategy, images, labeled, *, k, gpu, progress, measuring):
    """(images measured now, images already measured, measures, embeddings of ``images``):
    the cheap measures of every candidate and labeled image, then the strategy's costlier
    measure on the shortlist ranked by the cheap one."""
    task = study.config.task
    scored, reused = _measure(
        study, row, images + labeled, gpu=gpu, progress=progress, measuring=measuring
    )
    ids = [im["id"] for im in images]
    measures, embeddings = _load_measures(study, row["id"], ids)
    if strategy.expensive and images:
        key = strategies.shortlist_key(task)
        shortlist = strategies.top_k(
            np.array([m.get(key, 0.0) for m in measures]), study.config.score.shortlist * k
        )
        scored += _measure_more(
            study,
            row,
            [images[i] for i in shortlist],
            tier=strategy.tier,
            gpu=gpu,
            progress=progress,
            measuring=measuring,
        )
        measures, embeddings = _load_measures(study, row["id"], ids)
    return scored, reused, measures, embeddings


def _select(study, strategy, values, embeddings, centers, images, labeled, k, seed) -> np.ndarray:
    return strategies.select(
        strategy,
        values,
        embeddings,
        k,
        shortlist=study.config.score.shortlist,
        centers=centers,
        groups=group_of(study, images) if strategy.groups else None,
        labeled_groups=group_of(study, labeled) if strategy.groups else (),
        rng=seed,
    )


def _appearance(images: list[dict], labeled: list[dict], progress: Progress):
    """The model-free appearance embedding (:func:`loop.core.features.appearance_embedding`)
    of the candidates and of the labeled images, standardised together: (candidates, labeled
    or None)."""
    from loop.core.features import appearance_embedding

    both = images + labeled

    def read():
        for i, image in enumerate(both):
            yield read_image(image_path(image))
            progress("appearance features", i + 1, len(both))

    x = appearance_embedding(read())
    return x[: len(images)], (x[len(images) :] if labeled else None)


def _random_picks(study, strategy, images, labeled, k, seed) -> np.ndarray:
    if strategy.groups:
        blank = np.zeros((len(images), 1))
        return _select(study, strategy, None, blank, None, images, labeled, k, seed)
    return strategies.random_k(len(images), k, seed)


def _record_selection(study, model_id, name, k, seed, chosen) -> None:
    """Record a batch choice, once: the same choice made again (a re-run) adds no row."""
    row = {
        "model_id": model_id,
        "strategy": name,
        "k": k,
        "seed": seed,
        "image_ids": dumps([c["image_id"] for c in chosen]),
        "scores": dumps([c["score"] for c in chosen]),
    }
    scores.record_selection(study.store, row)


def _measure(
    study: Study,
    row: dict,
    images: list[dict],
    *,
    gpu,
    progress,
    measuring: Measuring,
) -> tuple[int, int]:
    """The cheap measures and embeddings of ``images`` (those not yet measured by the model,
    or measured by an older loop without them), a chunk per transaction, in this process or
    on the workers of ``measuring``'s engine (this process writes)."""
    key = strategies.shortlist_key(study.config.task)
    stored = scores.measures_of(study.store, row["id"])
    unique = {im["id"]: im for im in images}.values()
    todo = [im for im in unique if key not in stored.get(im["id"], {})]
    if not todo:
        return 0, len(images)
    ModelRef.of(study, row, gpu).load()  # fail early
    parts = list(_chunks(todo, study.config.score.chunk))
    jobs = [job_of(study, row, [image_path(im) for im in part], gpu) for part in parts]
    n, crash = 0, crash_points()
    for i, (device, outputs) in measuring.run(jobs):
        rows = [
            (image["id"], {**stored.get(image["id"], {}), **measures}, embedding)
            for image, (measures, embedding) in zip(parts[i], outputs)
        ]
        n += len(parts[i])
        progress("scoring", n, len(todo))
        with timed(measuring.profile["driver"], "save"):
            scores.save_scores(study.store, row["id"], rows, device=device)  # one transaction
        crash.hit("score.chunk")
    return len(todo), len(images) - len(todo)


def _measure_more(
    study: Study,
    row: dict,
    images: list[dict],
    *,
    tier: str,
    gpu,
    progress,
    measuring: Measuring,
) -> int:
    """Add the measures of a costlier tier (``segment``: masks reconstructed; ``tta``: four
    flipped predictions) to the stored ones of ``images``; the cheap measures stay as the
    forward pass gave them."""
    task = study.config.task
    wanted = strategies.tier_keys(task, tier)
    keep = strategies.tier_keys(task, "forward")
    todo = []
    by_id = scores.scores_of(study.store, row["id"])
    for image in images:
        stored = by_id[image["id"]]
        if not wanted <= set(json.loads(stored["measures"])):
            todo.append((image, stored))
    if not todo:
        return 0
    what = "test-time augmentation" if tier == "tta" else "segmenting the shortlist"
    jobs = [job_of(study, row, [image_path(image)], gpu, tier) for image, _ in todo]
    for i, (_device, ((measures, _embedding),)) in measuring.run(jobs):
        stored = todo[i][1]
        old = json.loads(stored["measures"])
        merged = {**measures, **{k: v for k, v in old.items() if k in keep}}
        with timed(measuring.profile["driver"], "save"):
            scores.update_measures(study.store, stored["id"], merged)
        progress(what, i + 1, len(todo))
    return len(todo)


def _load_measures(study: Study, model_id: int, image_ids: list[int]):
    by_id = scores.scores_of(study.store, model_id)
    measures = [json.loads(by_id[i]["measures"]) for i in image_ids]
    embeddings = (
        np.stack([scores.from_blob(by_id[i]["embedding"]) for i in image_ids])
        if image_ids
        else np.zeros((0, 1), np.float32)
    )
    return measures, embeddings
