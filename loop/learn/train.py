"""Train the study's model on its current labels and record it.

A model that validates worse than the previous one (on the validation images of
:mod:`loop.learn.labels`) is recorded as ``rejected`` and the previous one stays in use.
Training with the same labels, configuration and seed returns the recorded model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from loop.core.images import read_image
from loop.core.metrics import classification_scores, segmentation_scores
from loop.errors import ModelError
from loop.learn.labels import (
    Progress,
    _label_digest,
    _mask_of,
    _noop,
    image_path,
    training_labels,
    validation_split,
)
from loop.learn.registry import _next_path, _record, current_model, model_row
from loop.models.family import family
from loop.store import models
from loop.store.lock import locked
from loop.study import Study


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
    parent_id : int, optional
        The previous model (warm start and validation gate); default: the arm's current one.
    extend : bool
        Train the parent further even when it was trained on the same labels (otherwise the
        parent is returned as it is: training again on the same labels would only repeat it).
    arm : str
        The arm of the loop the model is trained for (recorded).

    Raises
    ------
    ModelError
        When there are no labeled images with labels.
    """
    items = training_labels(study, image_ids)
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
    if study.config.task == "classification":
        return _train_classifier(study, items, seed=seed, parent=parent, arm=arm, progress=progress)
    return _train_segmentation(
        study,
        items,
        seed=seed,
        steps=steps,
        parent=parent,
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


def _train_segmentation(
    study, items, *, seed, steps, parent, extend, arm, gpu, progress
) -> TrainReport:
    from loop.models import cellpose_seg as cs
    from loop.models import cellpose_train as ct

    config, augment = study.config.model, study.config.augment
    seed = config.seed if seed is None else seed
    train_items, val_items = validation_split(items, config.val_fraction)
    warm = bool(parent and (config.warm_start or extend))
    budget = steps or ct.n_steps(len(train_items), config, warm=warm)
    params = {
        "config": asdict(config),
        "augment": asdict(augment),
        "seed": seed,
        "steps": budget,
        "parent": parent["id"] if warm else None,
    }
    digest = _label_digest(
        items,
        {
            "config": asdict(config),
            "augment": asdict(augment),
            "seed": seed,
            "steps": steps,
        },
    )
    reused = _reuse(study, "cellpose", digest, params, parent, extend=extend)
    if reused:
        return reused

    device = cs.device_of(gpu)
    started = time.perf_counter()
    images, masks = [], []
    for i, (image, label) in enumerate(train_items):
        images.append(read_image(image_path(image)))
        masks.append(_mask_of(study, image, label))
        progress("reading labels", i + 1, len(train_items))
    data = ct.prepare(images, masks, crop=config.crop, device=device, invert=config.invert)
    del images, masks
    if warm:
        net = cs.load(study.resolve(parent["path"]), device)
    elif config.pretrained:
        net = cs.load(cs.pretrained_path(config.pretrained), device)  # widths: JSON or stock
    else:
        net = cs.build_net(config.nbase, device, seed=seed)
    net.invert = config.invert  # trained (and saved) with the study's polarity
    result = ct.train(
        net,
        data,
        config=config,
        augment=augment,
        steps=budget,
        rng=np.random.default_rng(seed),
        progress=lambda s: progress("training", s, budget),
    )
    del data

    val, differences = {}, []
    if val_items:
        new_scores = _validate_segmentation(study, net, val_items, config, progress)
        val["new"] = float(np.mean(new_scores))
        if parent is not None:
            old_net = cs.load(study.resolve(parent["path"]), device)
            old_scores = _validate_segmentation(study, old_net, val_items, config, progress)
            val["previous"] = float(np.mean(old_scores))
            differences = [a - b for a, b in zip(new_scores, old_scores)]
    status, decision = _decide(
        val.get("new"), val.get("previous"), config.keep_tolerance, differences
    )
    path = cs.save(net, _next_path(study, "cellpose", ".pt"), nbase=net.nbase)
    from loop.reports.plots import loss_curve

    loss_curve(
        result.losses,
        path.with_name(path.stem + "-loss.png"),
        title=f"{path.stem}: {len(train_items)} images, {budget} steps",
    )
    seconds = time.perf_counter() - started
    model_id = _record(
        study,
        kind="cellpose",
        path=path,
        params=params,
        train_ids=[im["id"] for im, _ in train_items],
        val_ids=[im["id"] for im, _ in val_items],
        losses=result.losses,
        parent=parent,
        status=status,
        decision=decision,
        val=val,
        digest=digest,
        device=str(device),
        seconds=seconds,
        arm=arm,
    )
    return TrainReport(
        model_id, status, decision, False, len(train_items), len(val_items), budget, seconds, val
    )


def _validate_segmentation(study, net, val_items, config, progress) -> list[float]:
    """AP@0.5 of ``net`` on each validation image."""
    scores = []
    for i, (image, label) in enumerate(val_items):
        (seg,) = family("cellpose").predict(net, [read_image(image_path(image))], config=config)
        scores.append(segmentation_scores(_mask_of(study, image, label), seg.masks)["ap50"])
        progress("validating", i + 1, len(val_items))
    return scores


def _class_features(images: list[dict], size: int, progress: Progress, stage: str) -> np.ndarray:
    from loop.models.classifier import features

    rows = []
    for i, image in enumerate(images):
        rows.append(features(read_image(image_path(image)), size=size))
        progress(stage, i + 1, len(images))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def _train_classifier(study, items, *, seed, parent, arm, progress) -> TrainReport:
    from loop.annotate.push import classes_of
    from loop.models import classifier as cl

    config, augment = study.config.classifier, study.config.augment
    seed = config.seed if seed is None else seed
    train_items, val_items = validation_split(items, config.val_fraction)
    params = {"config": asdict(config), "augment": asdict(augment), "seed": seed}
    digest = _label_digest(items, params)
    reused = _reuse(study, "classifier", digest, params, parent)
    if reused:
        return reused
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    x = _class_features([im for im, _ in train_items], config.image_size, progress, "features")
    y = [label["class"] for _, label in train_items]
    if config.augment_copies:
        extra_x, extra_y = [], []
        for image, label in train_items:
            pixels = read_image(image_path(image))
            for _ in range(config.augment_copies):
                extra_x.append(
                    cl.features(cl.augmented(pixels, rng, augment), size=config.image_size)
                )
                extra_y.append(label["class"])
        x, y = np.concatenate([x, np.stack(extra_x)]), y + extra_y
    model = cl.train(x, y, config=config, rng=rng, classes=classes_of(study))
    val = {}
    if val_items:
        xv = _class_features([im for im, _ in val_items], config.image_size, progress, "validating")
        yv = [label["class"] for _, label in val_items]
        predicted = model.predict(xv)
        val["new"] = classification_scores(yv, predicted)["macro_f1"]
        differences = []
        if parent is not None:
            old = cl.load(study.resolve(parent["path"]), parent["sha256"])
            before = old.predict(xv)
            val["previous"] = classification_scores(yv, before)["macro_f1"]
            # per image: right (1) or wrong (0), new minus previous
            differences = [float(a == t) - float(b == t) for a, b, t in zip(predicted, before, yv)]
    else:
        differences = []
    status, decision = _decide(
        val.get("new"), val.get("previous"), config.keep_tolerance, differences
    )
    path = cl.save(model, _next_path(study, "classifier", ".pkl"))
    seconds = time.perf_counter() - started
    model_id = _record(
        study,
        kind="classifier",
        path=path,
        params=params,
        train_ids=[im["id"] for im, _ in train_items],
        val_ids=[im["id"] for im, _ in val_items],
        losses=[],
        parent=parent,
        status=status,
        decision=decision,
        val=val,
        digest=digest,
        device="cpu",
        seconds=seconds,
        arm=arm,
    )
    return TrainReport(
        model_id, status, decision, False, len(train_items), len(val_items), 0, seconds, val
    )
