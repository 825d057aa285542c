"""Dask workers started as batch jobs on a cluster's scheduler (SLURM, PBS, LSF) through
dask-jobqueue: what ``loop cluster`` starts, and what :mod:`loop.learn.engine` then runs on
(``--scheduler``)."""

from __future__ import annotations

from dataclasses import dataclass

from loop.errors import EngineError

JOB_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster"}


@dataclass(frozen=True)
class JobWorkers:
    """Dask workers started as batch jobs (``loop cluster``): one worker process per job."""

    system: str = "slurm"
    cores: int = 8
    memory: str = "32GB"
    walltime: str = "01:00:00"
    jobs: int = 1
    queue: str | None = None
    account: str | None = None
    host: str | None = None
    """Address the scheduler listens on (default: dask-jobqueue's, all interfaces, so that
    workers on other nodes reach it); ``127.0.0.1`` keeps it on this machine."""

    def __post_init__(self):
        if self.system not in JOB_SYSTEMS:
            raise EngineError(
                f"{self.system!r}: workers can be started by {', '.join(JOB_SYSTEMS)} jobs"
            )
        if self.cores < 1 or self.jobs < 1:
            raise EngineError(f"--cores {self.cores}, --jobs {self.jobs}: give 1 or more")


def job_cluster(spec: JobWorkers):
    """A dask-jobqueue cluster of ``spec`` (its scheduler runs in this process; no job is
    submitted until it is scaled).

    Raises
    ------
    EngineError
        When dask-jobqueue is not installed, or refuses the settings.
    """
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise EngineError(
            "starting workers as batch jobs needs dask-jobqueue: pip install -e '.[hpc]'"
        ) from exc
    cls = getattr(dask_jobqueue, JOB_SYSTEMS[spec.system])
    options = {"host": spec.host} if spec.host else {}
    extra = {"account": spec.account} if spec.account else {}
    try:
        return cls(
            cores=spec.cores,
            memory=spec.memory,
            walltime=spec.walltime,
            processes=1,
            queue=spec.queue,
            scheduler_options=options,
            silence_logs="error",
            **extra,
        )
    except (TypeError, ValueError) as exc:
        raise EngineError(f"dask-jobqueue refuses these {spec.system} settings: {exc}") from exc
