"""What the annotators' work becomes: ``agree`` (agreement, consensus) and ``adjudicate``
(disagreements to a reviewer)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from loop.cli.common import JsonOpt, LoopGroup, StudyArg, emit_json, out, progress_bar
from loop.tasks import task_of

app = typer.Typer(cls=LoopGroup)


@app.command()
def agree(
    study: StudyArg,
    round: Annotated[
        int | None, typer.Option("--round", help="Only the tasks of this round.")
    ] = None,
    method: Annotated[str, typer.Option(help="Mask fusion: majority or staple.")] = "majority",
    min_agreement: Annotated[
        float, typer.Option(help="Tasks below this mean pairwise agreement go to adjudication.")
    ] = 0.7,
    min_annotations: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Valid annotations a consensus needs, at most the overlap (default: "
            "rounds.min_annotations); tasks with fewer wait.",
        ),
    ] = None,
    against_truth: Annotated[
        bool,
        typer.Option(
            "--against-truth", help="Also score annotators and consensus against ground truth."
        ),
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or csv (one row per task).")
    ] = "table",
    as_json: JsonOpt = False,
) -> None:
    """Inter-annotator agreement per task, pair and annotator; writes consensus labels and lists
    tasks for adjudication."""
    import csv

    from loop.annotate.consensus import agree as run_agree
    from loop.errors import ConfigError
    from loop.study import open_study

    if output_format not in ("table", "json", "csv"):
        raise ConfigError(f"--format {output_format}: choose table, json or csv")
    output_format = "json" if as_json else output_format
    with open_study(study) as s, progress_bar() as bar:
        job = bar.add_task("agreement", total=None)
        report = run_agree(
            s,
            round=round,
            method=method,
            min_agreement=min_agreement,
            min_annotations=min_annotations or s.config.rounds.min_annotations,
            against_truth=against_truth,
            progress=lambda d, t: bar.update(job, completed=d, total=t),
        )
        regions = None
        if task_of(s.config.task).regions:
            from loop.annotate.regions import agree_regions

            regions = agree_regions(
                s,
                method=method,
                min_agreement=min_agreement,
                min_annotations=min_annotations or s.config.rounds.min_annotations,
            )
    for line in report.waiting:
        print(f"waiting: {line}", file=sys.stderr)
    for line in [] if regions is None else regions.lines():
        print(line, file=sys.stderr)
    if output_format == "json":
        data = {
            "overall": report.overall,
            "annotators": report.annotators,
            "tasks": [vars(t) for t in report.tasks],
            "waiting": [vars(w) for w in report.waiting],
            "regions": None if regions is None else vars(regions),
        }
        if against_truth:
            data.update(report.against_truth or {"consensus": None, "annotators": {}})
        emit_json(data)
    elif output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(
            [
                "task_id",
                "image_id",
                "image",
                "round",
                "annotators",
                "agreement",
                "consensus",
                "adjudicate",
            ]
        )
        for t in report.tasks:
            writer.writerow(
                [
                    t.task_id,
                    t.image_id,
                    t.image,
                    t.round,
                    " ".join(t.annotators),
                    "" if t.agreement is None else f"{t.agreement:.4f}",
                    t.consensus,
                    int(t.adjudicate),
                ]
            )
    else:
        table = Table("annotator", "agreement with the others' consensus")
        for name, value in report.annotators.items():
            table.add_row(name, f"{value:.3f}")
        out.print(table)
        overall = report.overall
        mean = overall["mean_agreement"]
        out.print(
            f"{overall['tasks']} tasks, mean pairwise agreement "
            f"{'n/a' if mean is None else f'{mean:.3f}'}; "
            f"{len(overall['adjudicate'])} for adjudication: {overall['adjudicate'][:20]}"
        )
        for kind, value in overall.get("per_class", {}).items():
            shown = "n/a (nobody drew one)" if value is None else f"{value:.3f}"
            out.print(f"  {kind}: mean pairwise agreement {shown}")
        if report.against_truth:
            out.print(f"against truth: {report.against_truth}")


@app.command()
def adjudicate(
    study: StudyArg,
    reviewer: Annotated[
        str, typer.Option(help="The annotator whose label decides (an account of the study).")
    ],
    min_agreement: Annotated[
        float, typer.Option(help="Tasks below this mean pairwise agreement are reviewed.")
    ] = 0.7,
    round: Annotated[
        int | None, typer.Option("--round", help="Only the tasks of this round.")
    ] = None,
    method: Annotated[
        str, typer.Option(help="Fusion of the consensus offered as a version: majority or staple.")
    ] = "majority",
    as_json: JsonOpt = False,
) -> None:
    """Send low-agreement tasks to a reviewer in Label Studio, every annotator's version shown
    as a pre-annotation; record the reviewer's decisions made since the last call."""
    from loop.annotate.adjudicate import adjudicate as run_adjudicate
    from loop.cli.wiring import connect
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        job = bar.add_task("adjudication", total=None)
        tool = connect(s)
        try:
            report = run_adjudicate(
                s,
                tool,
                reviewer=reviewer,
                min_agreement=min_agreement,
                round=round,
                method=method,
                progress=lambda stage, d, t: bar.update(
                    job, description=stage, completed=d, total=t
                ),
            )
        finally:
            tool.close()
    for line in report.recorded.ignored:
        print(f"not used: {line}", file=sys.stderr)
    rec = report.recorded
    summary = {
        "decided": rec.decided,
        "unchanged": rec.unchanged,
        "awaiting_review": rec.waiting,
        "skipped_by_reviewer": rec.skipped_by_reviewer,
        "below_threshold": len(report.candidates),
        "sent": report.sent,
        "already_sent": report.already,
        "project": report.project,
    }
    if as_json:
        emit_json(
            {
                **summary,
                "tasks": [
                    {k: getattr(t, k) for k in ("task_id", "image_id", "image", "round")}
                    | {"agreement": t.agreement, "annotators": t.annotators}
                    for t in report.candidates
                ],
            }
        )
        return
    if report.candidates:
        table = Table("task", "image", "round", "agreement", "annotators", title="below threshold")
        for t in report.candidates:
            table.add_row(
                str(t.task_id),
                t.image,
                "" if t.round is None else str(t.round),
                "" if t.agreement is None else f"{t.agreement:.3f}",
                " ".join(t.annotators),
            )
        out.print(table)
    out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))
