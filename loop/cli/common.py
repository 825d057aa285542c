"""What every command group shares: the consoles (tables to stdout, progress and logs to
stderr), the error-to-exit-code group, common options, progress bars, JSON output and the
rounds table."""

from __future__ import annotations

import errno
import json
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from loop.errors import LoopError
from loop.store.db import database_problem

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class LoopGroup(TyperGroup):
    """Turns library errors and OS errors (a read-only or full disk, a missing path) into one
    line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LoopError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(code=1) from None
        except OSError as exc:
            print(f"error: {os_error_message(exc)}", file=sys.stderr)
            raise typer.Exit(code=1) from None
        except sqlite3.Error as exc:  # a write of the study's database that failed midway
            print(f"error: {database_problem('the study database', exc)}", file=sys.stderr)
            raise typer.Exit(code=1) from None


_OS_HINTS = {
    errno.EROFS: "the file system is read-only: run on a writable copy of the study",
    errno.EACCES: "check that you may write there",
    errno.EPERM: "check that you may write there",
    errno.ENOSPC: "free some space, then run it again",
    errno.EDQUOT: "free some space, then run it again",
    errno.ENOENT: "check the path",
}


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path, the cause and what to do.

    >>> os_error_message(OSError(28, "No space left on device", "/s/x.tif"))
    '/s/x.tif: No space left on device (free some space, then run it again)'
    """
    where = f"{exc.filename}: " if exc.filename else ""
    cause = exc.strerror or str(exc)
    hint = _OS_HINTS.get(exc.errno)
    return f"{where}{cause}" + (f" ({hint})" if hint else "")


StudyArg = Annotated[Path, typer.Argument(help="The study folder (holds loop.toml and loop.db).")]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")]

ProfileOpt = Annotated[
    bool,
    typer.Option(
        "--profile",
        help="Say where the time went (read, network, dynamics, waiting, ...), summed over "
        "the workers, on stderr (and under 'profile' in --json).",
    ),
]


GpuOpt = Annotated[
    bool | None,
    typer.Option("--gpu/--cpu", help="Use CUDA (default: when present) or force the CPU."),
]


WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Worker processes of a local Dask cluster (1: in this process; default: "
        "\\[cluster] workers).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of a running Dask scheduler (tcp://host:8786) to run on instead "
        "(default: \\[cluster] scheduler).",
    ),
]


def engine_of(workers: int | None, scheduler: str | None, config=None):
    """The :class:`loop.learn.engine.Engine` of ``--workers`` / ``--scheduler``, else of the
    study's ``[cluster]`` (``config``: its :class:`~loop.config.ClusterConfig`)."""
    from loop.learn.engine import Engine, engine_for

    if workers is None and scheduler is None and config is not None:
        return engine_for(config)
    return Engine(workers=workers or 1, scheduler=scheduler)


def progress_bar() -> Progress:
    """A progress bar on stderr (never stdout, which may carry --json)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def stage_progress(bar: Progress):
    """A ``progress(stage, done, total)`` callback on one line of ``bar``: a new stage (another
    name, or the same one starting over, as each round's evaluation does) restarts the line's
    clock, so the time shown is that stage's, not the whole command's."""
    job = bar.add_task("starting", total=None)
    last = {"stage": None, "done": 0}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage != last["stage"] or done < last["done"]:
            bar.reset(job, description=stage, completed=done, total=total)
        else:
            bar.update(job, completed=done, total=total)
        last.update(stage=stage, done=done)

    return update


def legend(task: str) -> str:
    """What the columns of :func:`rounds_table` are, for a study of ``task``."""
    from loop.tasks import task_of

    return (
        f"{task_of(task).legend}; hours: annotator lead times; spent: the experts' effort "
        "before the round's model (weighted edits of the pre-annotations, \\[effort]: a missed "
        "object 10, a split or merge 5, a redrawn outline 2, a false one 1, a kept one 0.2); "
        "s: seconds"
    )


def rounds_table(rows: list[dict], title: str = "rounds") -> Table:
    """A per-round table (rows from :func:`loop.reports.status.round_summary`)."""

    def num(value, fmt="{:.3f}"):
        return "" if value is None else fmt.format(value)

    table = Table(
        "arm",
        "round",
        "labeled",
        "model",
        "score",
        "F1",
        "agree",
        "cons.",
        "hours",
        "spent",
        "s",
        "status",
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    spent: dict[str, float] = {}  # arm -> effort of its rounds so far
    for r in rows:
        before = spent.get(r["arm"], 0.0)
        spent[r["arm"]] = before + (r.get("effort") or 0.0)
        table.add_row(
            r["arm"],
            str(r["round"]),
            num(r["n_labeled"], "{}"),
            num(r["model_id"], "{}"),
            num(r["score"]),
            num(r["f1"]),
            num(r["agreement"]),
            num(r["consensus_vs_truth"]),
            num(r["annotator_hours"], "{:.2f}"),
            num(before if "effort" in r else None, "{:,.0f}"),
            num(r["seconds"], "{:.0f}"),
            r["status"],
        )
    return table
