"""One image of ``loop measure``, as a worker (or this process) measures it: read, segment
with the study's model (or read its label image), write the label image, measure its objects.

Each image's stages are timed (:mod:`loop.core.stages`: read, normalise, network, dynamics,
flow check, write, measure, and the rest as ``other``) and the seconds travel back with its
rows, so that ``loop measure --profile`` says where a run's time went, on every worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loop.config import ModelConfig
from loop.core.classmaps import class_areas
from loop.core.images import file_sha256, read_mask, write_labels
from loop.core.lazy import missing_note, open_image, store_sha256
from loop.core.objects import measure_objects
from loop.core.stages import add, collecting, stage
from loop.errors import ImageError, MeasureError
from loop.faults import crash_points
from loop.learn.engine import ModelRef
from loop.learn.predict import lazy_above, predict_one, predict_together, shares

WORKER_CRASH = crash_points()  # counts this process's images


@dataclass(frozen=True)
class MeasureJob:
    """One image to measure: all a worker needs (it never opens the study's database)."""

    path: Path
    rel: str
    out: Path
    model: ModelRef | None  # None: the labels are read from ``masks``
    config: ModelConfig
    masks: Path | None
    pixel_size: float | None
    classes: tuple[str, ...] = ()  # pixel classes (semantic), the background first

    @property
    def label_file(self) -> Path | None:
        """The label image it measures (``masks``/<rel>.tif), or None: it segments."""
        return None if self.masks is None else Path(self.masks) / Path(self.rel).with_suffix(".tif")

    @property
    def files(self) -> tuple[Path, ...]:
        """The files it reads (:func:`loop.core.readahead.warm_job` reads them ahead)."""
        return (self.path,) if self.masks is None else (self.path, self.label_file)


def measure_job(job: MeasureJob) -> tuple[dict, list[dict] | None, str | None, dict]:
    """(the image's row, its object rows or None when it was skipped, the device used, the
    seconds of each stage): a file that cannot be read or has no label image is a skipped
    row, not a failure."""
    record = {"file": job.rel}
    model, rows = None, None
    with collecting(rest="other") as seconds:
        try:
            if job.masks is None:
                with stage("model load"):  # once per process (cached)
                    model = job.model.load()
            rows = _measured(job, record, model, _read(job, record))
        except (ImageError, MeasureError) as exc:
            record["error"] = str(exc)
    WORKER_CRASH.hit("measure.worker")  # tests: a worker killed after its image's work
    device = None if model is None or rows is None else str(model.device)
    return record, rows, device, dict(seconds)


Result = tuple[dict, list[dict] | None, str | None, dict]
"""What :func:`measure_job` gives: (the image's row, its object rows or None, device, seconds)."""


def measure_jobs(jobs: list[MeasureJob]) -> Iterator[Result]:
    """:func:`measure_job` of each job, in order (all of one call: one model and config).

    When the model gains from taking images together (the family's ``shared``: on a GPU,
    images of one size share its forward passes), the list's images are segmented as
    :func:`loop.learn.predict.predict_together` does (only those shared wait in memory: at
    most a task's, or 16 in one process) and the results come when the list is done, the
    seconds of its stages given with its first image (the profile adds them up). Otherwise
    (the CPU), one image after the other, each result as it is done.
    """
    first = jobs[0]
    if first.masks is not None or len(jobs) < 2:
        yield from map(measure_job, jobs)
        return
    with collecting() as loading, stage("model load"):  # once per process (cached)
        model = first.model.load()
    if not shares(first.model.kind, model, first.config):
        for k, job in enumerate(jobs):
            record, rows, device, seconds = measure_job(job)
            yield record, rows, device, add(seconds, loading) if k == 0 else seconds
        return
    with collecting(rest="other") as seconds:
        records = [{"file": job.rel} for job in jobs]
        rows: list = [None] * len(jobs)

        def readable():
            for i, job in enumerate(jobs):
                try:
                    yield i, _read(job, records[i])
                except ImageError as exc:
                    records[i]["error"] = str(exc)

        found = predict_together(first.model.kind, model, first.config, readable())
        for i, pixels, output in found:  # output None: segmented alone (e.g. in tiles)
            try:
                rows[i] = _measured(jobs[i], records[i], model, pixels, output)
            except (ImageError, MeasureError) as exc:
                records[i]["error"] = str(exc)
    add(seconds, loading)
    device = str(model.device)
    for k, (record, objects) in enumerate(zip(records, rows, strict=True)):
        WORKER_CRASH.hit("measure.worker")
        yield record, objects, None if objects is None else device, dict(seconds) if k == 0 else {}


def _read(job: MeasureJob, record: dict):
    """The pixels of the job's image (read by tiles or bands when large), its file facts put
    into ``record``."""
    path = job.path
    with stage("read"):
        pixels = open_image(path, lazy_above=lazy_above(job.config))  # read by tiles/bands
        record.update(
            sha256=store_sha256(path) if path.is_dir() else file_sha256(path),
            height=pixels.shape[0],
            width=pixels.shape[1],
            channels=1 if pixels.ndim == 2 else pixels.shape[2],
        )
    if missing_note(pixels):
        record["warning"] = missing_note(pixels)
    return pixels


def _measured(job: MeasureJob, record: dict, model, pixels, output=None) -> list[dict]:
    """The object rows of one image (its label image goes into ``record``): segmented by
    ``model`` (or given as its prediction ``output``), or read from ``job.masks``."""
    from loop.models.cellpose_measures import cell_probability

    rel, out, masks = job.rel, job.out, job.masks
    probability = None
    if masks is None:
        seg = output
        if seg is None:
            seg = predict_one(job.model.kind, model, pixels, job.config)
        labels = seg.masks if seg.classmap is None else seg.classmap
        probability = cell_probability(seg.cellprob) if seg.classmap is None else seg.probability
        target = out / "labels" / Path(rel).with_suffix(".tif")
        with stage("write"):
            target.parent.mkdir(parents=True, exist_ok=True)
            write_labels(target, labels)
        record["labels"] = target.relative_to(out).as_posix()
    else:
        source = job.label_file
        if not source.is_file():
            raise MeasureError(f"no label image {source} for it")
        with stage("read"):
            labels = read_mask(source, pixels.shape[:2])
        record["labels"] = str(source)
    with stage("measure"):
        if job.classes:
            return measure_classes(labels, job.classes, record, pixels, job.pixel_size, probability)
        return measure_objects(labels, pixels, pixel_size=job.pixel_size, probability=probability)


def measure_classes(classmap, classes, record: dict, pixels, pixel_size, probability) -> list[dict]:
    """A class map's area and area fraction of each class (into the image's ``record``:
    ``area.<class>``, ``fraction.<class>``, and ``area_um2.<class>`` with a pixel size) and
    one row per connected region of each class but the background (its ``class`` and the
    measurements of :func:`loop.core.objects.measure_objects`).

    Raises
    ------
    MeasureError
        When the label image has a value that is no class.
    """
    from skimage.measure import label

    if classmap.size and int(classmap.max()) >= len(classes):
        raise MeasureError(
            f"its label image has value {int(classmap.max())}, but the study has "
            f"{len(classes)} classes (0..{len(classes) - 1}): give class-index images"
        )
    rows = []
    for k, (name, (area, fraction)) in enumerate(class_areas(classmap, classes).items()):
        record[f"area.{name}"] = area
        record[f"fraction.{name}"] = fraction
        if pixel_size:
            record[f"area_um2.{name}"] = float(area * pixel_size**2)
        if k == 0 or not area:
            continue
        regions = label(classmap == k, connectivity=1)
        for row in measure_objects(regions, pixels, pixel_size=pixel_size, probability=probability):
            rows.append({"class": name, **row})
    return rows
