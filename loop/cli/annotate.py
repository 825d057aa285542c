"""Annotation commands: ``push``, ``pull``, ``simulate`` (``agree`` and ``adjudicate``: in
:mod:`loop.cli.consensus`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loop.cli.common import (
    JsonOpt,
    LoopGroup,
    StudyArg,
    emit_json,
    out,
    progress_bar,
)

app = typer.Typer(cls=LoopGroup)


def _read_id_list(images: str) -> list[int]:
    from loop.errors import PushRefused

    path = Path(images)
    text = path.read_text() if path.is_file() else images
    try:
        return [int(tok) for tok in text.replace(",", " ").split()]
    except ValueError:
        raise PushRefused(f"--images {images!r}: give image ids (1,2,3) or a file of ids") from None


def _predictions_from(folder: Path | None, study):
    """Pre-annotations read from label images in ``folder`` (``<image name>.tif``); of a
    semantic study, class maps whose classes are named."""
    if folder is None:
        return None
    from loop.core.images import read_mask
    from loop.errors import PushRefused
    from loop.tasks import pixel_classes
    from loop.types import Prediction

    names = pixel_classes(study.config)

    def predict(image: dict):
        for ext in (".tif", ".tiff", ".png"):
            path = folder / f"{image['name']}{ext}"
            if path.is_file():
                mask = read_mask(path, (image["height"], image["width"]))
                if names and mask.max(initial=0) >= len(names):
                    raise PushRefused(
                        f"{path} has value {int(mask.max())}, but the study has "
                        f"{len(names)} classes: give class-index images (`loop predict`)"
                    )
                return Prediction(mask=mask, model_version=folder.name, labels=names)
        return None

    return predict


@app.command()
def push(
    study: StudyArg,
    images: Annotated[
        str | None, typer.Option(help="Image ids (1,2,3) or a file listing them.")
    ] = None,
    split: Annotated[
        str, typer.Option(help="Push images of this split (pool or labeled).")
    ] = "pool",
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many images of --split.")
    ] = None,
    overlap: Annotated[int, typer.Option(min=1, help="Distinct annotators wanted per task.")] = 3,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Folder of label TIFFs <image name>.tif used as pre-annotations."),
    ] = None,
    arm: Annotated[
        str, typer.Option(help="Arm the tasks belong to (main, or a control arm).")
    ] = "main",
    round: Annotated[int | None, typer.Option("--round", help="Round the tasks belong to.")] = None,
    tile: Annotated[
        int,
        typer.Option(
            help="Images larger than --tile-above become tiles of at most this side, one task "
            "each, stitched back on pull (0: whole images; default: [rounds] tile)."
        ),
    ] = -1,
    tile_above: Annotated[
        int, typer.Option(help="Only images with a side longer than this are tiled.")
    ] = 512,
    tile_overlap: Annotated[int, typer.Option(help="Pixels neighbouring tiles share.")] = 32,
    regions: Annotated[
        bool,
        typer.Option(
            "--regions",
            help="Push the regions of the newest region batch (`loop score --strategy "
            "flip@region`), each with --context pixels around it, instead of images.",
        ),
    ] = False,
    context: Annotated[
        int, typer.Option(min=0, max=1024, help="Pixels shown around a region (--regions).")
    ] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Send images to Label Studio as tasks (idempotent: an image is never pushed twice)."""
    from loop.annotate.push import push as run_push
    from loop.annotate.push import select_for_push
    from loop.cli.wiring import connect
    from loop.core.tiles import Tiling
    from loop.study import open_study

    with open_study(study) as s:
        rows = select_for_push(
            s, image_ids=_read_id_list(images) if images else None, split=split, limit=limit
        )
        tiling = (
            s.config.rounds.tiling()
            if tile < 0
            else Tiling(tile=tile, above=tile_above, overlap=tile_overlap)
            if tile
            else None
        )
        tool = connect(s)
        with progress_bar() as bar:
            job = bar.add_task("push", total=None)
            if regions:
                from loop.annotate.regions import chosen_regions, push_regions

                report = push_regions(
                    s,
                    tool,
                    chosen_regions(s),
                    overlap=overlap,
                    context=context,
                    arm=arm,
                    round=round,
                    predictions=_predictions_from(predictions, s),
                    progress=lambda d, t: bar.update(job, completed=d, total=t),
                )
            else:
                report = run_push(
                    s,
                    tool,
                    rows,
                    overlap=overlap,
                    arm=arm,
                    round=round,
                    predictions=_predictions_from(predictions, s),
                    tiling=tiling,
                    progress=lambda d, t: bar.update(job, completed=d, total=t),
                )
        tool.close()
    summary = {
        "project": report.project,
        "created": report.created,
        "adopted": report.adopted,
        "already_pushed": report.already,
        "tasks": len(report.task_ids),
        "tiled_images": report.tiled,
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


@app.command()
def pull(
    study: StudyArg,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Read every task, not only those updated since the last pull (it also runs "
            "by itself when the last full one is rounds.full_pull_minutes old).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring finished annotations back from Label Studio (incremental; nothing is ever lost)."""
    from loop.annotate.adjudicate import record
    from loop.annotate.pull import pull as run_pull
    from loop.cli.wiring import connect
    from loop.study import open_study

    with open_study(study) as s:
        tool = connect(s)
        with progress_bar() as bar:
            job = bar.add_task("pull", total=None)
            report = run_pull(
                s, tool, full=full, progress=lambda d, t: bar.update(job, completed=d, total=t)
            )
        tool.close()
        decisions = record(s)
    for line in report.malformed:
        print(f"malformed annotation kept as is: {line}", file=sys.stderr)
    for line in report.edited:
        print(f"edited by someone else: {line}", file=sys.stderr)
    for line in report.superseded:
        print(f"several by one annotator: {line}", file=sys.stderr)
    for line in report.tile_gaps:
        print(f"tiled image not complete: {line}", file=sys.stderr)
    for line in decisions.ignored:
        print(f"not used: {line}", file=sys.stderr)
    if report.unknown_accounts:
        print(
            f"warning: annotations by accounts the study does not know, kept as "
            f"{', '.join(report.unknown_accounts)}: add them with `loop labelstudio annotators "
            "add` (or remove their annotations) before agreement counts them",
            file=sys.stderr,
        )
    if report.adopted:
        print(
            f"adopted {report.adopted} duplicate tasks (Label Studio holds two tasks of one "
            "image, e.g. from pushes that raced before pushes were locked): the annotations "
            "of both count",
            file=sys.stderr,
        )
    if report.unknown_tasks:
        print(
            f"warning: {report.unknown_tasks} tasks of the study's project are not the "
            "study's (made in Label Studio by hand: no loop_task_id in their data); their "
            "annotations are not imported. Delete them in Label Studio, or ingest and push "
            "their images",
            file=sys.stderr,
        )
    summary = {
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "skipped_by_annotator": report.skipped_by_annotator,
        "malformed": len(report.malformed),
        "edited": len(report.edited),
        "superseded": len(report.superseded),
        "tasks_seen": report.tasks_seen,
        "full": report.full,
        "adopted": report.adopted,
        "unknown_tasks": report.unknown_tasks,
        "unknown_accounts": report.unknown_accounts,
        "tasks_done": report.tasks_done,
        "stitched": report.stitched,
        "tile_gaps": len(report.tile_gaps),
        "adjudicated": decisions.decided,
        "awaiting_review": decisions.waiting,
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


@app.command()
def simulate(
    study: StudyArg,
    annotators: Annotated[
        str, typer.Option(help="Comma-separated annotator names (accounts are created if missing).")
    ] = "alice,bob,carol",
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PROFILE (perfect, careful, average, sloppy, or a \\[noise.NAME] of "
            "loop.toml). Repeatable."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the annotators' noise.")] = 0,
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Work the adjudication project (simulated reviewers) instead."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulated annotators annotate every open task assigned to them, through the API.

    Default profiles by position: careful, average, sloppy."""
    from loop.cli.wiring import connect
    from loop.errors import ConfigError
    from loop.study import open_study

    names = [n.strip() for n in annotators.split(",") if n.strip()]
    chosen = {}
    for item in profile or []:
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise ConfigError(
                f"--profile {item!r}: write NAME=PROFILE for one of {', '.join(names)}"
            )
        chosen[name] = value
    with open_study(study) as s:
        admin = connect(s)
        from loop.cli.wiring import simulate_now, simulated_annotators

        profiles = simulated_annotators(s, admin, names, chosen)
        report = simulate_now(s, admin, profiles, seed, "adjudicate" if review else "annotate")
        admin.close()
    if as_json:
        emit_json({"profiles": profiles, "annotated": report.annotated, "skipped": report.skipped})
    else:
        for name in names:
            out.print(
                f"{name} ({profiles[name]}): {report.annotated[name]} annotated, "
                f"{report.skipped[name]} skipped"
            )
