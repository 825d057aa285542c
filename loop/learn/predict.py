"""Predict a folder of images with the study's model: label TIFFs or classes, and
``predictions.csv`` with the model's id and sha256 on every row.
"""

from __future__ import annotations

from pathlib import Path

from loop.core.images import read_image, write_labels
from loop.data.ingest import find_images
from loop.errors import ModelError
from loop.learn.labels import Progress, _noop
from loop.learn.registry import load_model, model_row
from loop.models.family import family
from loop.study import Study


def predict_folder(
    study: Study,
    folder: str | Path,
    out: str | Path,
    *,
    model_id: int | None = None,
    gpu: bool | None = None,
    progress: Progress = _noop,
) -> list[dict]:
    """Label TIFFs (segmentation) or classes for every image file in ``folder``.

    Writes ``out/<stem>.tif`` per image (segmentation) and ``out/predictions.csv`` with the
    model id and sha256 on every row. Unreadable files are reported, not fatal.

    Returns
    -------
    list of dict
        One row per file: ``file``, ``model_id``, ``model_sha256``, ``n_objects`` or
        ``class`` and ``confidence``, or ``error``.
    """
    import csv

    from loop.errors import ImageError

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder of images")
    row = model_row(study, model_id)
    model = load_model(study, row, gpu)
    adapter = family(row["kind"])
    config = adapter.settings(study.config)
    files = find_images(folder, study.config.ingest.extensions)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(files):
        record = {
            "file": str(path.relative_to(folder)),
            "model_id": row["id"],
            "model_sha256": row["sha256"],
        }
        try:
            pixels = read_image(path)
        except ImageError as exc:
            record["error"] = str(exc)
        else:
            (output,) = adapter.predict(model, [pixels], config=config)
            if output.masks is not None:
                target = out / path.relative_to(folder).with_suffix(".tif")
                target.parent.mkdir(parents=True, exist_ok=True)
                write_labels(target, output.masks)
                record["n_objects"] = int(output.measures["n_objects"])
                record["labels"] = str(target.relative_to(out))
            else:
                record["class"] = output.klass
                record["confidence"] = output.confidence
        rows.append(record)
        progress("predicting", i + 1, len(files))
    columns = [
        "file",
        "model_id",
        "model_sha256",
        "n_objects",
        "labels",
        "class",
        "confidence",
        "error",
    ]
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows
