"""Ingest a folder of images (with masks, classes and metadata) into a study.

Semantics
---------
- Every new image starts in the ``pool`` split.
- Masks or classes given at ingest are stored as ground truth (``labels.source = 'truth'``):
  used for evaluation and simulated annotators, and for training only once the image is in
  the ``labeled`` split.
- Each file is written in its own transaction, so a killed ingest leaves whole files only,
  and a re-run finishes the job: unchanged files add nothing; a changed image, mask, class
  or metadata updates the row, bumps its ``version`` and records the change.
- A bad file (empty, truncated, not an image, a bad mask, a duplicate, a path outside the data
  root) is skipped with a named reason, recorded in ``skipped``, and ingest goes on.

Each file is read and checked (:mod:`loop.data.ingest_read`) before its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loop.core.images import index_table, lookup, read_table
from loop.data.box_files import read_boxes
from loop.data.find import find_images
from loop.data.ingest_read import Found, Reader
from loop.errors import (
    BadSidecar,
    DataRootNotFound,
    DuplicateImage,
    ImageError,
    MetadataError,
    NothingIngested,
    TaskMismatch,
)
from loop.faults import crash_points
from loop.store import META_PREFIX, dumps, meta_column, utcnow
from loop.store.images import add_image, update_image
from loop.store.labels import add_truth, update_label
from loop.study import Study
from loop.tasks import names, task_of


@dataclass(frozen=True)
class Skip:
    """A file ingest could not use."""

    path: str
    reason: str
    message: str


@dataclass
class IngestReport:
    """What an ingest did. ``valid`` counts every usable image found, changed or not."""

    root: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    with_truth: int = 0
    skipped: list[Skip] = field(default_factory=list)
    unmatched_rows: list[str] = field(default_factory=list)
    box_notes: list[str] = field(default_factory=list)
    """Boxes left out (``--boxes``): the image, then why (a class the study lacks, outside
    the image, empty), and box files that could not be read."""
    without_column: list[str] = field(default_factory=list)
    """Metadata keys kept in ``images.metadata`` only: the study has the most columns."""

    @property
    def valid(self) -> int:
        return self.added + self.updated + self.unchanged


class _Ingest:
    """Writes the files of one ingest into its study, each in its own transaction."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.study = reader.study
        self.store = reader.study.store
        self.root = reader.root
        self.crash = crash_points()
        self.report = IngestReport(root=str(reader.root))
        self.checked_keys: set[str] = set()
        """Metadata keys whose column was made or found (or that have none: see below)."""
        self.meta_columns: set[str] = set()
        """The study's ``meta_*`` columns."""

    def read(self, path: Path) -> Found:
        """:meth:`Reader.read`, boxes left out noted in the report."""
        return self.reader.read(path, self.report.box_notes)

    # writing -----------------------------------------------------------------------------

    def write(self, found: Found) -> str:
        """Write one image in one transaction; returns added / updated / unchanged."""
        store, info = self.store, found.info
        other = store.image_by_sha(info.sha256)
        root = str(self.root)
        if other is not None and (other["root"], other["path"]) != (root, found.rel):
            raise DuplicateImage(
                self.root / found.rel,
                f"same content (sha256 {info.sha256[:12]}…) as {other['root']}/{other['path']}, "
                f"already image {other['id']}; remove one copy",
            )
        new_keys = set(found.metadata) - self.checked_keys
        if new_keys:
            self.report.without_column.extend(store.ensure_meta_columns(new_keys))
            self.checked_keys |= new_keys
            self.meta_columns = {META_PREFIX + k for k in store.meta_columns()}
        values = {meta_column(k): v for k, v in found.metadata.items()}
        existing = store.image_by_path(root, found.rel)
        old_keys = json.loads(existing["metadata"] or "{}") if existing else {}
        now = utcnow()
        row = {
            "root": root,
            "path": found.rel,
            "name": Path(found.rel).stem,
            "sha256": info.sha256,
            "height": info.height,
            "width": info.width,
            "channels": info.channels,
            "dtype": info.dtype,
            "nbytes": info.nbytes,
            "metadata": dumps(found.metadata),
            # only this image's keys and those it had (a key it lost is cleared): a study
            # with many keys never writes them all at once
            **{
                c: values.get(c)
                for c in {*values, *map(meta_column, old_keys)}
                if c in self.meta_columns
            },
        }
        with store.atomic():
            if existing is None:
                image_id = add_image(store, row, now=now)
                self.crash.hit("ingest.image")
                self._write_truth(image_id, found, now, old=None)
                outcome = "added"
            else:
                image_id = existing["id"]
                changed = False
                for fld, old, new in (
                    ("content", existing["sha256"], info.sha256),
                    ("metadata", existing["metadata"], row["metadata"]),
                ):
                    if old != new:
                        store.record_change(image_id, fld, old, new)
                        changed = True
                changed |= self._write_truth(image_id, found, now, old=store.truth(image_id))
                if changed:
                    update_image(store, existing, row, now=now)
                outcome = "updated" if changed else "unchanged"
            store.clear_skipped(str(self.root / found.rel))
        self.crash.hit("ingest.file")
        return outcome

    def _write_truth(self, image_id: int, found: Found, now: str, old: dict | None) -> bool:
        """Insert or update the ground-truth label; True when it changed."""
        if found.mask_path is not None:
            label = {
                "kind": found.kind,
                "mask_path": found.mask_path,
                "mask_sha256": found.mask_sha,
                "n_objects": found.n_objects,
                "class": None,
            }
            field_name, new_value = "mask", found.mask_sha
        elif found.klass is not None:
            label = {
                "kind": "class",
                "class": found.klass,
                "mask_path": None,
                "mask_sha256": None,
                "n_objects": None,
            }
            field_name, new_value = "class", found.klass
        else:
            return False  # nothing given this time: keep what the study has
        if old is None:
            add_truth(self.store, image_id, label, now=now)
            return True
        old_value = old["mask_sha256"] if field_name == "mask" else old["class"]
        if old_value == new_value and old["mask_path"] == label["mask_path"]:
            return False
        self.store.record_change(
            image_id,
            field_name,
            {"value": old_value, "path": old["mask_path"]},
            {"value": new_value, "path": label["mask_path"]},
        )
        update_label(self.store, old, label, now=now)
        return True

    def skip(self, path: Path, error: ImageError) -> None:
        message = error.args[0].split(": ", 1)[-1] if ": " in error.args[0] else error.args[0]
        skip = Skip(str(path), error.reason, message)
        self.report.skipped.append(skip)
        with self.store.atomic():
            self.store.record_skipped(skip.path, skip.reason, skip.message)


def ingest(
    study: Study,
    folder: str | Path,
    *,
    masks: str | Path | None = None,
    boxes: str | Path | None = None,
    metadata: str | Path | None = None,
    labels: str | Path | None = None,
    classes_from_folders: bool = False,
    sidecars: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest every image under ``folder`` into ``study``.

    Parameters
    ----------
    study : Study
    folder : path
        The data root. Image paths are stored relative to it.
    masks : path, optional
        Folder of label images, ``<stem>[_mask].tif`` per image: instance labels
        (segmentation), class indices (semantic: read as ``[labels]`` says; a value that is
        no class skips the image as ``bad-mask``).
    boxes : path, optional
        Box ground truth (detection): a folder of Pascal VOC ``.xml``, a COCO ``.json`` or a
        ``.csv`` (``image, class, x1, y1, x2, y2``), matched by file name (or stem); boxes of
        an unknown class or outside the image are left out, each noted in ``box_notes``.
    metadata : path, optional
        CSV or JSON table, one row per image, matched by ``id`` (file stem), ``filename`` or
        ``path``. Its columns become ``meta_<key>`` columns of ``images``.
    labels : path, optional
        CSV or JSON table of classes (classification): key column as for ``metadata`` and a
        ``class``/``label``/``category`` column.
    classes_from_folders : bool
        Classification: the class is the first folder under the root (ImageFolder layout).
    sidecars : bool
        Read ``<image>.json`` metadata next to each image.
    progress : callable(done, total), optional

    Returns
    -------
    IngestReport

    Raises
    ------
    DataRootNotFound
        ``folder`` is not a folder.
    TaskMismatch
        Masks for a classification study, or classes for a segmentation study.
    MetadataError
        A metadata or labels table that cannot be read.
    NothingIngested
        No valid image at all (every file skipped, or none found).
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise DataRootNotFound(f"{folder} is not a folder of images")
    task, accepts = study.config.task, task_of(study.config.task).ingest_options
    if masks is not None and "masks" not in accepts:
        takes = names(lambda t: "masks" in t.ingest_options)
        raise TaskMismatch(f"--masks is for {takes} studies; this study's task is {task}")
    if (classes_from_folders or labels is not None) and "classes" not in accepts:
        takes = names(lambda t: "classes" in t.ingest_options)
        raise TaskMismatch(
            f"classes (--classes-from-folders/--labels) are for {takes} studies; this "
            f"study's task is {task}"
        )
    if boxes is not None and "boxes" not in accepts:
        takes = names(lambda t: "boxes" in t.ingest_options)
        raise TaskMismatch(f"--boxes is for {takes} studies; this study's task is {task}")
    box_table = read_boxes(boxes) if boxes is not None else None
    masks_dir = None
    if masks is not None:
        masks_dir = Path(masks).resolve()
        if not masks_dir.is_dir():
            raise DataRootNotFound(f"masks folder {masks} is not a folder")
    metadata_index = index_table(read_table(metadata), metadata) if metadata else None
    labels_index = index_table(read_table(labels), labels) if labels else None

    reader = Reader(
        study,
        root,
        masks=masks_dir,
        boxes=box_table,
        metadata_index=metadata_index,
        labels_index=labels_index,
        classes_from_folders=classes_from_folders,
        sidecars=sidecars,
    )
    job = _Ingest(reader)
    if box_table is not None:
        job.report.box_notes.extend(f"{k}: {v}" for k, v in box_table.problems.items())
    job.meta_columns = {META_PREFIX + k for k in study.store.meta_columns()}
    files = find_images(root, study.config.ingest.extensions, exclude=masks_dir)
    matched_rows: set[int] = set()
    for done, path in enumerate(files, start=1):
        try:
            found = job.read(path)
            outcome = job.write(found)
        except ImageError as error:
            job.skip(path, error)
        except MetadataError as error:
            job.skip(path, BadSidecar(path, str(error)))
        else:
            setattr(job.report, outcome, getattr(job.report, outcome) + 1)
            job.report.with_truth += found.mask_path is not None or found.klass is not None
            if metadata_index is not None:
                row = lookup(metadata_index, found.rel)
                if row is not None:
                    matched_rows.add(id(row))
        if progress is not None:
            progress(done, len(files))
    if metadata_index is not None:
        job.report.unmatched_rows = [
            k for k, r in metadata_index.items() if id(r) not in matched_rows
        ]
    if job.report.valid == 0:
        reason = (
            f"no image files ({', '.join(study.config.ingest.extensions)}) under {root}"
            if not files
            else f"all {len(files)} files under {root} were skipped"
        )
        raise NothingIngested(f"nothing ingested: {reason}")
    return job.report
