"""The models table: the current model of an arm, a model by id, recording a trained model,
the software it was trained with, and loading a model's file through its family.
"""

from __future__ import annotations

from pathlib import Path

from loop.core.images import file_sha256
from loop.errors import NoModel
from loop.learn.engine import ModelRef
from loop.store import dumps, models, utcnow
from loop.study import Study

MODELS_DIR = "models"


def current_model(study: Study, arm: str = "main") -> dict | None:
    """The latest accepted model of the study's task trained for ``arm``, or None."""
    return models.latest_accepted(study.store, study.config.task, arm)


def model_row(study: Study, model_id: int | None = None) -> dict:
    """A model row by id, or the current model.

    Raises
    ------
    NoModel
        When the study has no (such) model.
    """
    if model_id is None:
        row = current_model(study)
        if row is None:
            raise NoModel("the study has no trained model yet: run `loop train` first")
        return row
    row = models.model(study.store, model_id)
    if row is None:
        raise NoModel(f"no model with id {model_id}; `loop status --json` lists the models")
    return row


def software_versions() -> dict:
    """Versions of loop and of the packages its models depend on (recorded with each model
    and each measurement run)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for package in (
        "loop-al",
        "torch",
        "cellpose",
        "scikit-learn",
        "scikit-image",
        "modAL-python",
        "numpy",
    ):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return out


def _record(
    study: Study,
    *,
    kind: str,
    path: Path,
    params: dict,
    train_ids,
    val_ids,
    losses,
    parent: dict | None,
    status: str,
    decision: str,
    val: dict,
    digest: str,
    device: str,
    seconds: float,
    arm: str,
) -> int:
    row = {
        "kind": kind,
        "task": study.config.task,
        "path": str(path.relative_to(study.path)),
        "sha256": file_sha256(path),
        "params": dumps(params),
        "versions": dumps(software_versions()),
        "train_image_ids": dumps(sorted(train_ids)),
        "val_image_ids": dumps(sorted(val_ids)),
        "losses": dumps(losses),
        "parent_id": parent["id"] if parent else None,
        "status": status,
        "decision": decision,
        "val_metrics": dumps(val),
        "label_sha256": digest,
        "arm": arm,
        "device": device,
        "seconds": seconds,
        "created_at": utcnow(),
    }
    return models.add(study.store, row)


def _next_path(study: Study, stem: str, suffix: str) -> Path:
    folder = study.path / MODELS_DIR
    folder.mkdir(exist_ok=True)
    n = models.count(study.store) + 1
    while (folder / f"{stem}-{n:04d}{suffix}").exists():
        n += 1
    return folder / f"{stem}-{n:04d}{suffix}"


def load_model(study: Study, row: dict, gpu: bool | None = None):
    """The model object of a models row, loaded once per open study and device (a Cellpose
    network or a :class:`~loop.models.classifier.Classifier`); the same object that scoring,
    predicting and measuring in this process use (:class:`loop.learn.engine.ModelRef`).

    Raises
    ------
    ModelError
        When the file is missing, or changed since it was recorded.
    """
    key = (row["id"], row["sha256"], gpu)
    if key not in study.models:
        study.models[key] = ModelRef.of(study, row, gpu).load()
    return study.models[key]
