"""The measuring of ``loop score``, as a worker (or this process) does it: a chunk of images
read and measured by the model, with the seconds of each stage (:mod:`loop.core.stages`), and
the driver's side that runs the chunks and adds up where the time went."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from loop.core.images import read_image
from loop.core.readahead import warm_job
from loop.core.stages import add, collecting, stage, timed, timed_each
from loop.errors import ModelError
from loop.learn import engine as engines
from loop.learn.engine import Engine, ModelRef, TaskFailed, run_each
from loop.models.family import family
from loop.study import Study


@dataclass(frozen=True)
class ScoreJob:
    """Images to measure with a model: all a worker needs (it never opens the database)."""

    paths: tuple[str, ...]
    model: ModelRef
    config: object  # the family's section of the config (frozen)
    tier: str = "forward"  # forward: the cheap measures of a chunk; segment, tta: one image

    @property
    def files(self) -> tuple[str, ...]:
        """The files it reads (:func:`loop.core.readahead.warm_job` reads them ahead)."""
        return self.paths


def score_job(job: ScoreJob) -> tuple[str, list[tuple[dict, np.ndarray | None]], dict]:
    """The device that measured, (measures, embedding) of each image of the job, and the
    seconds of each stage (:mod:`loop.core.stages`)."""
    with collecting(rest="other") as seconds:
        with stage("model load"):
            model, adapter = job.model.load(), family(job.model.kind)
        with stage("read"):
            pixels = [read_image(path) for path in job.paths]
        if job.tier == "forward":
            outputs = adapter.measure(model, pixels, config=job.config)
        else:
            outputs = adapter.predict(model, pixels, config=job.config, tta=job.tier == "tta")
    device = str(getattr(model, "device", "cpu"))
    return device, [(o.measures, o.embedding) for o in outputs], dict(seconds)


def job_of(study: Study, row: dict, paths, gpu, tier: str = "forward") -> ScoreJob:
    return ScoreJob(
        tuple(str(p) for p in paths),
        ModelRef.of(study, row, gpu),
        family(row["kind"]).settings(study.config),
        tier,
    )


@dataclass
class Measuring:
    """Runs the score jobs of one call on ``engine``: a cluster is started at the first job
    and kept for the call's later jobs (the shortlist's costlier measure), until
    :meth:`close`; ``profile`` adds up where the time went (``driver``: ``start``, ``wait``,
    and the caller's ``save``; ``workers``: the stages of :func:`score_job`)."""

    engine: Engine = Engine()
    profile: dict = field(default_factory=lambda: {"driver": {}, "workers": {}})
    cluster: ExitStack = field(default_factory=ExitStack)
    started: bool = False

    def run(self, jobs: list[ScoreJob]):
        """(index, (device, outputs)) of each job, in order; a job that failed twice on the
        cluster ends the call with its error (the chunks saved before it stay)."""
        if jobs and self.engine.distributed and not self.started:
            with timed(self.profile["driver"], "start"):
                self.cluster.enter_context(engines.started(self.engine))
            self.started = True
        results = run_each(score_job, jobs, engine=self.engine, prefetch=warm_job)
        for i, outputs in timed_each(results, self.profile["driver"], "wait"):
            if isinstance(outputs, TaskFailed):
                raise ModelError(
                    f"scoring {len(jobs[i].paths)} image(s) from {jobs[i].paths[0]} failed twice "
                    f"on the cluster ({outputs.error}); the chunks before it are saved: run again"
                )
            device, outputs, seconds = outputs
            add(self.profile["workers"], seconds)
            yield i, (device, outputs)

    def close(self) -> None:
        self.cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
