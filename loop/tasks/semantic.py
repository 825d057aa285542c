"""Semantic segmentation: every pixel given a class (``[labels] classes``), trained with a
U-Net (MONAI's BasicUNet)."""

from loop.errors import ConfigError
from loop.tasks.base import Measure, Task


def instructions(labels) -> str:
    """Paint every pixel of each class but the background; correct the model's painting."""
    background, *others = labels.classes or ("background",)
    return (
        f"Paint each {' / '.join(others) or 'foreground'} pixel with its class's brush; leave "
        f"{background} unpainted. The model's painting is drawn already: correct it (erase "
        "wrong strokes, paint what it missed). A picture with a yellow frame asks for that "
        "region only: paint every pixel inside the frame right; what lies outside it is not "
        "used."
    )


def read_truth(mask, labels):
    """(class indices, known pixels) of a ground-truth label image, read as the study's
    ``[labels]`` says: ``classes``, ``ignore`` and ``masks`` (class indices, 0/255, or
    instance labels); raises ``ValueError`` for a value that is no class."""
    from loop.core.classmaps import class_index

    return class_index(
        mask,
        len(labels.classes),
        ignore=None if labels.ignore < 0 else labels.ignore,
        instances=labels.masks == "instances",
        values=labels.class_values,
    )


def count_truth(mask, labels) -> int:
    """The classes present in a ground-truth label image (:func:`read_truth`)."""
    import numpy as np

    index, known = read_truth(mask, labels)
    return int(np.unique(index[known]).size)


def check(config) -> None:
    """A semantic study names its classes."""
    if len(config.labels.classes) < 2:
        raise ConfigError(
            'task = "semantic" needs its pixel classes: set [labels] classes = '
            '["background", "nucleus"] (the background first)'
        )


SEMANTIC = Task(
    name="semantic",
    summary="a class for every pixel",
    family="unet",
    control="BrushLabels",
    label_kind="classmap",
    headline="mean_dice",
    model_figure="mean_dice",
    truth_figure="dice",
    legend="score and F1: held-out mean Dice over the foreground classes, next to agree: the "
    "annotators' pairwise mean Dice on the batch; cons.: consensus vs ground truth (Dice)",
    measures={
        "entropy": Measure(
            "entropy",
            "forward",
            "mean pixel entropy of the class probabilities (the image and its flipped copy "
            "averaged), over the image",
        ),
        "flip": Measure(
            "flip",
            "forward",
            "mean disagreement of the class probabilities between the image and its flipped "
            "copy (2 forward passes)",
        ),
    },
    shortlist_by="entropy",
    default_strategy="auto",
    auto=("typiclust", "flip+clue"),
    ingest_options=frozenset({"masks"}),
    what="pixel classes",
    regions=True,
    instructions=instructions,
    classes=("background", "foreground"),
    count_truth=count_truth,
    check=check,
)
