"""Held-out figures of a model on the test split, overall and per group (cached per model)."""

from __future__ import annotations

import json
import time

from loop.core.images import read_image
from loop.core.metrics import HEADLINE, lagging_groups
from loop.errors import ModelError
from loop.learn.labels import Progress, _noop, image_path, target
from loop.learn.registry import load_model, model_row
from loop.models.family import family
from loop.store import dumps, meta_column, models, utcnow
from loop.study import Study


def _groups(study: Study, image: dict) -> list[str]:
    return [f"{key}={image.get(meta_column(key))}" for key in study.config.groups]


def evaluate(
    study: Study,
    *,
    model_id: int | None = None,
    split: str = "test",
    gpu: bool | None = None,
    progress: Progress = _noop,
) -> dict:
    """Held-out figures of a model on ``split`` (default: the test split), cached per model.

    Returns
    -------
    dict
        Segmentation: ``ap50``, ``ap75``, ``ap90``, ``precision``, ``recall``, ``f1``,
        ``matched_iou``, ``dice``, ``n_images``, ``per_group``; classification: ``accuracy``,
        ``macro_f1``, ``kappa``, ``per_class``, ``n_images``, ``per_group``; semantic
        segmentation: ``mean_dice``, ``mean_iou`` (over the foreground classes),
        ``pixel_accuracy``, ``per_class`` (``dice``, ``iou``, ``pixels``), ``n_images``,
        ``per_group``, from the pooled pixels of the split. Plus
        ``model_id`` and ``split``.

    Raises
    ------
    NoModel
        Without a trained model.
    ModelError
        When the split has no images with ground truth.
    """
    row = model_row(study, model_id)
    cached = models.evaluation(study.store, row["id"], split)
    if cached:
        return {**json.loads(cached["metrics"]), "model_id": row["id"], "split": split}
    images = [im for im in study.store.images("split = ?", [split])]
    truths = {im["id"]: study.store.truth(im["id"]) for im in images}
    images = [im for im in images if truths[im["id"]] is not None]
    if not images:
        raise ModelError(
            f"no {split} images with ground truth to evaluate on: "
            "`loop split --test` makes a test split of images with masks/classes"
        )
    started = time.perf_counter()
    model = load_model(study, row, gpu)
    adapter = family(row["kind"])
    config = adapter.settings(study.config)
    per_image, groups = [], []
    for i, image in enumerate(images):
        (output,) = adapter.predict(model, [read_image(image_path(image))], config=config)
        truth = target(study, image, truths[image["id"]], adapter.label_kind, partial=False)
        per_image.append(
            {"image_id": image["id"], **adapter.score(output, truth, config=study.config)}
        )
        groups.append(_groups(study, image))
        progress("evaluating", i + 1, len(images))
    metrics = adapter.summarize(per_image, config=study.config)
    for level in range(len(study.config.groups)):
        by = adapter.summarize(per_image, [g[level] for g in groups], config=study.config)
        metrics["per_group"].update(by["per_group"])
    metrics["lagging_groups"] = lagging_groups(metrics["per_group"], HEADLINE[row["task"]])
    models.add_evaluation(
        study.store,
        {
            "model_id": row["id"],
            "split": split,
            "metrics": dumps(metrics),
            "per_image": dumps(per_image),
            "seconds": time.perf_counter() - started,
            "created_at": utcnow(),
        },
    )
    return {**metrics, "model_id": row["id"], "split": split}
