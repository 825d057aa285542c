"""Dask workers as batch jobs (loop/learn/job_cluster.py): the job script dask-jobqueue
would submit, and bad settings."""

from __future__ import annotations

import pytest

from loop.errors import EngineError

pytestmark = pytest.mark.slow


def test_workers_as_batch_jobs_dry_run_and_bad_settings(monkeypatch):
    """`loop cluster slurm --dry-run` prints the job script of the workers it would submit
    (dask-jobqueue, scheduler on 127.0.0.1 here), and bad settings say what to give."""
    import json
    import sys

    from typer.testing import CliRunner

    from loop.cli import app
    from loop.learn.job_cluster import JobWorkers, job_cluster

    result = CliRunner().invoke(
        app,
        ["cluster", "slurm", "--cores", "4", "--memory", "16GB", "--walltime", "00:30:00"]
        + ["--host", "127.0.0.1", "--dry-run", "--json"],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["scheduler"].startswith("tcp://127.0.0.1:")
    script = info["job_script"]
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH -t 00:30:00" in script
    assert info["scheduler"] in script and "--nthreads 4" in script
    with pytest.raises(EngineError, match="'k8s': workers can be started by slurm, pbs, lsf"):
        JobWorkers(system="k8s")
    with pytest.raises(EngineError, match="--cores 0, --jobs 1: give 1 or more"):
        JobWorkers(cores=0)
    with pytest.raises(EngineError, match="refuses these slurm settings"):
        job_cluster(JobWorkers(memory="a lot", host="127.0.0.1"))
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(EngineError, match=r"needs dask-jobqueue: pip install -e '.\[hpc\]'"):
        job_cluster(JobWorkers(host="127.0.0.1"))
