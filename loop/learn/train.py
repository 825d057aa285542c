"""Train the study's model on its current labels and record it.

A model that validates worse than the previous one (on the validation images of
:mod:`loop.learn.labels`) is recorded as ``rejected`` and the previous one stays in use.
Training with the same labels, configuration and seed returns the recorded model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from loop.config import MODEL_BOUNDS, SEED
from loop.config_checks import in_range
from loop.core.images import read_image
from loop.errors import ModelError
from loop.learn.labels import (
    Progress,
    _label_digest,
    _noop,
    image_path,
    target,
    training_area,
    training_labels,
    validation_split,
)
from loop.learn.registry import _next_path, _record, current_model, model_row
from loop.models.family import family_for_task
from loop.store import models
from loop.store.annotations import known_classes
from loop.store.lock import locked
from loop.study import Study

BLIND_CHECK = 4  # training images a new model must find something on (model.retry_blind)


@dataclass
class TrainReport:
    model_id: int
    status: str  # accepted | rejected
    decision: str
    reused: bool  # an identical training was already recorded
    n_train: int
    n_val: int
    steps: int
    seconds: float
    val: dict  # validation figures of the new (and previous) model


@locked("train")
def train(
    study: Study,
    *,
    seed: int | None = None,
    steps: int | None = None,
    fresh: bool = False,
    image_ids=None,
    regions=None,
    parent_id: int | None = None,
    extend: bool = False,
    arm: str = "main",
    gpu: bool | None = None,
    progress: Progress = _noop,
) -> TrainReport:
    """Train the study's model on its current labels and record it.

    Parameters
    ----------
    seed : int, optional
        Overrides ``model.seed`` / ``classifier.seed``.
    steps : int, optional
        Overrides the step budget (segmentation).
    fresh : bool
        Train from scratch (or from ``model.pretrained``) even when a previous model exists.
    image_ids : iterable of int, optional
        Train on these labeled images only (an arm's labeled set); default: all of them.
    regions : dict, optional
        Image id -> the regions an arm chose (:func:`loop.store.rounds.arm_regions`): its
        partial labels train on those regions only.
    parent_id : int, optional
        The previous model (warm start and validation gate); default: the arm's current one.
    extend : bool
        Train the parent further even when it was trained on the same labels (otherwise the
        parent is returned as it is: training again on the same labels would only repeat it).
    arm : str
        The arm of the loop the model is trained for (recorded).

    Raises
    ------
    ConfigError
        When ``steps`` or ``seed`` is out of range.
    ModelError
        When there are no labeled images with labels.
    """
    if steps is not None:
        in_range("steps", steps, 1, MODEL_BOUNDS["max_steps"][1])
    if seed is not None:
        in_range("seed", seed, *SEED)
    items = training_labels(study, image_ids, regions)
    if not items:
        raise ModelError(
            "no labeled images to train on: `loop split --initial N` labels N images from ground "
            "truth, or `loop push` / `loop pull` / `loop agree` brings annotations in"
        )
    if fresh:
        parent = None
    elif parent_id is not None:
        parent = model_row(study, parent_id)
    else:
        parent = current_model(study, arm)
    if parent is not None and parent["task"] != study.config.task:
        parent = None
    return _train(
        study,
        items,
        parent=parent,
        seed=seed,
        steps=steps,
        extend=extend,
        arm=arm,
        gpu=gpu,
        progress=progress,
    )


def _reuse(
    study: Study,
    kind: str,
    digest: str,
    params: dict,
    parent: dict | None,
    *,
    extend: bool = False,
) -> TrainReport | None:
    """The model already trained from the same labels and recipe (``digest``) and the same
    parent, or (unless ``extend``) the parent itself when it was trained on these labels, if
    its file is still there: training again would only repeat it."""
    parent_id = parent["id"] if parent else None
    itself = 0 if extend else parent_id or 0
    row = models.trained_alike(study.store, kind, digest, parent_id, itself)
    if row is not None:
        if study.resolve(row["path"]).is_file():
            val = json.loads(row["val_metrics"] or "{}")
            return TrainReport(
                row["id"],
                row["status"],
                row["decision"],
                True,
                len(json.loads(row["train_image_ids"])),
                len(json.loads(row["val_image_ids"] or "[]")),
                int(params.get("steps", 0)),
                row["seconds"] or 0.0,
                val,
            )
    return None


def paired_upper(differences) -> float:
    """The upper end of the one-sided 95% t-interval of the mean of per-image differences
    (new - previous); the difference itself for one image.

    >>> round(paired_upper([-0.1, -0.1, -0.1]), 3)
    -0.1
    >>> paired_upper([-0.3, 0.2, -0.1, 0.0]) > 0  # a noisy loss on 4 images: not significant
    True
    """
    from scipy import stats

    d = np.asarray(differences, float)
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0
    return float(d.mean() + stats.t.ppf(0.95, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))


def _decide(
    new: float | None, old: float | None, tolerance: float, differences=()
) -> tuple[str, str]:
    """Reject a new model only when the validation images say it is worse beyond noise: the
    upper end of the one-sided 95% interval of the per-image paired difference is below
    ``-tolerance`` (a handful of validation images does not throw a batch of labels away)."""
    if old is None or new is None:
        return "accepted", "no previous model or no validation images: accepted"
    upper = paired_upper(differences) if len(differences) else new - old
    if upper < -tolerance:
        return "rejected", (
            f"validation {new:.3f} < previous {old:.3f}: worse by at least {-upper:.3f} "
            f"(95% bound over {max(1, len(differences))} images) > tolerance {tolerance}: "
            "rejected, the previous model stays in use"
        )
    return "accepted", (
        f"validation {new:.3f} vs previous {old:.3f} (95% bound of the difference "
        f"{upper:+.3f} >= -{tolerance}): accepted"
    )


def _train(study, items, *, parent, seed, steps, extend, arm, gpu, progress) -> TrainReport:
    """Train with the task's family (:func:`loop.models.family.family_for_task`): reuse a
    model trained alike, else fit, validate against the parent, save and record."""
    adapter = family_for_task(study.config.task)
    settings = adapter.settings(study.config)
    train_items, val_items = validation_split(items, settings.val_fraction)
    recipe = adapter.recipe(
        study.config,
        n_train=max(1, round(training_area(train_items))),
        seed=seed,
        steps=steps,
        parent=parent,
        extend=extend,
    )
    digest = _label_digest(items, recipe.digest)
    reused = _reuse(study, adapter.kind, digest, recipe.params, parent, extend=recipe.extend)
    if reused:
        return reused

    started = time.perf_counter()
    classes = known_classes(study.store) if adapter.label_kind == "class" else ()

    def fit(recipe):
        return adapter.fit(
            *_read(study, train_items, adapter.label_kind, progress),
            config=study.config,
            recipe=recipe,
            parent_path=study.resolve(parent["path"]) if recipe.warm else None,
            gpu=gpu,
            classes=classes,
            progress=progress,
        )

    fitted, retried = fit(recipe), ""
    if getattr(settings, "retry_blind", False) and adapter.blind(
        fitted.model,
        _pairs(study, train_items[:BLIND_CHECK], adapter.label_kind, progress),
        config=study.config,
    ):
        recipe = adapter.recipe(
            study.config,
            n_train=max(1, round(training_area(train_items))),
            seed=recipe.seed + 1,
            steps=2 * recipe.steps,
            parent=None,
            extend=False,
        )
        fitted = fit(recipe)
        retried = (
            f"the first fit found nothing on its own training images: trained again from "
            f"scratch (seed {recipe.seed}, {recipe.steps} steps); "
        )
    val, differences = {}, []
    if val_items:
        val["new"], new_scores = adapter.validate(
            fitted.model,
            _pairs(study, val_items, adapter.label_kind, progress),
            config=study.config,
        )
        if parent is not None:
            old = adapter.load(study.resolve(parent["path"]), sha256=parent["sha256"], gpu=gpu)
            val["previous"], old_scores = adapter.validate(
                old, _pairs(study, val_items, adapter.label_kind, progress), config=study.config
            )
            differences = [a - b for a, b in zip(new_scores, old_scores)]
    status, decision = _decide(
        val.get("new"), val.get("previous"), settings.keep_tolerance, differences
    )
    decision = retried + decision
    path = _next_path(study, adapter.kind, adapter.suffix)
    path = adapter.save(
        fitted, path, title=f"{path.stem}: {len(train_items)} images, {recipe.steps} steps"
    )
    seconds = time.perf_counter() - started
    model_id = _record(
        study,
        kind=adapter.kind,
        path=path,
        params={**recipe.params, **({"on_device": fitted.on_device} if fitted.on_device else {})},
        train_ids=[im["id"] for im, _ in train_items],
        val_ids=[im["id"] for im, _ in val_items],
        losses=fitted.losses,
        parent=parent,
        status=status,
        decision=decision,
        val=val,
        digest=digest,
        device=fitted.device,
        seconds=seconds,
        arm=arm,
    )
    return TrainReport(
        model_id,
        status,
        decision,
        False,
        len(train_items),
        len(val_items),
        recipe.steps,
        seconds,
        val,
    )


def _read(study: Study, items, kind: str, progress: Progress) -> tuple[list, list]:
    """The training images and their targets (label images or classes), in memory."""
    images, targets = [], []
    for i, (image, label) in enumerate(items):
        images.append(read_image(image_path(image)))
        targets.append(target(study, image, label, kind))
        progress("reading labels", i + 1, len(items))
    return images, targets


def _pairs(study: Study, items, kind: str, progress: Progress) -> Iterator[tuple]:
    """(image, target) of each validation image, read one at a time."""
    for i, (image, label) in enumerate(items):
        yield read_image(image_path(image)), target(study, image, label, kind, partial=False)
        progress("validating", i + 1, len(items))
