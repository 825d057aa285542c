"""Predict a folder of images with the study's model: label TIFFs or classes, and
``predictions.csv`` with the model's id and sha256 on every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loop.config import ModelConfig
from loop.core.classmaps import class_areas
from loop.core.images import count_objects, write_labels
from loop.core.lazy import missing_note, open_image, whole
from loop.core.readahead import warm_job
from loop.core.tiles import crop, stitch
from loop.data.find import find_images
from loop.errors import ModelError
from loop.learn.engine import Engine, ModelRef, TaskFailed, run_each
from loop.learn.labels import Progress, _noop
from loop.learn.registry import model_row
from loop.models.base import Output
from loop.models.family import family
from loop.study import Study
from loop.tasks import box_classes, pixel_classes


def predict_one(kind: str, model, pixels: np.ndarray, config) -> Output:
    """The family's prediction of one image. A segmentation of an image with a side longer
    than ``config.predict_tile_above`` goes tile by tile (:meth:`ModelConfig.tiling`), the
    tiles' labels stitched (:func:`loop.core.tiles.stitch`) and their cell probabilities laid
    side by side, so that the model's memory is bounded by the tile, not the image.
    ``pixels`` may be a :class:`loop.core.lazy.LazyImage`: each tile is then read from the
    file when it is segmented."""
    adapter = family(kind)
    boxes = config.tiling().boxes(*pixels.shape[:2]) if isinstance(config, ModelConfig) else []
    if len(boxes) <= 1:
        (output,) = adapter.predict(model, [whole(pixels)], config=config)
        return output
    parts, cellprob = [], np.zeros(pixels.shape[:2], np.float32)
    for box in boxes:
        (part,) = adapter.predict(model, [crop(pixels, box)], config=config)
        parts.append((box, part.masks))
        r, c, h, w = box
        cellprob[r : r + h, c : c + w] = part.cellprob
    masks = stitch(parts, pixels.shape[:2])
    measures = {"n_objects": float(count_objects(masks)), "tiles": float(len(boxes))}
    return Output(measures=measures, masks=masks, cellprob=cellprob)


def predict_together(kind: str, model, config, images: Iterable[tuple[Any, np.ndarray]]):
    """``(key, pixels, output)`` of each ``(key, pixels)`` of ``images``: the images that the
    model gains from taking together (its family's ``shared``: on a GPU, images of one size
    share the forward passes) wait and are predicted in one call after the last; the others
    come as they are read, with ``output`` None: the caller predicts each alone
    (:func:`predict_one`, e.g. in tiles) before the next is read, so that only the shared
    images wait in memory."""
    adapter = family(kind)
    waiting: dict = {}
    for key, pixels in images:
        if adapter.shared(model, config, pixels.shape[:2]) > 1:
            waiting[key] = pixels
        else:
            yield key, pixels, None
    outputs = adapter.predict(model, list(waiting.values()), config=config) if waiting else []
    for (key, pixels), output in zip(waiting.items(), outputs, strict=True):
        yield key, pixels, output


def shares(kind: str, model, config) -> bool:
    """Whether the model gains from taking images together (:func:`predict_together`)."""
    return family(kind).shared(model, config) > 1


def lazy_above(config) -> int:
    """Images with a side above this are read tile by tile (those that are segmented so)."""
    return config.predict_tile_above if isinstance(config, ModelConfig) else 1 << 62


@dataclass(frozen=True)
class _Job:
    """One image to predict: all a worker needs (it never opens the study's database)."""

    path: Path
    folder: Path
    out: Path
    model: ModelRef
    config: object  # the family's section of the config (frozen)
    classes: tuple[str, ...] = ()  # pixel classes (semantic), the background first
    box_classes: tuple[str, ...] = ()  # object classes (detection)

    @property
    def files(self) -> tuple[Path]:
        """The file it reads (:func:`loop.core.readahead.warm_job` reads it ahead)."""
        return (self.path,)


def _predict_job(job: _Job) -> dict:
    """The prediction row of one image (its label TIFF written, atomically, under ``out``)."""
    record: dict = {}
    pixels = _read(job, record)
    if pixels is None:
        return record
    return _row(job, record, predict_one(job.model.kind, job.model.load(), pixels, job.config))


def _predict_jobs(jobs: list[_Job]) -> Iterator[dict]:
    """:func:`_predict_job` of each job, in order (one model and config): when the model gains
    from it, the images of the list are predicted together (:func:`predict_together`)."""
    model, kind, config = jobs[0].model.load(), jobs[0].model.kind, jobs[0].config
    if len(jobs) < 2 or not shares(kind, model, config):
        yield from map(_predict_job, jobs)
        return
    records: list[dict] = [{} for _ in jobs]

    def readable():
        for i, job in enumerate(jobs):
            pixels = _read(job, records[i])
            if pixels is not None:
                yield i, pixels

    for i, pixels, output in predict_together(kind, model, config, readable()):
        _row(
            jobs[i],
            records[i],
            output if output is not None else predict_one(kind, model, pixels, config),
        )
    yield from records


def _read(job: _Job, record: dict):
    """The pixels of the job's image, or None when it cannot be read (said in ``record``)."""
    from loop.errors import ImageError

    try:
        pixels = open_image(job.path, lazy_above=lazy_above(job.config))
    except ImageError as exc:
        record["error"] = str(exc)
        return None
    if missing_note(pixels):
        record["warning"] = missing_note(pixels)
    return pixels


def _row(job: _Job, record: dict, output: Output) -> dict:
    """``record`` with the prediction ``output`` of the job's image (its label TIFF written)."""
    labels = output.masks if output.masks is not None else output.classmap
    if labels is not None:
        target = job.out / job.path.relative_to(job.folder).with_suffix(".tif")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_labels(target, labels)
        record["labels"] = str(target.relative_to(job.out))
    if output.classmap is not None:  # class indices; the share of the image of each class
        for name, (_, fraction) in class_areas(output.classmap, job.classes).items():
            record[f"fraction.{name}"] = fraction
    elif output.masks is not None:
        record["n_objects"] = int(output.measures["n_objects"])
    elif output.boxes is not None:
        record.update(detection_rows(output, job.box_classes))
    else:
        record["class"] = output.klass
        record["confidence"] = output.confidence
    return record


def detection_rows(output: Output, classes: tuple[str, ...]) -> dict:
    """A detector's output as a prediction row: the count of each class (``count.<class>``),
    ``n_objects``, and ``detections``: one dict per box scoring the model's threshold or more
    (class, corners, centre, score)."""
    keep = output.box_scores >= output.box_threshold
    found = [
        {
            "class": classes[int(k)],
            "x1": round(float(b[0]), 1),
            "y1": round(float(b[1]), 1),
            "x2": round(float(b[2]), 1),
            "y2": round(float(b[3]), 1),
            "cx": round(float(b[0] + b[2]) / 2, 1),
            "cy": round(float(b[1] + b[3]) / 2, 1),
            "score": round(float(s), 4),
        }
        for b, k, s in zip(
            output.boxes[keep], output.box_classes[keep], output.box_scores[keep], strict=True
        )
    ]
    counts = {f"count.{name}": sum(d["class"] == name for d in found) for name in classes}
    return {"n_objects": len(found), **counts, "detections": found}


def predict_folder(
    study: Study,
    folder: str | Path,
    out: str | Path,
    *,
    model_id: int | None = None,
    gpu: bool | None = None,
    engine: Engine = Engine(),
    progress: Progress = _noop,
) -> list[dict]:
    """Label TIFFs (segmentation), class-index TIFFs (semantic), boxes (detection) or classes
    for every image file in ``folder``.

    Writes ``out/<stem>.tif`` per image (segmentation, semantic) and ``out/predictions.csv``
    with the model id and sha256 on every row (detection: also ``out/detections.csv``, one row
    per box, and ``count.<class>`` per image). Unreadable files are reported, not fatal.
    ``engine``: in this process, or on the worker processes of a Dask cluster
    (:mod:`loop.learn.engine`).

    Returns
    -------
    list of dict
        One row per file: ``file``, ``model_id``, ``model_sha256``, ``n_objects`` or
        ``class`` and ``confidence`` or the share of the image of each pixel class
        (``fraction.<class>``), or ``error``.
    """
    import csv

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder of images")
    row = model_row(study, model_id)
    model = ModelRef.of(study, row, gpu)
    model.load()  # fail early
    config = family(row["kind"]).settings(study.config)
    classes, objects = pixel_classes(study.config), box_classes(study.config)
    files = find_images(folder, study.config.ingest.extensions, stores=True)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(path, folder, out, model, config, classes, objects) for path in files]
    rows = []
    for i, outcome in run_each(
        _predict_jobs,
        jobs,
        engine=engine,
        progress=lambda d, t: progress("predicting", d, t),
        prefetch=warm_job,
        many=True,  # a task's images may share the GPU's forward passes
    ):
        if isinstance(outcome, TaskFailed):
            outcome = {"error": f"failed twice on the cluster: {outcome.error}"}
        rows.append(
            {
                "file": str(files[i].relative_to(folder)),
                "model_id": row["id"],
                "model_sha256": row["sha256"],
                **outcome,
            }
        )
    columns = [
        "file",
        "model_id",
        "model_sha256",
        "n_objects",
        "labels",
        "class",
        "confidence",
        *(f"fraction.{name}" for name in classes),
        *(f"count.{name}" for name in objects),
        "error",
        "warning",
    ]
    detections = [{"file": r["file"], **d} for r in rows for d in r.pop("detections", None) or ()]
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    if objects:
        with open(out / "detections.csv", "w", newline="") as handle:
            fields = ["file", "class", "x1", "y1", "x2", "y2", "cx", "cy", "score"]
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(detections)
    return rows
