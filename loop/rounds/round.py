"""Rounds of the loop: the steps of :mod:`loop.rounds.steps` run in order, recorded.

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

from loop.core import strategies
from loop.errors import RoundError, UnknownStrategy
from loop.faults import crash_points
from loop.learn.engine import Engine, engine_for, started
from loop.rounds.arms import _start_arm
from loop.rounds.steps import (
    RUNNERS,
    STEPS,
    WAITING,
    Annotate,
    Log,
    Progress,
    RoundOptions,
    RoundState,
)
from loop.store import dumps
from loop.store import rounds as store_rounds
from loop.store.lock import locked
from loop.study import Study
from loop.types import AnnotationTool

__all__ = [
    "STEPS",
    "Annotate",
    "Log",
    "Progress",
    "RoundOptions",
    "RoundResult",
    "run",
    "run_round",
]


def _quiet(*_args) -> None:
    return None


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
    """Run (or finish) the arm's current round: the steps of :data:`RUNNERS` not yet done.

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
    crash = crash_points()
    number = current_round(study, arm)
    _start_arm(study, arm)
    row = store_rounds.start_round(study.store, arm, number, strategy=strategy, seed=options.seed)
    r = RoundState(
        study, tool, options, annotate, wait, sleep, progress, log, strategy, number, row
    )
    done = set(json.loads(row["timings"] or "{}"))
    for step in STEPS[: STEPS.index(until) + 1]:
        if step in done:
            continue
        started = time.perf_counter()
        log(f"{arm} round {number}: {step}")
        values = RUNNERS[step](r)
        if values is WAITING:
            r.row = store_rounds.update_round(study.store, r.row["id"], {"status": "waiting"})
            return _result(r.row)
        crash.hit(f"round.{step}")
        r.row = _record(study, r.row, step, time.perf_counter() - started, **values)
    if until == "evaluate" and r.row["status"] != "done":
        r.row = store_rounds.update_round(study.store, r.row["id"], {"status": "evaluated"})
    return _result(r.row)


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
    every label. Resumes a run that was stopped. With simulated annotators (``annotate``)
    and workers in ``[cluster]``, the rounds score on one cluster started once (its workers
    warm from round to round); waiting for people holds none.

    Raises
    ------
    RoundError
        For ``rounds < 1``.
    """
    if rounds < 1:
        raise RoundError(f"--rounds {rounds}: run at least one round")
    # simulated annotators: every round scores on one warm cluster ([cluster]); people
    # annotate: none is held while the loop waits for them (Engine(): this process)
    engine = engine_for(study.config.cluster) if annotate is not None else Engine()
    results = []
    with started(engine):
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
