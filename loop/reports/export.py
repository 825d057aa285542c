"""Export the labels the loop made: consensus (or adjudicated) label TIFFs (or, for boxes,
``boxes.csv`` and ``coco.json``) and provenance.

One label per image, adjudicated over consensus (``--truth`` adds images whose only label is
the ground truth). Label images are 16/32-bit TIFFs (0 = background, 1..N = objects) that
napari and Fiji open as label layers; ``provenance.csv`` says where each came from.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loop.core.files import atomic_path
from loop.core.images import read_mask
from loop.core.object_classes import class_of_labels
from loop.core.object_classes import counts as class_counts
from loop.errors import NothingToExport
from loop.store.labels import labels_from
from loop.study import Study
from loop.tasks import box_classes

EXPORT_SOURCES = ("adjudicated", "consensus")
COLUMNS = (
    "image_id",
    "image",
    "label_file",
    "known_file",
    "known_fraction",
    "class",
    "n_objects",
    "object_classes",
    "source",
    "method",
    "annotators",
    "reviewer",
    "round",
    "agreement",
    "label_version",
    "updated_at",
)


@dataclass
class ExportReport:
    folder: Path
    n_labels: int
    by_source: dict[str, int]
    provenance: Path
    objects: Path | None = None  # objects.csv: the class of each object (several kinds)


def _agreement(value) -> float | str:
    """A label's agreement for the table: its own, or the mean over the regions it merges."""
    if isinstance(value, dict):
        values = [v for v in value.values() if v is not None]
        value = sum(values) / len(values) if values else None
    return "" if value is None else value


def _safe_name(image: dict) -> str:
    stem = Path(image["path"]).with_suffix("").as_posix().replace("/", "__")
    return f"{stem}.tif"


def export(
    study: Study,
    folder: str | Path,
    *,
    truth: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write one label per image into ``folder`` plus ``provenance.csv``.

    Re-running overwrites the same files (same names), so an export can be refreshed.

    Raises
    ------
    NothingToExport
        When no image has a label of the exported sources.
    """
    sources = EXPORT_SOURCES + (("truth",) if truth else ())
    rank = {s: i for i, s in enumerate(sources)}
    best: dict[int, dict] = {}
    for row in labels_from(study.store, sources):
        held = best.get(row["image_id"])
        if held is None or rank[row["source"]] < rank[held["source"]]:
            best[row["image_id"]] = row
    if not best:
        raise NothingToExport(
            "no consensus or adjudicated labels to export: run `loop pull` and `loop agree` "
            "first (or pass --truth to export ground truth too)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    boxed = {}
    if box_classes(study.config):  # detection: boxes.csv and coco.json, no label images
        from loop.reports.export_boxes import write_boxes

        *_, boxed = write_boxes(study, folder, best)
    rows, by_source, objects = [], {}, []
    main = study.config.labels.object
    for i, (image_id, label) in enumerate(sorted(best.items())):
        image = study.store.image(image_id)
        provenance = json.loads(label["provenance"] or "{}")
        label_file, kinds, known_file = "", "", ""
        if image_id in boxed:
            label_file = "coco.json"
        elif label["mask_path"]:
            label_file = _safe_name(image)
            with atomic_path(folder / label_file) as tmp:  # never half a TIFF, named when it fails
                shutil.copyfile(study.resolve(label["mask_path"]), tmp)
            if label.get("known_path"):  # a partial label: which pixels it speaks for
                known_file = label_file.removesuffix(".tif") + "_known.tif"
                with atomic_path(folder / known_file) as tmp:
                    shutil.copyfile(study.resolve(label["known_path"]), tmp)
            if label.get("object_classes") is not None:
                mask = read_mask(folder / label_file, (image["height"], image["width"]))
                named = class_of_labels(mask, json.loads(label["object_classes"]), default=main)
                objects += [(image_id, label_file, k, c) for k, c in named.items()]
                tally = class_counts(mask, json.loads(label["object_classes"]), default=main)
                kinds = " ".join(f"{c}={n}" for c, n in sorted(tally.items()))
        rows.append(
            {
                "image_id": image_id,
                "image": str(Path(image["root"]) / image["path"]),
                "label_file": label_file,
                "known_file": known_file,
                "known_fraction": label.get("known_fraction") or "",
                "class": label["class"] or "",
                "n_objects": boxed.get(
                    image_id, "" if label["n_objects"] is None else label["n_objects"]
                ),
                "object_classes": kinds,
                "source": label["source"],
                "method": label["method"] or provenance.get("method", ""),
                "annotators": " ".join(provenance.get("annotators", [])),
                "reviewer": provenance.get("reviewer", ""),
                "round": "" if provenance.get("round") is None else provenance["round"],
                "agreement": _agreement(provenance.get("agreement")),
                "label_version": label["version"],
                "updated_at": label["updated_at"] or label["created_at"] or "",
            }
        )
        by_source[label["source"]] = by_source.get(label["source"], 0) + 1
        if progress:
            progress(i + 1, len(best))
    provenance_path = folder / "provenance.csv"
    with atomic_path(provenance_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    objects_path = None
    if objects:
        objects_path = folder / "objects.csv"
        with atomic_path(objects_path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "label_file", "label", "class"])
            writer.writerows(objects)
    return ExportReport(folder, len(rows), by_source, provenance_path, objects_path)
