"""Rounds of the loop: train -> evaluate -> select -> push -> annotate -> pull -> agree.

A round is one row of the ``rounds`` table per (arm, round). Each step, once done, writes its
results (model, held-out metrics, batch, agreement, ...) and its time into that row in one
transaction; the keys of ``timings`` are the steps done. Every step is idempotent (training
with the same labels returns the recorded model, evaluations and scores are cached, a push
never makes a second task for an image, pulls and consensus only write what changed), so a
run killed at any point and started again continues where it stopped, with the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from loop import learn
from loop.annotate.adjudicate import record as record_adjudications
from loop.annotate.consensus import agree
from loop.annotate.pull import pull
from loop.annotate.push import push
from loop.core import strategies
from loop.core.images import read_image
from loop.errors import RoundError, UnknownStrategy
from loop.faults import crash_points
from loop.models.family import family
from loop.rounds.arms import _admit_labeled, _start_arm, arm_images, candidates
from loop.store import dumps, utcnow
from loop.store import rounds as store_rounds
from loop.store.lock import locked
from loop.study import Study
from loop.types import AnnotationTool, Prediction

STEPS = ("train", "evaluate", "select", "push", "annotate", "pull", "agree")


Progress = Callable[[str, int, int], None]


Log = Callable[[str], None]


# simulated annotators: annotate every open task, return {annotator: tasks annotated}
Annotate = Callable[[], dict]


def _quiet(*_args) -> None:
    return None


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


@dataclass
class RoundResult:
    arm: str
    round: int
    status: str  # waiting | evaluated | done
    model_id: int | None
    n_labeled: int
    metrics: dict
    batch: list[int]
    agreement: dict
    annotator_hours: float | None
    timings: dict = field(default_factory=dict)


def arm_strategy(study: Study, options: RoundOptions) -> str:
    """The strategy name of an arm: ``--strategy``, else the study's for ``main``, else the
    arm's own name (``random``, ``entropy``, ...).

    Raises
    ------
    UnknownStrategy
        For a control arm whose name is not a strategy and no ``strategy`` given.
    """
    task = study.config.task
    if options.strategy:
        name = options.strategy
    elif options.arm == "main":
        name = study.config.score.strategy or strategies.DEFAULTS[task]
    elif options.arm in strategies.available(task):
        name = options.arm
    else:
        raise UnknownStrategy(
            f"arm {options.arm!r} names no strategy: call a control arm after its strategy "
            "(--arm random) or give --strategy"
        )
    strategies.check_groups(strategies.parse(name, task), study.config.groups)
    return name


def _record(study: Study, row: dict, step: str, seconds: float, **values) -> dict:
    timings = json.loads(row["timings"] or "{}")
    timings[step] = round(seconds, 3)
    update = {k: dumps(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}
    update["timings"] = dumps(timings)
    return store_rounds.update_round(study.store, row["id"], update)


def current_round(study: Study, arm: str = "main") -> int:
    """The round an arm is in: its last round unless that one is done, then the next."""
    rows = study.store.rounds(arm)
    if not rows:
        return 0
    last = rows[-1]
    return last["round"] + (last["status"] == "done")


def _previous_model(study: Study, arm: str, round: int) -> int | None:
    for row in reversed(study.store.rounds(arm)):
        if row["round"] < round and row["model_id"]:
            return row["model_id"]
    return None


def _predictor(study: Study, model_id: int, gpu) -> Callable[[dict], Prediction]:
    """The model's pre-annotation of an image: masks scored 1 - flow error (clipped to 0..1),
    or a class with its probability."""
    row = learn.model_row(study, model_id)
    model, adapter = learn.load_model(study, row, gpu), family(row["kind"])
    config = adapter.settings(study.config)
    version = f"loop-model-{row['id']}"

    def predict(image: dict) -> Prediction:
        (output,) = adapter.predict(model, [read_image(learn.image_path(image))], config=config)
        if output.masks is not None:
            return Prediction(
                mask=output.masks,
                score=float(np.clip(1.0 - output.measures["flow_error"], 0.0, 1.0)),
                model_version=version,
            )
        return Prediction(klass=output.klass, score=output.confidence, model_version=version)

    return predict


def _batch_complete(study: Study, batch: list[int], overlap: int) -> tuple[int, int]:
    """(tasks with all their annotations, tasks) for a batch: an annotation that was skipped
    or could not be read counts as the annotator's turn."""
    done = 0
    for image_id in batch:
        done += store_rounds.annotations_of_image(study.store, image_id) >= overlap
    return done, len(batch)


def _hours(study: Study, batch: list[int]) -> float | None:
    if not batch:
        return None
    total = store_rounds.lead_seconds(study.store, batch)
    return None if total is None else total / 3600.0


@locked("round")
def run_round(
    study: Study,
    tool: AnnotationTool | None,
    *,
    options: RoundOptions = RoundOptions(),
    annotate: Annotate | None = None,
    wait: bool = False,
    until: str = "agree",
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress = _quiet,
    log: Log = _quiet,
) -> RoundResult:
    """Run (or finish) the arm's current round.

    Parameters
    ----------
    tool : AnnotationTool or None
        Label Studio (None only when ``until`` is ``evaluate`` or ``select``).
    annotate : callable, optional
        Simulated annotators; without them the round waits for people.
    wait : bool
        Without ``annotate``: poll the tool every ``rounds.poll_seconds`` until the batch is
        annotated (else return with status ``waiting`` after the push).
    until : str
        The last step to run (``evaluate`` trains and evaluates only).

    Raises
    ------
    RoundError
        When there is nothing to train on, or no tool is given for the annotation steps.
    """
    if until not in STEPS:
        raise RoundError(f"until={until!r}: choose one of {', '.join(STEPS)}")
    if tool is None and STEPS.index(until) > STEPS.index("select"):
        raise RoundError(
            "annotation steps need Label Studio: start it with `loop labelstudio start`"
        )
    arm = options.arm
    strategy = arm_strategy(study, options)
    config = study.config.rounds
    crash = crash_points()
    number = current_round(study, arm)
    _start_arm(study, arm)
    row = store_rounds.start_round(study.store, arm, number, strategy=strategy, seed=options.seed)
    done = set(json.loads(row["timings"] or "{}"))

    for step in STEPS[: STEPS.index(until) + 1]:
        if step in done:
            continue
        started = time.perf_counter()
        log(f"{arm} round {number}: {step}")
        values: dict = {}
        batch = json.loads(row["batch"] or "[]")  # chosen by the select step
        if step == "train":
            labeled = arm_images(study, arm, before=number)
            previous = _previous_model(study, arm, number)
            report = learn.train(
                study,
                seed=options.seed,
                steps=options.steps,
                image_ids=labeled,
                parent_id=previous,
                fresh=previous is None,
                arm=arm,
                gpu=options.gpu,
                progress=progress,
            )
            in_use = report.model_id
            if report.status == "rejected":
                in_use = previous or report.model_id
                log(f"  model {report.model_id} rejected ({report.decision}); using {in_use}")
            items = learn.training_labels(study, labeled)
            values = {
                "model_id": in_use,
                "n_labeled": len(items),
                "n_objects": sum(label.get("n_objects") or 0 for _, label in items),
                "notes": report.decision,
            }
        elif step == "evaluate":
            metrics = learn.evaluate(
                study, model_id=row["model_id"], gpu=options.gpu, progress=progress
            )
            values = {
                "metrics": {k: v for k, v in metrics.items() if k not in ("model_id", "split")}
            }
            for lag in metrics.get("lagging_groups") or []:
                log(f"warning: {arm} round {number}: {lag['message']}")
        elif step == "select":
            pool = candidates(study, arm)
            if not pool:
                raise RoundError(f"arm {arm}: the pool is used up; nothing left to annotate")
            chosen = learn.score(
                study,
                strategy=strategy,
                k=options.k,
                model_id=row["model_id"],
                seed=options.seed * 1000 + number,
                image_ids=pool,
                labeled_ids=arm_images(study, arm),
                gpu=options.gpu,
                progress=progress,
            ).chosen
            batch = [c["image_id"] for c in chosen]
            values = {"batch": batch, "n_batch": len(batch)}
        elif step == "push":
            images = [study.store.image(i) for i in batch]
            push(
                study,
                tool,
                images,
                overlap=config.overlap,
                arm=arm,
                round=number,
                predictions=_predictor(study, row["model_id"], options.gpu),
                tiling=config.tiling() if study.config.task == "segmentation" else None,
                progress=lambda d, t: progress("push", d, t),
            )
        elif step == "annotate":
            if annotate is not None:
                counts = annotate()
                log("  " + ", ".join(f"{name}: {n} tasks" for name, n in counts.items()))
            else:
                told: set[str] = set()
                while True:
                    for gap in set(pull(study, tool).tile_gaps) - told:
                        log(f"  tiled image not complete: {gap}")
                        told.add(gap)
                    complete, total = _batch_complete(study, batch, config.overlap)
                    progress("waiting for annotators", complete, total)
                    if complete >= total:
                        break
                    if not wait:
                        row = store_rounds.update_round(
                            study.store, row["id"], {"status": "waiting"}
                        )
                        log(
                            f"  {complete}/{total} tasks annotated: run `loop round` again "
                            "when the experts are done (or `loop run`, which waits)"
                        )
                        return _result(row)
                    sleep(config.poll_seconds)
        elif step == "pull":
            pull(study, tool, progress=lambda d, t: progress("pull", d, t))
            record_adjudications(study)  # reviewers' decisions on earlier batches
            values = {"annotator_hours": _hours(study, batch)}
        elif step == "agree":
            report = agree(
                study,
                image_ids=batch,
                method=config.fusion,
                min_agreement=config.min_agreement,
                min_annotations=config.min_annotations,
                against_truth=True,
                progress=lambda d, t: progress("agreement", d, t),
            )
            joined = _admit_labeled(study, arm, number)
            values = {
                "agreement": {
                    **report.overall,
                    "annotators": report.annotators,
                    "against_truth": report.against_truth,
                    "joined": joined,
                },
                "status": "done",
                "finished_at": utcnow(),
            }
        crash.hit(f"round.{step}")
        row = _record(study, row, step, time.perf_counter() - started, **values)
    if until == "evaluate" and row["status"] != "done":
        row = store_rounds.update_round(study.store, row["id"], {"status": "evaluated"})
    return _result(row)


def _result(row: dict) -> RoundResult:
    return RoundResult(
        arm=row["arm"],
        round=row["round"],
        status=row["status"],
        model_id=row["model_id"],
        n_labeled=row["n_labeled"] or 0,
        metrics=json.loads(row["metrics"] or "{}"),
        batch=json.loads(row["batch"] or "[]"),
        agreement=json.loads(row["agreement"] or "{}"),
        annotator_hours=row["annotator_hours"],
        timings=json.loads(row["timings"] or "{}"),
    )


def run(
    study: Study,
    tool: AnnotationTool | None,
    *,
    rounds: int,
    options: RoundOptions = RoundOptions(),
    annotate: Annotate | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress = _quiet,
    log: Log = _quiet,
    on_round: Callable[[RoundResult], None] = _quiet,
) -> list[RoundResult]:
    """Run the arm until ``rounds`` rounds are done (waiting for people when there are no
    simulated annotators), then, with ``rounds.final_train``, train and evaluate once more on
    every label. Resumes a run that was stopped.

    Raises
    ------
    RoundError
        For ``rounds < 1``.
    """
    if rounds < 1:
        raise RoundError(f"--rounds {rounds}: run at least one round")
    results = []
    while current_round(study, options.arm) < rounds:
        result = run_round(
            study,
            tool,
            options=options,
            annotate=annotate,
            wait=True,
            sleep=sleep,
            progress=progress,
            log=log,
        )
        results.append(result)
        on_round(result)
    if study.config.rounds.final_train:
        result = run_round(
            study, tool, options=options, until="evaluate", progress=progress, log=log
        )
        results.append(result)
        on_round(result)
    return results
