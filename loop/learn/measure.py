"""Batch measurement: a folder of images in, a spreadsheet of per-object measurements out.

:func:`loop.core.objects.measure_objects` measures the objects of one label image (shape,
size, intensities per channel, whether the object touches the border); :func:`measure_folder`
segments every image of a folder with a study's model (or reads label images given with it),
measures them and writes, in ``out/``:

- ``objects.csv``: one row per object (image, label, centroid, bounding box, area, perimeter,
  axes, eccentricity, solidity, orientation, raw intensities per channel, the model's mean
  cell probability inside the object), in pixels and, with a pixel size, in micrometres;
- ``images.csv``: one row per file (sha256, shape, number of objects, or the error that made
  it skip);
- ``provenance.json``: the model (id, file sha256, parameters, training images, the software
  versions it was trained with), the software versions of this run, the options and the time;
- ``labels/<file>.tif``: the label images the measurements came from (when segmenting).

A semantic study (pixel classes) writes the area and area fraction of each class per image
(``images.csv``: ``area.<class>``, ``fraction.<class>``, ``area_um2.<class>``) and, in
``objects.csv``, one row per connected region of each class but the background, with its
``class``; the label images are class indices.

Files are written to temporary names and renamed at the end, so a run that stops leaves the
previous results whole; images are processed one at a time, so memory does not grow with the
folder. A stopped run keeps what it finished in a journal (:mod:`loop.learn.measure_journal`):
the same command again measures only the rest, and writes the same tables.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from loop.core.readahead import warm_job
from loop.core.stages import add, timed, timed_each
from loop.data.find import find_images
from loop.errors import MeasureError
from loop.faults import crash_points
from loop.learn import engine as engines
from loop.learn.engine import Engine, ModelRef, TaskFailed, run_each
from loop.learn.measure_image import MeasureJob, measure_jobs
from loop.learn.measure_journal import MeasureJournal, image_key
from loop.learn.registry import model_row, software_versions
from loop.models.family import family
from loop.study import Study
from loop.tasks import pixel_classes, task_of

IMAGE_COLUMNS = (
    "file",
    "sha256",
    "height",
    "width",
    "channels",
    "n_objects",
    "labels",
    "error",
    "warning",
)


@dataclass
class MeasureReport:
    """What :func:`measure_folder` did."""

    out: Path
    n_images: int  # files read and measured
    n_objects: int
    errors: list[tuple[str, str]]  # (file, why it was skipped)
    model_id: int | None
    reused: int = 0  # images a stopped run had finished (from its journal)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what to know)
    profile: dict = field(default_factory=dict)
    """Where this run's time went: ``seconds`` (wall), ``images`` (measured now), ``driver``
    (seconds starting a cluster, waiting for results, writing the journal and the tables)
    and ``workers`` (the seconds of each stage of :mod:`loop.learn.measure_image`, summed
    over the images)."""


def measure_folder(
    study: Study,
    folder: str | Path,
    out: str | Path,
    *,
    model_id: int | None = None,
    masks: str | Path | None = None,
    pixel_size: float | None = None,
    gpu: bool | None = None,
    engine: Engine = Engine(),
    progress: Callable[[str, int, int], None] | None = None,
) -> MeasureReport:
    """Segment (or read the labels of) every image under ``folder`` and measure its objects.

    Parameters
    ----------
    study : Study
        Its model segments the images (``model_id``, default the current one); its config
        says which file extensions are images.
    folder : path
        Images, searched recursively; relative paths name them in the tables.
    out : path
        Folder for ``objects.csv``, ``images.csv``, ``provenance.json`` and ``labels/``.
    masks : path, optional
        Measure these label images (``<masks>/<relative path>.tif``, as ``loop predict`` and
        ``loop export`` write them) instead of segmenting: no model is needed.
    pixel_size : float, optional
        Micrometres per pixel, for the ``*_um`` columns.
    engine : Engine
        Where the images are segmented and measured: this process, or worker processes of a
        Dask cluster (:mod:`loop.learn.engine`); the tables are the same, in the same order.

    Raises
    ------
    MeasureError
        When ``folder`` holds no image, ``out`` is inside ``folder``, or the study's task is
        classification (and no ``masks`` are given).
    NoModel
        When no model is given or trained (and no ``masks``).
    """
    folder, out = Path(folder), Path(out)
    files = _inputs(study, folder, out, masks=masks, pixel_size=pixel_size)
    row = None
    if masks is None:
        row = model_row(study, model_id)
    model = None if row is None else ModelRef.of(study, row, gpu)
    if model is not None:
        model.load()  # fail early
    config = study.config.model if row is None else family(row["kind"]).settings(study.config)
    classes = pixel_classes(study.config)
    jobs = [
        MeasureJob(
            path=path,
            rel=path.relative_to(folder).as_posix(),
            out=out,
            model=model,
            config=config,
            masks=None if masks is None else Path(masks),
            pixel_size=pixel_size,
            classes=classes,
        )
        for path in files
    ]
    out.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    settings = {
        "model": None if row is None else row["sha256"],
        "masks": None if masks is None else str(Path(masks).resolve()),
        "pixel_size": pixel_size,
        "config": repr(config),
        "classes": list(classes),
    }
    failed: dict[str, str] = {}
    journal = MeasureJournal(out, settings)  # what a stopped run of this command finished
    keys = [image_key(job.path, job.rel) for job in jobs]
    pending = [i for i, key in enumerate(keys) if key not in journal.done]
    crash = crash_points()
    driver, workers = {}, {}  # seconds of each stage (this run's images)
    with ExitStack() as cluster:
        with timed(driver, "start"):  # a cluster's workers (none in this process)
            if pending:
                cluster.enter_context(engines.started(engine))
        results = run_each(
            measure_jobs,
            [jobs[i] for i in pending],
            engine=engine,
            progress=lambda d, t: progress("measuring", d, t) if progress else None,
            ordered=False,  # journaled as they come; the tables follow the folder's order
            prefetch=warm_job,  # the next images' files read while these are measured
            many=True,  # a task's images may share the GPU's forward passes
        )
        # waiting for workers (in this process: the work itself)
        for n, outcome in timed_each(results, driver, "wait"):
            i = pending[n]
            if isinstance(outcome, TaskFailed):  # not journaled: the next run tries it again
                failed[jobs[i].rel] = f"failed twice on the cluster: {outcome.error}"
                continue
            record, rows, device, seconds = outcome
            add(workers, seconds)
            if rows is not None:
                record["n_objects"] = len(rows)
                rows = [
                    {"file": jobs[i].rel, **r, "model_id": row["id"] if row else None} for r in rows
                ]
            with timed(driver, "journal"):
                journal.add(keys[i], record, rows, device)
            crash.hit("measure.image")
    image_rows, errors, warnings, n_objects, devices = [], [], [], 0, set()
    columns: dict[str, None] = {"file": None}  # every column seen, in order of appearance
    for job, key in zip(jobs, keys):
        entry = journal.done.get(key)
        if entry is None:
            image_rows.append({"file": job.rel, "error": failed[job.rel]})
            errors.append((job.rel, failed[job.rel]))
            continue
        image_rows.append(entry["record"])
        if entry["record"].get("warning"):
            warnings.append((job.rel, entry["record"]["warning"]))
        if not entry["ok"]:
            errors.append((job.rel, entry["record"]["error"]))
            continue
        devices.add(entry["device"])
        n_objects += entry["record"]["n_objects"]
        columns.update(dict.fromkeys(entry["columns"]))
    if len(columns) == 1:  # no object anywhere: a header still says what the columns are
        columns.update(dict.fromkeys(["label", "model_id"]))
    provenance = {
        "folder": str(folder.resolve()),
        "study": str(study.path.resolve()),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pixel_size_um": pixel_size,
        "masks": None if masks is None else str(Path(masks).resolve()),
        "n_images": len(files) - len(errors),
        "n_skipped": len(errors),
        "n_objects": n_objects,
        "columns": list(columns),
        "software": software_versions(),
        "device": None if row is None else ", ".join(sorted(d for d in devices if d)) or None,
        "engine": _engine_provenance(engine),
        "model": None if row is None else _model_provenance(row),
    }
    objects = (r for key in keys if key in journal.done for r in journal.rows(journal.done[key]))
    image_columns = [*IMAGE_COLUMNS[:-2], *_class_columns(classes, pixel_size), *IMAGE_COLUMNS[-2:]]
    with timed(driver, "tables"):
        _write_results(out, objects, list(columns), image_rows, image_columns, provenance)
    journal.remove()
    profile = {
        "images": len(pending),
        "seconds": time.perf_counter() - clock,
        "engine": _engine_provenance(engine),
        "driver": driver,
        "workers": workers,
    }
    return MeasureReport(
        out=out,
        n_images=len(files) - len(errors),
        n_objects=n_objects,
        errors=errors,
        warnings=warnings,
        model_id=None if row is None else row["id"],
        reused=len(jobs) - len(pending),
        profile=profile,
    )


WITHOUT_OUTLINES = {"class": "classes", "boxes": "boxes (detections.csv) and counts per class"}
"""Label kinds whose models draw no outlines to measure, and what ``loop predict`` gives."""


def _inputs(study: Study, folder: Path, out: Path, *, masks, pixel_size) -> list[Path]:
    """The image files to measure, after checking the arguments (see :func:`measure_folder`)."""
    if not folder.is_dir():
        raise MeasureError(f"{folder} is not a folder of images")
    if out.resolve().is_relative_to(folder.resolve()):
        raise MeasureError(
            f"-o {out} is inside {folder}: its label images would be measured next time; "
            "write the results elsewhere"
        )
    kind = task_of(study.config.task).label_kind
    if masks is None and kind in WITHOUT_OUTLINES:
        raise MeasureError(
            f"this study's model gives {WITHOUT_OUTLINES[kind]}, not outlines: per-object "
            "measurements need a segmentation study, or label images given with --masks "
            f"(`loop predict` writes the {WITHOUT_OUTLINES[kind]})"
        )
    if pixel_size is not None and pixel_size <= 0:
        raise MeasureError(f"--pixel-size {pixel_size}: give micrometres per pixel, > 0")
    extensions = study.config.ingest.extensions
    files = find_images(folder, extensions, stores=True)
    if not files:
        raise MeasureError(
            f"no image in {folder} (looked for {', '.join(extensions)} files and .zarr folders)"
        )
    return files


def _class_columns(classes, pixel_size) -> list[str]:
    """The per-class columns of ``images.csv`` (semantic)."""
    kinds = ("area", "fraction", *(("area_um2",) if pixel_size else ()))
    return [f"{kind}.{name}" for name in classes for kind in kinds]


def _write_results(
    out: Path, objects, columns, image_rows, image_columns, provenance: dict
) -> None:
    """``objects.csv`` (from the rows ``objects`` yields), ``images.csv`` and
    ``provenance.json``, each under a temporary name, then all renamed."""
    objects_tmp = out / "objects.csv.tmp"
    with open(objects_tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(objects)
    images_tmp = out / "images.csv.tmp"
    with open(images_tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=image_columns)
        writer.writeheader()
        writer.writerows(image_rows)
    provenance_tmp = out / "provenance.json.tmp"
    provenance_tmp.write_text(json.dumps(provenance, indent=2) + "\n")
    for tmp in (objects_tmp, images_tmp, provenance_tmp):
        os.replace(tmp, tmp.with_suffix(""))


def _engine_provenance(engine: Engine) -> dict:
    """Where the work ran (the scheduler's address, or the local workers)."""
    if engine.scheduler:
        return {"kind": "dask", "scheduler": engine.scheduler}
    if engine.distributed:  # a local cluster, of one worker too
        return {"kind": "dask-local", "workers": engine.workers}
    return {"kind": "process"}


def _model_provenance(row: dict) -> dict:
    """What identifies a model: id, file and its sha256, parameters, training images,
    the software it was trained with, when."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "path": row["path"],
        "sha256": row["sha256"],
        "created_at": row.get("created_at"),
        "params": json.loads(row["params"] or "{}"),
        "train_image_ids": json.loads(row["train_image_ids"] or "[]"),
        "trained_with": json.loads(row["versions"] or "{}"),
        "device": row.get("device"),
    }
