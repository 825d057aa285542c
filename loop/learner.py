"""The study's model: train on the current labels, evaluate on the test split, score the
pool, predict a folder. The glue between the store and :mod:`loop.models`.

Which label trains an image: ``adjudicated`` over ``consensus`` over ``truth``; only images
in the ``labeled`` split train (ground truth of pool images is never read here, and test
images never train or validate). A fixed part of the labeled images (chosen by a hash of
their content, so an image stays on the same side across rounds) validates each new model
against the previous one: a model that validates worse is recorded as ``rejected`` and the
previous one stays in use.

Every step is idempotent: training with the same labels, configuration and seed returns the
recorded model; evaluation and scores are cached per model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from loop import strategies
from loop.errors import ModelError, NoModel
from loop.images import file_sha256, read_image, read_mask, write_labels
from loop.metrics import classification_scores, segmentation_scores, summarize_segmentation
from loop.store import dumps, meta_column, utcnow
from loop.study import Study

Progress = Callable[[str, int, int], None]
LABEL_PRIORITY = ("adjudicated", "consensus", "truth")
MODELS_DIR = "models"


def _noop(stage: str, done: int, total: int) -> None:
    return None


# --- labels ----------------------------------------------------------------------------------


def training_labels(study: Study, image_ids=None) -> list[tuple[dict, dict]]:
    """(image, label) of every ``labeled`` image (of those in ``image_ids`` when given), best
    label first by :data:`LABEL_PRIORITY`.

    Labeled images without any usable label are left out.
    """
    db = study.store.db
    rank = {source: i for i, source in enumerate(LABEL_PRIORITY)}
    wanted = None if image_ids is None else set(image_ids)
    out = []
    for image in study.store.images("split = 'labeled'"):
        if wanted is not None and image["id"] not in wanted:
            continue
        labels = [
            row
            for row in db["labels"].rows_where("image_id = ?", [image["id"]])
            if row["source"] in rank
        ]
        if labels:
            out.append((image, min(labels, key=lambda r: rank[r["source"]])))
    return out


def is_validation(sha256: str, fraction: float) -> bool:
    """Whether an image with content hash ``sha256`` validates (stable across rounds).

    >>> is_validation("ab" * 32, 0.0), is_validation("ab" * 32, 1.0)
    (False, True)
    """
    return _validation_key(sha256) < fraction


def _validation_key(sha256: str) -> float:
    digest = hashlib.sha256(("validation:" + sha256).encode()).hexdigest()
    return int(digest[:8], 16) / 0x100000000


def validation_split(items: list, fraction: float) -> tuple[list, list]:
    """(train, validation) items; no validation under 10 labeled images, at least 2 above."""
    if fraction <= 0 or len(items) < 10:
        return list(items), []
    val = [it for it in items if is_validation(it[0]["sha256"], fraction)]
    if len(val) < 2:
        val = sorted(items, key=lambda it: _validation_key(it[0]["sha256"]))[:2]
    val_ids = {it[0]["id"] for it in val}
    return [it for it in items if it[0]["id"] not in val_ids], val


def _label_digest(items: list[tuple[dict, dict]], recipe: dict) -> str:
    """Digest of the training labels and the recipe (config, seed, options) that trains on
    them: equal digests give equal models."""
    h = hashlib.sha256(dumps(recipe).encode())
    for image, label in sorted(items, key=lambda it: it[0]["id"]):
        h.update(
            f"{image['id']}:{image['sha256']}:{label['source']}:{label.get('mask_sha256')}:"
            f"{label.get('class')}:{label.get('version')}\n".encode()
        )
    return h.hexdigest()


def _mask_of(study: Study, image: dict, label: dict) -> np.ndarray:
    return read_mask(study.resolve(label["mask_path"]), (image["height"], image["width"]))


def image_path(image: dict) -> Path:
    return Path(image["root"]) / image["path"]


# --- models in the store --------------------------------------------------------------------


def current_model(study: Study, arm: str = "main") -> dict | None:
    """The latest accepted model of the study's task trained for ``arm``, or None."""
    rows = list(
        study.store.db["models"].rows_where(
            "task = ? AND status = 'accepted' AND coalesce(arm, 'main') = ?",
            [study.config.task, arm],
            order_by="id desc",
            limit=1,
        )
    )
    return rows[0] if rows else None


def model_row(study: Study, model_id: int | None = None) -> dict:
    """A model row by id, or the current model.

    Raises
    ------
    NoModel
        When the study has no (such) model.
    """
    if model_id is None:
        row = current_model(study)
        if row is None:
            raise NoModel("the study has no trained model yet: run `loop train` first")
        return row
    rows = list(study.store.db["models"].rows_where("id = ?", [model_id]))
    if not rows:
        raise NoModel(f"no model with id {model_id}; `loop status --json` lists the models")
    return rows[0]


def software_versions() -> dict:
    """Versions of loop and of the packages its models depend on (recorded with each model
    and each measurement run)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for package in (
        "loop-al",
        "torch",
        "cellpose",
        "scikit-learn",
        "scikit-image",
        "modAL-python",
        "numpy",
    ):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


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
    for row in study.store.db["models"].rows_where(
        "kind = ? AND label_sha256 = ? AND (coalesce(parent_id, 0) = ? OR id = ?)",
        [kind, digest, parent_id or 0, itself],
        order_by="id desc",
        limit=1,
    ):
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


def _record(
    study: Study,
    *,
    kind: str,
    path: Path,
    params: dict,
    train_ids,
    val_ids,
    losses,
    parent: dict | None,
    status: str,
    decision: str,
    val: dict,
    digest: str,
    device: str,
    seconds: float,
    arm: str,
) -> int:
    row = {
        "kind": kind,
        "task": study.config.task,
        "path": str(path.relative_to(study.path)),
        "sha256": file_sha256(path),
        "params": dumps(params),
        "versions": dumps(software_versions()),
        "train_image_ids": dumps(sorted(train_ids)),
        "val_image_ids": dumps(sorted(val_ids)),
        "losses": dumps(losses),
        "parent_id": parent["id"] if parent else None,
        "status": status,
        "decision": decision,
        "val_metrics": dumps(val),
        "label_sha256": digest,
        "arm": arm,
        "device": device,
        "seconds": seconds,
        "created_at": utcnow(),
    }
    with study.store.atomic() as db:
        return db["models"].insert(row).last_pk


def _decide(new: float | None, old: float | None, tolerance: float) -> tuple[str, str]:
    if old is None or new is None:
        return "accepted", "no previous model or no validation images: accepted"
    if new + tolerance < old:
        return "rejected", (
            f"validation {new:.3f} < previous {old:.3f} - {tolerance}: "
            "rejected, the previous model stays in use"
        )
    return "accepted", f"validation {new:.3f} vs previous {old:.3f}: accepted"


def _next_path(study: Study, stem: str, suffix: str) -> Path:
    folder = study.path / MODELS_DIR
    folder.mkdir(exist_ok=True)
    n = study.store.db["models"].count + 1
    while (folder / f"{stem}-{n:04d}{suffix}").exists():
        n += 1
    return folder / f"{stem}-{n:04d}{suffix}"


def _train_segmentation(
    study, items, *, seed, steps, parent, extend, arm, gpu, progress
) -> TrainReport:
    from loop.models import cellpose_seg as cs

    config, augment = study.config.model, study.config.augment
    seed = config.seed if seed is None else seed
    train_items, val_items = validation_split(items, config.val_fraction)
    warm = bool(parent and (config.warm_start or extend))
    budget = steps or cs.n_steps(len(train_items), config, warm=warm)
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
    data = cs.prepare(images, masks, crop=config.crop, device=device)
    del images, masks
    if warm:
        net = cs.load(study.resolve(parent["path"]), device)
    elif config.pretrained:
        net = cs.load(cs.pretrained_path(config.pretrained), device)  # widths: JSON or stock
    else:
        net = cs.build_net(config.nbase, device, seed=seed)
    result = cs.train(
        net,
        data,
        config=config,
        augment=augment,
        steps=budget,
        rng=np.random.default_rng(seed),
        progress=lambda s: progress("training", s, budget),
    )
    del data

    val = {}
    if val_items:
        val["new"] = _validate_segmentation(study, net, val_items, config, progress)
        if parent is not None:
            old_net = cs.load(study.resolve(parent["path"]), device)
            val["previous"] = _validate_segmentation(study, old_net, val_items, config, progress)
    status, decision = _decide(val.get("new"), val.get("previous"), config.keep_tolerance)
    path = cs.save(net, _next_path(study, "cellpose", ".pt"), nbase=net.nbase)
    from loop.plots import loss_curve

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


def _validate_segmentation(study, net, val_items, config, progress) -> float:
    from loop.models import cellpose_seg as cs

    scores = []
    for i, (image, label) in enumerate(val_items):
        seg = cs.segment(net, read_image(image_path(image)), config=config)
        scores.append(segmentation_scores(_mask_of(study, image, label), seg.masks)["ap50"])
        progress("validating", i + 1, len(val_items))
    return float(np.mean(scores))


def _class_features(images: list[dict], size: int, progress: Progress, stage: str) -> np.ndarray:
    from loop.models.classifier import features

    rows = []
    for i, image in enumerate(images):
        rows.append(features(read_image(image_path(image)), size=size))
        progress(stage, i + 1, len(images))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def _train_classifier(study, items, *, seed, parent, arm, progress) -> TrainReport:
    from loop.annotation import classes_of
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
        val["new"] = classification_scores(yv, model.predict(xv))["macro_f1"]
        if parent is not None:
            old = cl.load(study.resolve(parent["path"]), parent["sha256"])
            val["previous"] = classification_scores(yv, old.predict(xv))["macro_f1"]
    status, decision = _decide(val.get("new"), val.get("previous"), config.keep_tolerance)
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


def load_model(study: Study, row: dict, gpu: bool | None = None):
    """The model object of a models row (a Cellpose network or a :class:`Classifier`)."""
    if row["kind"] == "cellpose":
        from loop.models import cellpose_seg as cs

        path = study.resolve(row["path"])
        if not path.is_file():
            raise ModelError(f"the model file {path} is missing: run `loop train` again")
        return cs.load(path, cs.device_of(gpu))
    from loop.models import classifier as cl

    return cl.load(study.resolve(row["path"]), row["sha256"])


# --- evaluation -----------------------------------------------------------------------------


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
        ``macro_f1``, ``kappa``, ``per_class``, ``n_images``, ``per_group``. Plus
        ``model_id`` and ``split``.

    Raises
    ------
    NoModel
        Without a trained model.
    ModelError
        When the split has no images with ground truth.
    """
    row = model_row(study, model_id)
    db = study.store.db
    cached = list(db["evaluations"].rows_where("model_id = ? AND split = ?", [row["id"], split]))
    if cached:
        return {**json.loads(cached[0]["metrics"]), "model_id": row["id"], "split": split}
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
    per_image, groups = [], []
    if row["kind"] == "cellpose":
        from loop.models import cellpose_seg as cs

        for i, image in enumerate(images):
            seg = cs.segment(model, read_image(image_path(image)), config=study.config.model)
            truth = _mask_of(study, image, truths[image["id"]])
            per_image.append({"image_id": image["id"], **segmentation_scores(truth, seg.masks)})
            groups.append(_groups(study, image))
            progress("evaluating", i + 1, len(images))
        metrics = summarize_segmentation(per_image)
        for level in range(len(study.config.groups)):
            by = summarize_segmentation(per_image, [g[level] for g in groups])["per_group"]
            metrics["per_group"].update(by)
    else:
        x = _class_features(images, model.size, progress, "evaluating")
        truth = [truths[im["id"]]["class"] for im in images]
        pred = model.predict(x)
        per_image = [
            {"image_id": im["id"], "truth": t, "pred": p} for im, t, p in zip(images, truth, pred)
        ]
        metrics = classification_scores(truth, pred)
        for level in range(len(study.config.groups)):
            g = [_groups(study, im)[level] for im in images]
            metrics["per_group"].update(classification_scores(truth, pred, g)["per_group"])
    with study.store.atomic():
        db["evaluations"].insert(
            {
                "model_id": row["id"],
                "split": split,
                "metrics": dumps(metrics),
                "per_image": dumps(per_image),
                "seconds": time.perf_counter() - started,
                "created_at": utcnow(),
            },
            replace=True,
        )
    return {**metrics, "model_id": row["id"], "split": split}


# --- scoring --------------------------------------------------------------------------------


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
        extra = _measure_tta(study, row, [images[i] for i in shortlist], progress=progress)
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
    chunk = study.config.score.chunk
    n = 0
    for part in _chunks(todo, chunk):
        rows = []
        if row["kind"] == "cellpose":
            from loop.models import cellpose_seg as cs

            for image in part:
                seg = cs.segment(model, read_image(image_path(image)), config=study.config.model)
                rows.append((image["id"], seg.measures, seg.style))
                n += 1
                progress("scoring", n, len(todo))
        else:
            x = _class_features(part, model.size, _noop, "")
            proba = model.proba(x)
            committee = (
                strategies.committee_disagreement(model.member_proba(x))
                if model.committee
                else np.zeros(len(part))
            )
            scaled = _class_embedding(model, x)
            for i, image in enumerate(part):
                m = {
                    name: float(f(proba[i : i + 1])[0])
                    for name, f in strategies.CLASS_MEASURES.items()
                }
                m["committee"] = float(committee[i])
                rows.append((image["id"], m, scaled[i]))
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


def _class_embedding(model, x: np.ndarray) -> np.ndarray:
    estimator = model.learner.estimator
    if hasattr(estimator, "named_steps") and "standardscaler" in estimator.named_steps:
        return estimator.named_steps["standardscaler"].transform(x)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def _measure_tta(study: Study, row: dict, images: list[dict], *, progress) -> int:
    from loop.models import cellpose_seg as cs

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
    net = load_model(study, row)
    for i, (image, stored) in enumerate(todo):
        seg = cs.segment(net, read_image(image_path(image)), config=study.config.model, tta=True)
        with study.store.atomic():
            db["scores"].update(stored["id"], {"measures": dumps(seg.measures)})
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


# --- prediction -----------------------------------------------------------------------------


def predict_folder(
    study: Study,
    folder: str | Path,
    out: str | Path,
    *,
    model_id: int | None = None,
    gpu: bool | None = None,
    progress: Progress = _noop,
) -> list[dict]:
    """Label TIFFs (segmentation) or classes for every image file in ``folder``.

    Writes ``out/<stem>.tif`` per image (segmentation) and ``out/predictions.csv`` with the
    model id and sha256 on every row. Unreadable files are reported, not fatal.

    Returns
    -------
    list of dict
        One row per file: ``file``, ``model_id``, ``model_sha256``, ``n_objects`` or
        ``class`` and ``confidence``, or ``error``.
    """
    import csv

    from loop.errors import ImageError

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder of images")
    row = model_row(study, model_id)
    model = load_model(study, row, gpu)
    if row["kind"] == "cellpose":
        from loop.models import cellpose_seg as cs
    else:
        from loop.models import classifier as cl
    extensions = {e.lower() for e in study.config.ingest.extensions}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(files):
        record = {
            "file": str(path.relative_to(folder)),
            "model_id": row["id"],
            "model_sha256": row["sha256"],
        }
        try:
            pixels = read_image(path)
        except ImageError as exc:
            record["error"] = str(exc)
        else:
            if row["kind"] == "cellpose":
                seg = cs.segment(model, pixels, config=study.config.model)
                target = out / path.relative_to(folder).with_suffix(".tif")
                target.parent.mkdir(parents=True, exist_ok=True)
                write_labels(target, seg.masks)
                record["n_objects"] = int(seg.measures["n_objects"])
                record["labels"] = str(target.relative_to(out))
            else:
                proba = model.proba(cl.features(pixels, size=model.size)[None])[0]
                record["class"] = model.classes[int(proba.argmax())]
                record["confidence"] = float(proba.max())
        rows.append(record)
        progress("predicting", i + 1, len(files))
    columns = [
        "file",
        "model_id",
        "model_sha256",
        "n_objects",
        "labels",
        "class",
        "confidence",
        "error",
    ]
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows
