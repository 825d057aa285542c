"""The study's model: what trains (:mod:`~loop.learn.labels`), the models table
(:mod:`~loop.learn.registry`), training, evaluation, pool scoring, folder prediction and
batch measurement. The glue between the store and the model families of :mod:`loop.models`.

Every step is idempotent: training with the same labels, configuration and seed returns the
recorded model; evaluations and scores are cached per model.
"""

from loop.learn.evaluate import evaluate
from loop.learn.labels import LABEL_PRIORITY, image_path, training_labels, validation_split
from loop.learn.measure import MeasureReport, measure_folder
from loop.learn.predict import predict_folder
from loop.learn.registry import current_model, load_model, model_row, software_versions
from loop.learn.score import ScoreReport, score
from loop.learn.train import TrainReport, train

__all__ = [
    "LABEL_PRIORITY",
    "MeasureReport",
    "ScoreReport",
    "TrainReport",
    "current_model",
    "evaluate",
    "image_path",
    "load_model",
    "measure_folder",
    "model_row",
    "predict_folder",
    "score",
    "software_versions",
    "train",
    "training_labels",
    "validation_split",
]
