"""Object detection: a box and a class for every object, trained with a centre-heatmap
detector (:mod:`loop.models.centernet`). The classes are ``[labels] object`` and ``others``;
ground truth comes as boxes (``loop ingest --boxes``: VOC, COCO, CSV) or as instance masks
turned into boxes (``--masks``)."""

from loop.core.images import count_objects
from loop.tasks.base import Measure, Task


def object_classes(labels) -> tuple[str, ...]:
    """The object classes of a detection study, by index: ``[labels] object``, then
    ``others``."""
    return (labels.object, *labels.others)


def match_radius(config) -> float | None:
    """How detections of a study are matched: None (boxes, by IoU) or, for points
    (``[detection] shape = "point"``), the distance in pixels within which two points are
    one object (:func:`loop.core.boxes.overlap`)."""
    detection = config.detection
    return detection.point_radius if detection.shape == "point" else None


def instructions(labels) -> str:
    """Draw a box around every object (or mark its centre); correct the model's."""
    names = " / ".join(object_classes(labels))
    return (
        f"Draw a tight box around every {names}, with its class (in a project of points: "
        "click its centre). The model's boxes or points are drawn already: correct them "
        "(move or resize loose ones, delete false ones, add the missed ones, change a wrong "
        "class). An object cut by the picture's edge gets a box up to the edge."
    )


DETECTION = Task(
    name="detection",
    summary="boxes around objects",
    family="centernet",
    control="RectangleLabels",
    label_kind="boxes",
    headline="mean_ap",
    model_figure="f1",
    truth_figure="f1",
    legend="score: held-out AP@0.5 of the boxes, the mean over classes (no threshold); F1: "
    "held-out F1 at IoU 0.5 (all classes, at the model's threshold), next to agree: the "
    "annotators' pairwise F1 on the batch; cons.: consensus vs ground truth (F1)",
    measures={
        "entropy": Measure(
            "entropy",
            "forward",
            "binary entropy of the detections' scores, summed over the image: how many objects "
            "the model is unsure of (the image and its flipped copy averaged)",
        ),
        "flip": Measure(
            "flip",
            "forward",
            "disagreement of the class heatmaps between the image and its flipped copy at the "
            "detections, summed (2 forward passes)",
        ),
        "ambiguous": Measure(
            "ambiguous",
            "forward",
            "the number of detections whose score lies within 0.15 of detection.threshold",
        ),
    },
    shortlist_by="entropy",
    default_strategy="auto",
    auto=("typiclust", "entropy"),
    ingest_options=frozenset({"masks", "boxes"}),
    what="{object} boxes",
    gallery=True,
    regions=True,
    instructions=instructions,
    control_by=lambda config: (
        "KeyPointLabels" if config.detection.shape == "point" else "RectangleLabels"
    ),
    count_truth=lambda mask, labels: count_objects(mask),
)
