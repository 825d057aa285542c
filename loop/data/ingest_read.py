"""Reading one file of an ingest: the image, its mask or boxes, its class and its metadata,
checked, before anything touches the study's database (:mod:`loop.data.ingest` writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loop.core.images import (
    class_of,
    file_sha256,
    image_info,
    lookup,
    read_image,
    read_mask,
    read_sidecar,
)
from loop.data.box_files import truth_file
from loop.data.find import find_mask
from loop.data.metadata import clean_metadata
from loop.errors import BadMask, MissingClass, OutsideRoot
from loop.study import Study
from loop.tasks import task_of


@dataclass(frozen=True)
class Found:
    """Everything read from disk for one image, before touching the database."""

    rel: str
    info: object
    metadata: dict
    mask_path: str | None
    mask_sha: str | None
    n_objects: int | None
    klass: str | None
    kind: str = "mask"  # of the truth label: "mask" (a label image) or "boxes" (a box file)


@dataclass(frozen=True)
class Reader:
    """How the files of one ingest are read: the study, the data root and what was given
    with the images (a masks folder, a box table, metadata and labels tables, classes from
    folders, sidecars)."""

    study: Study
    root: Path
    masks: Path | None = None
    boxes: object = None  # loop.data.box_files.BoxTable
    metadata_index: dict | None = None
    labels_index: dict | None = None
    classes_from_folders: bool = False
    sidecars: bool = True

    def read(self, path: Path, notes: list[str]) -> Found:
        """The image at ``path`` with all that belongs to it; boxes left out are appended to
        ``notes``.

        Raises
        ------
        ImageError
            ``OutsideRoot``, an unreadable image, ``BadMask``, ``MissingClass``, ...: the file
            is skipped with that reason.
        """
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise OutsideRoot(path, f"resolves to {resolved}, outside the data root {self.root}")
        rel = path.relative_to(self.root)
        array = read_image(path)
        info = image_info(path, array)

        meta = {}
        if self.sidecars:
            meta.update(clean_metadata(read_sidecar(path)))
        if self.metadata_index is not None:
            meta.update(clean_metadata(lookup(self.metadata_index, rel.as_posix())))

        mask_path = mask_sha = n_objects = None
        if self.masks is not None:
            found = find_mask(self.masks, rel, self.study.config.ingest.mask_suffixes)
            if found is not None:
                mask = read_mask(found, (info.height, info.width))
                try:
                    n_objects = task_of(self.study.config.task).count_truth(
                        mask, self.study.config.labels
                    )
                except ValueError as exc:
                    raise BadMask(found, str(exc)) from None
                mask_path, mask_sha = str(found.resolve()), file_sha256(found)
        kind = "mask"
        if self.boxes is not None and (rows := self.boxes.of(rel.name)) is not None:
            mask_path, mask_sha, n_objects, skipped = truth_file(
                self.study, rows, info.height, info.width
            )
            notes.extend(f"{path}: {reason}" for reason in skipped)
            kind = "boxes"

        klass = None
        if self.classes_from_folders:
            if rel.parent == Path("."):
                raise MissingClass(
                    path,
                    "is not inside a class folder (--classes-from-folders expects "
                    "<root>/<class>/<image>)",
                )
            klass = rel.parts[0]
        elif self.labels_index is not None:
            row = lookup(self.labels_index, rel.as_posix())
            if row is not None:
                klass = class_of(row, "labels table")
        return Found(rel.as_posix(), info, meta, mask_path, mask_sha, n_objects, klass, kind)
