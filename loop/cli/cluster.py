"""``loop cluster``: Dask workers as batch jobs (SLURM, PBS, LSF), for ``--scheduler``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from loop.cli.common import LoopGroup, emit_json, err, out

app = typer.Typer(cls=LoopGroup)


@app.command()
def cluster(
    system: Annotated[str, typer.Argument(help="slurm, pbs or lsf.")],
    cores: Annotated[int, typer.Option(help="Cores per job (one worker each).")] = 8,
    memory: Annotated[str, typer.Option(help="Memory per job, e.g. 32GB.")] = "32GB",
    jobs: Annotated[int, typer.Option(help="Jobs to submit (workers).")] = 1,
    walltime: Annotated[str, typer.Option(help="Time limit of each job.")] = "01:00:00",
    queue: Annotated[str | None, typer.Option(help="Partition or queue.")] = None,
    account: Annotated[str | None, typer.Option(help="Account to charge.")] = None,
    host: Annotated[
        str | None, typer.Option(help="Address the scheduler listens on (default: all).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the job script and submit nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Start Dask workers as batch jobs and print the scheduler's address for `loop score
    / measure / predict --scheduler`; runs (and keeps the workers) until Ctrl-C."""
    from loop.learn.job_cluster import JobWorkers, job_cluster

    spec = JobWorkers(
        system=system,
        cores=cores,
        memory=memory,
        walltime=walltime,
        jobs=jobs,
        queue=queue,
        account=account,
        host=host,
    )
    cluster = job_cluster(spec)
    try:
        info = {"scheduler": cluster.scheduler_address, "job_script": cluster.job_script()}
        if dry_run:
            if as_json:
                emit_json(info)
            else:
                out.print(info["job_script"], markup=False, highlight=False)
            return
        cluster.scale(jobs=jobs)
        if as_json:
            emit_json({**info, "jobs": jobs})
        else:
            out.print(f"scheduler: {cluster.scheduler_address}")
        err.print(
            f"{jobs} {system} job(s) submitted; use --scheduler {cluster.scheduler_address}. "
            "Ctrl-C stops the workers."
        )
        while True:
            time.sleep(5)
    except KeyboardInterrupt:
        err.print("stopping the workers")
    finally:
        cluster.close()
