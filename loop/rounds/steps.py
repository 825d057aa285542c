"""The seven steps of a round, as a table (:data:`RUNNERS`): train -> evaluate -> select ->
push -> annotate -> pull -> agree. Each step is a function of the round's shared state
(:class:`RoundState`) that returns the values it writes into the round's row; the runner
(:func:`loop.rounds.round.run_round`) records them with the step's time, in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from loop import learn
from loop.annotate.adjudicate import record as record_adjudications
from loop.annotate.consensus import agree
from loop.annotate.pull import pull
from loop.annotate.push import push
from loop.annotate.regions import agree_regions, push_regions
from loop.core.classmaps import with_unsure
from loop.core.images import read_image
from loop.errors import RoundError
from loop.learn.engine import engine_for
from loop.models.family import family
from loop.rounds.arms import _admit_labeled, arm_images, candidates
from loop.store import rounds as store_rounds
from loop.store import utcnow
from loop.study import Study
from loop.tasks import task_of
from loop.types import AnnotationTool, Boxes, Prediction

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]
# simulated annotators: annotate every open task, return {annotator: tasks annotated}
Annotate = Callable[[], dict]


@dataclass(frozen=True)
class RoundOptions:
    """What a round does beyond the study's configuration.

    Parameters
    ----------
    arm : str
        ``main`` or a control arm; a control arm named after a strategy (``random``) uses it.
    strategy : str, optional
        Overrides the arm's strategy.
    k : int, optional
        Batch size (default: ``score.k``).
    seed : int
        Seed of training, random selection and the pool sample.
    steps : int, optional
        Training step budget (default: from the config).
    gpu : bool, optional
        Use CUDA (default: when present).
    """

    arm: str = "main"
    strategy: str | None = None
    k: int | None = None
    seed: int = 0
    steps: int | None = None
    gpu: bool | None = None


def _previous_model(study: Study, arm: str, round: int) -> int | None:
    for row in reversed(study.store.rounds(arm)):
        if row["round"] < round and row["model_id"]:
            return row["model_id"]
    return None


def _predictor(study: Study, model_id: int, gpu) -> Callable[[dict], Prediction]:
    """The model's pre-annotation of an image: masks scored 1 - flow error (clipped to 0..1),
    the objects whose own flow error exceeds ``labels.unsure_flow_error`` marked unsure; a
    class map (each class painted, scored by its mean pixel probability); or a class with its
    probability."""
    row = learn.model_row(study, model_id)
    model, adapter = learn.load_model(study, row, gpu), family(row["kind"])
    config = adapter.settings(study.config)
    version = f"loop-model-{row['id']}"
    threshold = study.config.labels.unsure_flow_error

    def predict(image: dict) -> Prediction:
        (output,) = adapter.predict(model, [read_image(learn.image_path(image))], config=config)
        if output.classmap is not None:  # semantic: one painted region per class
            labels = study.config.labels
            mask, names = with_unsure(
                output.classmap, output.probability, labels.classes, labels.unsure_probability
            )
            return Prediction(
                mask=mask,
                score=float(np.mean(output.probability)),
                model_version=version,
                labels=names,
            )
        if output.boxes is not None:  # detection: the boxes from the threshold on
            boxes = predicted_boxes(output, study.config, image)
            return Prediction(
                boxes=boxes,
                score=float(np.mean(boxes.scores)) if len(boxes.scores) else None,
                model_version=version,
            )
        if output.masks is not None:
            return Prediction(
                mask=output.masks,
                score=float(np.clip(1.0 - output.measures["flow_error"], 0.0, 1.0)),
                model_version=version,
                unsure=unsure_objects(output.masks, output.object_errors, threshold),
            )
        return Prediction(klass=output.klass, score=output.confidence, model_version=version)

    return predict


def predicted_boxes(output, config, image: dict) -> Boxes:
    """A detector's boxes scoring its threshold or more, named by class; those
    scoring below ``labels.unsure_probability`` named ``<class>?`` (checked first)."""
    from loop.tasks import box_classes

    classes = box_classes(config)
    keep = output.box_scores >= output.box_threshold
    scores = output.box_scores[keep]
    doubt = scores < config.labels.unsure_probability
    names = tuple(
        f"{classes[int(k)]}?" if d else classes[int(k)]
        for k, d in zip(output.box_classes[keep], doubt, strict=True)
    )
    shape = (image["height"], image["width"])
    points = config.detection.shape == "point"
    return Boxes(output.boxes[keep], names, shape, scores, points=points)


def unsure_objects(masks: np.ndarray, errors, threshold: float) -> tuple[int, ...]:
    """The labels of ``masks`` whose error (one per object, labels ascending) exceeds
    ``threshold`` (0: none).

    >>> unsure_objects(np.array([[0, 1, 2, 5]]), np.array([0.1, 0.3, 0.25]), 0.2)
    (2, 5)
    """
    if not threshold or errors is None:
        return ()
    labels = np.unique(masks)
    labels = labels[labels != 0]
    if len(labels) != len(errors):
        return ()
    return tuple(int(v) for v in labels[np.asarray(errors) > threshold])


def _batch_complete(study: Study, batch: list[int], overlap: int, regions=None) -> tuple[int, int]:
    """(images with all their annotations, images) for a batch (of ``regions``, one task
    each, when given): an annotation that was skipped or could not be read counts as the
    annotator's turn."""
    tasks = {i: 1 for i in batch}
    for row in regions or []:
        tasks[row[0]] = sum(1 for other in regions if other[0] == row[0])
    done = 0
    for image_id in batch:
        done += (
            store_rounds.annotations_of_image(study.store, image_id) >= overlap * tasks[image_id]
        )
    return done, len(batch)


def _hours(study: Study, batch: list[int]) -> float | None:
    if not batch:
        return None
    total = store_rounds.lead_seconds(study.store, batch)
    return None if total is None else total / 3600.0


@dataclass
class RoundState:
    """What the steps of one round share: the study, the tool, the options, and the round's
    row (re-read after each step)."""

    study: Study
    tool: AnnotationTool | None
    options: RoundOptions
    annotate: Annotate | None
    wait: bool
    sleep: Callable[[float], None]
    progress: Progress
    log: Log
    strategy: str
    number: int
    row: dict

    @property
    def arm(self) -> str:
        return self.options.arm

    @property
    def batch(self) -> list[int]:
        """The images the select step chose."""
        return json.loads(self.row["batch"] or "[]")

    @property
    def regions(self) -> list[list[int]] | None:
        """The regions the select step chose (``image_id, row, col, height, width``), for a
        region strategy."""
        return json.loads(self.row.get("regions") or "null")


WAITING = object()
"""What the annotate step returns when people are not done and the round should not wait."""


def _train(r: RoundState) -> dict:
    labeled = arm_images(r.study, r.arm, before=r.number)
    whole = store_rounds.whole_task_images(r.study.store, r.arm)  # the arm paid for those
    regions = {
        i: boxes
        for i, boxes in store_rounds.arm_regions(r.study.store, r.arm, before=r.number).items()
        if i not in whole
    }
    previous = _previous_model(r.study, r.arm, r.number)
    report = learn.train(
        r.study,
        seed=r.options.seed,
        steps=r.options.steps,
        image_ids=labeled,
        regions=regions,
        parent_id=previous,
        fresh=previous is None,
        arm=r.arm,
        gpu=r.options.gpu,
        progress=r.progress,
    )
    in_use = report.model_id
    if report.status == "rejected":
        in_use = previous or report.model_id
        r.log(f"  model {report.model_id} rejected ({report.decision}); using {in_use}")
    items = learn.training_labels(r.study, labeled, regions)
    return {
        "model_id": in_use,
        "n_labeled": len(items),
        "n_objects": sum(label.get("n_objects") or 0 for _, label in items),
        "notes": report.decision,
    }


def _evaluate(r: RoundState) -> dict:
    metrics = learn.evaluate(
        r.study, model_id=r.row["model_id"], gpu=r.options.gpu, progress=r.progress
    )
    for lag in metrics.get("lagging_groups") or []:
        r.log(f"warning: {r.arm} round {r.number}: {lag['message']}")
    return {"metrics": {k: v for k, v in metrics.items() if k not in ("model_id", "split")}}


def _select(r: RoundState) -> dict:
    pool = candidates(r.study, r.arm)
    if not pool:
        raise RoundError(f"arm {r.arm}: the pool is used up; nothing left to annotate")
    chosen = learn.score(
        r.study,
        strategy=r.strategy,
        k=r.options.k,
        model_id=r.row["model_id"],
        seed=r.options.seed * 1000 + r.number,
        image_ids=pool,
        labeled_ids=arm_images(r.study, r.arm),
        gpu=r.options.gpu,
        engine=engine_for(r.study.config.cluster),
        progress=r.progress,
    ).chosen
    batch = list(dict.fromkeys(c["image_id"] for c in chosen))
    regions = [[c["image_id"], *c["region"]] for c in chosen if "region" in c]
    return {"batch": batch, "n_batch": len(chosen), "regions": regions or None}


def _push(r: RoundState) -> dict:
    study = r.study
    if r.regions:
        push_regions(
            study,
            r.tool,
            [(row[0], row[1:]) for row in r.regions],
            overlap=study.config.rounds.overlap,
            context=study.config.regions.context,
            arm=r.arm,
            round=r.number,
            predictions=_predictor(study, r.row["model_id"], r.options.gpu),
            progress=lambda d, t: r.progress("push", d, t),
        )
        return {}
    push(
        study,
        r.tool,
        [study.store.image(i) for i in r.batch],
        overlap=study.config.rounds.overlap,
        arm=r.arm,
        round=r.number,
        predictions=_predictor(study, r.row["model_id"], r.options.gpu),
        tiling=study.config.rounds.tiling() if task_of(study.config.task).regions else None,
        progress=lambda d, t: r.progress("push", d, t),
    )
    return {}


def _annotate(r: RoundState):
    """Simulated annotators annotate; else the experts' work is pulled until the batch is
    done (``wait``) or once (then :data:`WAITING` when they are not done)."""
    if r.annotate is not None:
        counts = r.annotate()
        r.log("  " + ", ".join(f"{name}: {n} tasks" for name, n in counts.items()))
        return {}
    overlap = r.study.config.rounds.overlap
    told: set[str] = set()
    while True:
        for gap in set(pull(r.study, r.tool).tile_gaps) - told:
            r.log(f"  tiled image not complete: {gap}")
            told.add(gap)
        complete, total = _batch_complete(r.study, r.batch, overlap, r.regions)
        r.progress("waiting for annotators", complete, total)
        if complete >= total:
            return {}
        if not r.wait:
            r.log(
                f"  {complete}/{total} tasks annotated: run `loop round` again "
                "when the experts are done (or `loop run`, which waits)"
            )
            return WAITING
        r.sleep(r.study.config.rounds.poll_seconds)


def _pull(r: RoundState) -> dict:
    pull(r.study, r.tool, progress=lambda d, t: r.progress("pull", d, t))
    record_adjudications(r.study)  # reviewers' decisions on earlier batches
    return {"annotator_hours": _hours(r.study, r.batch)}


def _agree(r: RoundState) -> dict:
    config = r.study.config.rounds
    report = agree(
        r.study,
        image_ids=r.batch,
        method=config.fusion,
        min_agreement=config.min_agreement,
        min_annotations=config.min_annotations,
        against_truth=True,
        progress=lambda d, t: r.progress("agreement", d, t),
    )
    regions = None
    if r.regions:
        merged = agree_regions(
            r.study,
            method=config.fusion,
            min_agreement=config.min_agreement,
            min_annotations=config.min_annotations,
        )
        values = [v for v in merged.agreement.values() if v is not None]
        regions = {
            "mean_agreement": float(np.mean(values)) if values else None,
            "merged": len(merged.fused),
            "low": merged.low,
            "waiting": merged.waiting,
            "empty": merged.empty,
            "outside": merged.outside,
            "stale": merged.stale,
        }
        for line in merged.notes():
            r.log(f"  {r.arm} round {r.number}: {line}")
    joined = _admit_labeled(r.study, r.arm, r.number)
    return {
        "agreement": {
            **report.overall,
            "regions": regions,
            "annotators": report.annotators,
            "against_truth": report.against_truth,
            "joined": joined,
        },
        "status": "done",
        "finished_at": utcnow(),
    }


RUNNERS: dict[str, Callable[[RoundState], dict]] = {
    "train": _train,
    "evaluate": _evaluate,
    "select": _select,
    "push": _push,
    "annotate": _annotate,
    "pull": _pull,
    "agree": _agree,
}
"""The steps of a round, in order: each returns the values it writes into the round's row."""
STEPS = tuple(RUNNERS)
"""The step names, in order (the keys of a round's ``timings``)."""
