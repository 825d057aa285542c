"""Commands that make a study and fill it: ``init`` and ``ingest``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loop.cli.common import JsonOpt, LoopGroup, StudyArg, emit_json, err, out, progress_bar
from loop.tasks import REGISTERED, described

app = typer.Typer(cls=LoopGroup)


@app.command()
def init(
    study: StudyArg,
    task: Annotated[
        str,
        typer.Option(help=described() + "."),
    ] = "segmentation",
    config: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Start from this loop.toml (e.g. configs/nuclei.toml); its task wins.",
        ),
    ] = None,
) -> None:
    """Create a study folder with a commented loop.toml and an empty loop.db."""
    from loop.study import init_study

    with init_study(study, task=task, config=config) as s:
        task = s.config.task
        out.print(
            f"created study {s.path} ({task}): edit {s.path / 'loop.toml'} to change defaults"
        )


@app.command()
def ingest(
    study: StudyArg,
    folder: Annotated[
        Path, typer.Argument(help="Data root: image files under it are ingested (recursive).")
    ],
    masks: Annotated[
        Path | None,
        typer.Option(
            help="Folder of label images, <stem>.tif per image: instance labels "
            "(segmentation) or class indices (semantic; as [labels] says)."
        ),
    ] = None,
    boxes: Annotated[
        Path | None,
        typer.Option(
            help="Box ground truth (detection): a folder of Pascal VOC .xml, a COCO .json or "
            "a .csv (image, class, x1, y1, x2, y2), matched by file name."
        ),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON table of metadata, one row per image (key: id/filename/path)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON table of classes (classification): key + class/label column."),
    ] = None,
    classes_from_folders: Annotated[
        bool, typer.Option("--classes-from-folders", help="Class = first folder under the root.")
    ] = False,
    task: Annotated[
        str | None,
        typer.Option(
            help="Task of a new study (default: classification with classes, else segmentation)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a folder of images with masks, boxes or classes and metadata (idempotent: re-run
    to resume or to pick up changes)."""
    from loop.data.ingest import ingest as run_ingest
    from loop.store.db import MAX_META_COLUMNS
    from loop.study import init_study, open_study

    if (study / "loop.toml").exists():
        s = open_study(study)
    else:
        wants = "classes" if (classes_from_folders or labels) else "boxes" if boxes else "masks"
        task = task or next(t.name for t in REGISTERED.values() if wants in t.ingest_options)
        s = init_study(study, task=task)
        err.print(f"created study {study} ({task})")
    with s, progress_bar() as bar:
        job = bar.add_task("ingest", total=None)
        report = run_ingest(
            s,
            folder,
            masks=masks,
            boxes=boxes,
            metadata=metadata,
            labels=labels,
            classes_from_folders=classes_from_folders,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    for skip in report.skipped:
        print(f"skipped {skip.path}: [{skip.reason}] {skip.message}", file=sys.stderr)
    for note in report.box_notes[:20]:
        print(f"box left out: {note}", file=sys.stderr)
    if len(report.box_notes) > 20:
        print(f"... and {len(report.box_notes) - 20} more boxes left out", file=sys.stderr)
    if report.unmatched_rows:
        print(
            f"warning: {len(report.unmatched_rows)} metadata rows matched no image "
            f"(first: {report.unmatched_rows[0]})",
            file=sys.stderr,
        )
    if report.without_column:
        print(
            f"note: {len(report.without_column)} metadata keys are kept in images.metadata "
            f"only, not as columns (a study has at most {MAX_META_COLUMNS}; first: "
            f"{report.without_column[0]!r}); --where, groups and stratify cannot use them",
            file=sys.stderr,
        )
    summary = {
        "root": report.root,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "with_truth": report.with_truth,
        "skipped": len(report.skipped),
        **({"boxes_left_out": len(report.box_notes)} if boxes is not None else {}),
    }
    if as_json:
        emit_json({**summary, "skipped_files": [vars(s) for s in report.skipped]})
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items() if k != "root"))
