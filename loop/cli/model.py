"""Model commands: ``train``, ``evaluate``, ``score``, ``predict``, ``measure``, ``strategies``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loop.cli.common import (
    GpuOpt,
    JsonOpt,
    LoopGroup,
    ProfileOpt,
    SchedulerOpt,
    StudyArg,
    WorkersOpt,
    emit_json,
    engine_of,
    err,
    out,
    progress_bar,
    stage_progress,
)
from loop.core.stages import profile_text
from loop.tasks import TASKS

app = typer.Typer(cls=LoopGroup)


@app.command()
def train(
    study: StudyArg,
    seed: Annotated[int | None, typer.Option(help="Overrides the config's seed.")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimisation steps (segmentation; default from config).")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Do not warm-start from the previous model.")
    ] = False,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train on the current labels (labeled split: adjudicated > consensus > ground truth) and
    record the model; a model that validates worse than the previous one is kept out of use."""
    from loop.learn.train import train as run_train
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = run_train(
            s, seed=seed, steps=steps, fresh=fresh, gpu=gpu, progress=stage_progress(bar)
        )
    if as_json:
        emit_json(vars(report))
        return
    what = "reused the identical model" if report.reused else "trained"
    out.print(
        f"{what} {report.model_id}: {report.n_train} training + {report.n_val} validation "
        f"images, {report.steps} steps, {report.seconds:.0f} s; {report.decision}"
    )


@app.command()
def evaluate(
    study: StudyArg,
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    split_name: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Held-out figures of the model on the test split, overall and per group."""
    from loop.learn.evaluate import evaluate as run_evaluate
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        metrics = run_evaluate(
            s, model_id=model, split=split_name, gpu=gpu, progress=stage_progress(bar)
        )
    if as_json:
        emit_json(metrics)
        return
    keys = [
        k
        for k in (
            "ap50",
            "ap75",
            "ap90",
            "precision",
            "recall",
            "f1",
            "mean_ap",
            "count_mae",
            "matched_iou",
            "dice",
            "accuracy",
            "macro_f1",
            "kappa",
            "mean_dice",
            "mean_iou",
            "pixel_accuracy",
        )
        if k in metrics
    ]
    # the figure of each class: Dice (semantic segmentation) or F1 (detection)
    per_class, figure = [], ""
    for name, v in metrics.get("per_class", {}).items():
        figure = next((f for f in ("dice", "f1") if isinstance(v, dict) and f in v), "")
        if figure:
            per_class.append(name)
    table = Table("group", "images", *keys, *(f"{name} {figure}" for name in per_class))

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    def row(figures):
        by_class = figures.get("per_class", {})
        classes = (fmt(by_class.get(name, {}).get(figure)) for name in per_class)
        return (str(figures["n_images"]), *(fmt(figures[k]) for k in keys), *classes)

    table.add_row("all", *row(metrics))
    for group, figures in metrics["per_group"].items():
        table.add_row(group, *row(figures))
    out.print(f"model {metrics['model_id']} on the {metrics['split']} split")
    out.print(table)


@app.command()
def score(
    study: StudyArg,
    strategy: Annotated[
        str | None, typer.Option(help="A name from `loop strategies` (default: config/task).")
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, help="Batch size to choose.")] = None,
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of random choices.")] = 0,
    gpu: GpuOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    profile: ProfileOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Score every pool image with the model (stored; images already scored by the same model
    are skipped) and print the chosen batch (of regions, for a NAME@region strategy)."""
    from loop.learn.score import score as run_score
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = run_score(
            s,
            strategy=strategy,
            k=k,
            model_id=model,
            seed=seed,
            gpu=gpu,
            engine=engine_of(workers, scheduler, s.config.cluster),
            progress=stage_progress(bar),
        )
    summary = dict(vars(report))
    if not profile:
        summary.pop("profile")
    elif report.profile:
        err.print(profile_text(report.profile), markup=False, highlight=False)
    else:
        err.print("nothing measured: every image was scored before", markup=False)
    if as_json:
        emit_json(summary)
        return
    regions = any("region" in item for item in report.chosen)
    columns = ["rank", "image id", "path", *(["region (row, col, h, w)"] if regions else [])]
    table = Table(*columns, report.strategy)
    for rank, item in enumerate(report.chosen, 1):
        value = "" if item["score"] is None else f"{item['score']:.4f}"
        where = [", ".join(map(str, item["region"]))] if regions else []
        table.add_row(str(rank), str(item["image_id"]), item["path"], *where, value)
    out.print(table)
    out.print(
        f"model {report.model_id}: {report.scored} images scored, {report.reused} reused, "
        f"{report.seconds:.1f} s"
    )


@app.command()
def predict(
    study: StudyArg,
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the results.")],
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    gpu: GpuOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict label TIFFs (or classes) for any folder; predictions.csv records the model."""
    from loop.learn.predict import predict_folder
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        rows = predict_folder(
            s,
            folder,
            output,
            model_id=model,
            gpu=gpu,
            engine=engine_of(workers, scheduler, s.config.cluster),
            progress=stage_progress(bar),
        )
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        err.print(f"skipped {folder / r['file']}: {r['error']}")
    if as_json:
        emit_json(rows)
        return
    out.print(
        f"{len(rows) - len(failed)} predictions in {output} ({len(failed)} unreadable); "
        f"model {rows[0]['model_id'] if rows else 'n/a'}"
    )


@app.command()
def measure(
    study: StudyArg,
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for objects.csv, images.csv, ...")
    ],
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Measure these label images (<file>.tif) instead of segmenting.",
        ),
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Micrometres per pixel: adds *_um columns.")
    ] = None,
    gpu: GpuOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    profile: ProfileOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-object measurements of every image in a folder (segmented by the study's model):
    objects.csv, images.csv and provenance.json (model and software versions)."""
    from loop.learn.measure import measure_folder
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = measure_folder(
            s,
            folder,
            output,
            model_id=model,
            masks=masks,
            pixel_size=pixel_size,
            gpu=gpu,
            engine=engine_of(workers, scheduler, s.config.cluster),
            progress=stage_progress(bar),
        )
    for file, why in report.errors:
        err.print(f"skipped {folder / file}: {why}")
    for file, what in report.warnings:
        err.print(f"warning: {folder / file}: {what}")
    summary = {
        "images": report.n_images,
        "skipped": len(report.errors),
        "objects": report.n_objects,
        "reused": report.reused,
        "model_id": report.model_id,
        "objects_csv": str(report.out / "objects.csv"),
        "images_csv": str(report.out / "images.csv"),
        "provenance": str(report.out / "provenance.json"),
    }
    if profile:
        err.print(profile_text(report.profile), markup=False, highlight=False)
        summary["profile"] = report.profile
    if as_json:
        emit_json(summary)
        return
    source = f"model {report.model_id}" if report.model_id else f"labels in {masks}"
    out.print(
        f"{report.n_objects} objects in {report.n_images} images ({len(report.errors)} skipped; "
        f"{source}"
        + (f"; {report.reused} from the stopped run" if report.reused else "")
        + f") -> {report.out / 'objects.csv'}"
    )


@app.command()
def strategies(
    task: Annotated[str, typer.Option(help=" or ".join(TASKS) + ".")] = "segmentation",
    as_json: JsonOpt = False,
) -> None:
    """List the query strategies with one line each."""
    from loop.core.strategies import DEFAULTS, available
    from loop.errors import ConfigError

    if task not in TASKS:
        raise ConfigError(f"--task {task}: choose one of {', '.join(TASKS)}")
    listing = available(task)
    if as_json:
        emit_json({"task": task, "default": DEFAULTS[task], "strategies": listing})
        return
    from rich.markup import escape

    table = Table("strategy", "what it ranks by")
    for name, doc in listing.items():  # "[regions] size" is a config key, not rich markup
        table.add_row(name + (" (default)" if name == DEFAULTS[task] else ""), escape(doc))
    out.print(table)
