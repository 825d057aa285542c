"""Instance segmentation: every object outlined (a label image), trained with Cellpose."""

from loop.core.images import count_objects
from loop.tasks.base import Measure, Task


def instructions(labels) -> str:
    """Outline every object, correcting the model's outlines; name the other kinds; check the
    doubtful ones first; in a framed region, only what touches the frame."""
    name = labels.object
    text = (
        f"Outline every {name} with the brush, one region per {name} (objects that touch "
        f"are separate regions). The model's outlines are drawn already: correct them "
        f"(erase or redraw wrong ones, delete false ones, add the missed ones)."
    )
    if labels.others:
        text += (
            f" The model draws every object as {name}: give each "
            + " or ".join(f'"{o}"' for o in labels.others)
            + " its own label."
        )
    if labels.unsure_flow_error > 0:
        text += (
            f' Regions labelled "{name}?" are the ones the model doubts most: check those first.'
        )
    return text + (
        f" A picture with a yellow frame asks for that region only: outline every {name} "
        "that touches the frame, whole (also where it crosses the frame), and nothing else."
    )


SEGMENTATION = Task(
    name="segmentation",
    summary="instance masks",
    family="cellpose",
    control="BrushLabels",
    label_kind="mask",
    headline="ap50",
    legend="score: held-out AP@0.5; F1: the model's F1 at IoU 0.5, next to agree: the "
    "annotators' pairwise F1 on the batch; cons.: consensus vs ground truth (F1)",
    measures={
        "flip": Measure(
            "flip",
            "forward",
            "disagreement of the flows and cell probability between the image and its flipped "
            "copy, over the foreground (2 forward passes; the whole pool)",
        ),
        "entropy": Measure(
            "entropy", "forward", "mean binary entropy of the cell probability over the foreground"
        ),
        "flow-error": Measure(
            "flow_error",
            "segment",
            "mean per-object flow error: Cellpose's flows vs the flows of its own masks "
            "(Stringer et al. 2021; masks reconstructed, on a shortlist)",
        ),
        "tta": Measure(
            "tta",
            "tta",
            "instance disagreement between predictions of flipped copies (4x; on a shortlist)",
        ),
        "count": Measure(
            "count", "tta", "spread of object counts across flipped copies (4x; on a shortlist)"
        ),
    },
    shortlist_by="flip",
    default_strategy="auto",
    auto=("typiclust", "flip+clue"),
    ingest_options=frozenset({"masks"}),
    objects=True,
    gallery=True,
    regions=True,
    what="{object} outlines",
    instructions=instructions,
    count_truth=lambda mask, labels: count_objects(mask),
)
