"""Score the pool with a model (measures and embeddings stored per model and image, a chunk
per transaction) and record the batch a strategy picks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from loop.core import strategies
from loop.core.images import read_image
from loop.learn.labels import Progress, _noop, image_path
from loop.learn.registry import current_model, load_model, model_row
from loop.models.family import family
from loop.store import dumps, utcnow
from loop.study import Study


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


@dataclass
class ScoreReport:
    model_id: int
    strategy: str
    k: int
    scored: int  # images measured in this call
    reused: int  # images whose measures were already stored for this model
    chosen: list[dict]  # image_id, path, score (best first)
    seconds: float


def score(
    study: Study,
    *,
    strategy: str | None = None,
    k: int | None = None,
    model_id: int | None = None,
    seed: int = 0,
    split: str = "pool",
    image_ids=None,
    gpu: bool | None = None,
    progress: Progress = _noop,
) -> ScoreReport:
    """Measure every ``split`` image (or the images ``image_ids``) with the model (stored,
    skipping images already measured by the same model), then pick ``k`` with ``strategy``
    and record the selection.

    With ``score.pool_sample = n`` in the config, a seeded random subset of ``n`` candidates
    is measured (the same subset for the same model and seed), which bounds the cost of a
    round on a large pool.

    Raises
    ------
    UnknownStrategy
        For a strategy name that does not fit the task.
    NoModel
        Without a trained model (except for ``random``, which needs none).
    """
    task = study.config.task
    name = strategy or study.config.score.strategy or strategies.DEFAULTS[task]
    chosen_strategy = strategies.parse(name, task)
    k = study.config.score.k if k is None else k
    if image_ids is None:
        images = study.store.images("split = ?", [split])
    else:
        wanted = set(image_ids)
        images = [im for im in study.store.images() if im["id"] in wanted]
    started = time.perf_counter()
    if chosen_strategy.random and not chosen_strategy.diversity:
        picks = strategies.random_k(len(images), k, seed)
        chosen = [
            {"image_id": images[i]["id"], "path": images[i]["path"], "score": None} for i in picks
        ]
        row = current_model(study)
        _record_selection(study, row["id"] if row else None, name, k, seed, chosen)
        return ScoreReport(
            row["id"] if row else 0, name, k, 0, 0, chosen, time.perf_counter() - started
        )

    row = model_row(study, model_id)
    sample = study.config.score.pool_sample
    if sample and len(images) > sample:
        keep = np.random.default_rng([seed, row["id"]]).choice(len(images), sample, replace=False)
        images = [images[i] for i in sorted(keep)]
    scored, reused = _measure(study, row, images, gpu=gpu, progress=progress)
    measures, embeddings = _load_measures(study, row["id"], [im["id"] for im in images])
    if chosen_strategy.expensive and images:
        shortlist = strategies.top_k(
            np.array([m.get("flow_error", 0.0) for m in measures]),
            study.config.score.shortlist * k,
        )
        extra = _measure_tta(study, row, [images[i] for i in shortlist], gpu=gpu, progress=progress)
        scored += extra
        measures, embeddings = _load_measures(study, row["id"], [im["id"] for im in images])
    # images left out of an expensive measure's shortlist are never picked by it
    missing = -np.inf if chosen_strategy.expensive else np.nan
    values = np.array([m.get(chosen_strategy.measure, missing) for m in measures])
    picks = strategies.select(
        chosen_strategy, values, embeddings, k, shortlist=study.config.score.shortlist, rng=seed
    )
    chosen = [
        {
            "image_id": images[i]["id"],
            "path": images[i]["path"],
            "score": None if not np.isfinite(values[i]) else float(values[i]),
        }
        for i in picks
    ]
    _record_selection(study, row["id"], name, k, seed, chosen)
    return ScoreReport(row["id"], name, k, scored, reused, chosen, time.perf_counter() - started)


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
    with study.store.atomic() as db:
        same = db.execute(
            "SELECT 1 FROM selections WHERE coalesce(model_id, 0) = ? AND strategy = ? AND k = ? "
            "AND seed = ? AND image_ids = ? AND scores = ?",
            [model_id or 0, name, k, seed, row["image_ids"], row["scores"]],
        ).fetchone()
        if same is None:
            db["selections"].insert({**row, "created_at": utcnow()})


def _measure(study: Study, row: dict, images: list[dict], *, gpu, progress) -> tuple[int, int]:
    db = study.store.db
    done = {
        r[0]
        for r in db.execute(
            "SELECT image_id FROM scores WHERE model_id = ?", [row["id"]]
        ).fetchall()
    }
    todo = [im for im in images if im["id"] not in done]
    if not todo:
        return 0, len(images)
    model = load_model(study, row, gpu)
    adapter = family(row["kind"])
    config = adapter.settings(study.config)
    n = 0
    for part in _chunks(todo, study.config.score.chunk):
        pixels = [read_image(image_path(image)) for image in part]
        outputs = adapter.predict(model, pixels, config=config)
        del pixels
        rows = [(image["id"], o.measures, o.embedding) for image, o in zip(part, outputs)]
        n += len(part)
        progress("scoring", n, len(todo))
        now = utcnow()
        with study.store.atomic():  # one transaction per chunk: a killed run keeps its chunks
            db["scores"].insert_all(
                [
                    {
                        "model_id": row["id"],
                        "image_id": image_id,
                        "measures": dumps(m),
                        "embedding": _to_blob(e),
                        "created_at": now,
                    }
                    for image_id, m, e in rows
                ],
                replace=True,
            )
    return len(todo), len(images) - len(todo)


def _measure_tta(study: Study, row: dict, images: list[dict], *, gpu, progress) -> int:
    db = study.store.db
    todo = []
    for image in images:
        stored = next(
            db["scores"].rows_where("model_id = ? AND image_id = ?", [row["id"], image["id"]])
        )
        if "tta" not in json.loads(stored["measures"]):
            todo.append((image, stored))
    if not todo:
        return 0
    model, adapter = load_model(study, row, gpu), family(row["kind"])
    for i, (image, stored) in enumerate(todo):
        (output,) = adapter.predict(
            model, [read_image(image_path(image))], config=study.config.model, tta=True
        )
        with study.store.atomic():
            db["scores"].update(stored["id"], {"measures": dumps(output.measures)})
        progress("test-time augmentation", i + 1, len(todo))
    return len(todo)


def _load_measures(study: Study, model_id: int, image_ids: list[int]):
    db = study.store.db
    by_id = {r["image_id"]: r for r in db["scores"].rows_where("model_id = ?", [model_id])}
    measures = [json.loads(by_id[i]["measures"]) for i in image_ids]
    embeddings = (
        np.stack([_from_blob(by_id[i]["embedding"]) for i in image_ids])
        if image_ids
        else np.zeros((0, 1), np.float32)
    )
    return measures, embeddings
