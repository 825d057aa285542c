"""Whole-image classification: one class per image, a classifier on image features."""

from loop.tasks.base import Measure, Task

CLASSIFICATION = Task(
    name="classification",
    summary="one class per image",
    family="classifier",
    control="Choices",
    label_kind="class",
    headline="macro_f1",
    model_figure="accuracy",
    truth_figure="correct",
    legend="score: held-out macro-F1; F1: the model's accuracy, next to agree: the share of "
    "annotator pairs that agree; cons.: consensus vs ground truth (share correct)",
    measures={
        "least-confident": Measure(
            "least-confident",
            "forward",
            "1 - max class probability (Settles 2009; modAL uncertainty_sampling)",
        ),
        "margin": Measure(
            "margin", "forward", "1 - gap between the two most likely classes (modAL margin)"
        ),
        "entropy": Measure(
            "entropy", "forward", "entropy of the class probabilities (modAL entropy_sampling)"
        ),
        "committee": Measure(
            "committee", "forward", "BALD disagreement of a bootstrap committee (Houlsby 2011)"
        ),
    },
    shortlist_by="entropy",
    default_strategy="entropy+diversity",
    auto=("typiclust", "entropy+clue"),
    stratify=("class",),
    ingest_options=frozenset({"classes"}),
    fits_to_convergence=True,
    what="image classes",
    instructions=lambda labels: "Choose the one class that describes the whole image.",
)
