"""What a study holds: images by split and group, ground truth, skipped files, annotation
so far, rounds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from loop.core.metrics import HEADLINE, lagging_groups
from loop.store import annotations, images
from loop.store.labels import made_by_people
from loop.store.regions import region_summary
from loop.store.rounds import effort_of_batch
from loop.study import Study
from loop.tasks import task_of

MAX_AUTO_GROUP_VALUES = 12


@dataclass(frozen=True)
class StudyStatus:
    task: str
    n_images: int
    by_split: dict
    with_truth: dict
    groups: dict  # group key -> value -> split -> count
    skipped: dict  # reason -> count
    rounds: list
    labels: dict  # source -> images (consensus, adjudicated)
    review: dict  # adjudication tasks: sent, decided (by their reviewer)
    annotation: dict  # images pushed by task status, tiles, annotations per annotator
    lagging: list  # groups the latest evaluated model fails while it works on others
    unnamed_groups: list  # categorical metadata that selection ignores: not in ``groups``

    def to_dict(self) -> dict:
        return asdict(self)


def group_keys(study: Study) -> list[str]:
    """The configured groups, else categorical metadata: text columns (not JSON lists or
    numbers) with 2..12 distinct values, such as instrument, batch or modality."""
    if study.config.groups:
        return list(study.config.groups)
    keys = []
    for key in study.store.meta_columns():
        n, text = images.distinct_values(study.store, key)
        if 2 <= n <= MAX_AUTO_GROUP_VALUES and text:
            keys.append(key)
    return keys


def round_summary(row: dict, task: str) -> dict:
    """One round as a flat record: the figures a table or a plot shows.

    ``score`` is the held-out headline (:attr:`loop.tasks.base.Task.headline`: AP@0.5 for
    segmentation, macro-F1 for classification, mean Dice for semantic); ``f1`` the model's
    figure to set beside the annotators' agreement (``model_figure``: F1 at IoU 0.5,
    accuracy, mean Dice), the human ceiling on the same kind of figure (``agreement``: mean
    pairwise object F1 at IoU 0.5, share of agreeing pairs, mean Dice; of a region round,
    over its regions).
    """
    spec = task_of(task)
    metrics = json.loads(row["metrics"] or "{}")
    agreement = json.loads(row["agreement"] or "{}")
    timings = json.loads(row["timings"] or "{}")
    truth = agreement.get("against_truth") or {}
    consensus = truth.get("consensus") or {}
    return {
        "arm": row["arm"],
        "round": row["round"],
        "status": row["status"],
        "strategy": row["strategy"],
        "n_labeled": row["n_labeled"],
        "n_objects": row["n_objects"],
        "model_id": row["model_id"],
        "score": metrics.get(HEADLINE[task]),
        "f1": metrics.get(spec.model_figure),
        "metrics": metrics,
        "batch": json.loads(row["batch"] or "[]"),
        "agreement": agreement.get("mean_agreement")
        if agreement.get("mean_agreement") is not None
        else (agreement.get("regions") or {}).get("mean_agreement"),
        "consensus_vs_truth": consensus.get(spec.truth_figure),
        "annotators": agreement.get("annotators") or {},
        "annotators_vs_truth": {
            name: figures.get(spec.truth_figure)
            for name, figures in (truth.get("annotators") or {}).items()
        },
        "adjudicate": len(agreement.get("adjudicate") or []),
        "annotator_hours": row["annotator_hours"],
        "seconds": sum(timings.values()),
        "timings": timings,
    }


def latest_lagging(study: Study, rounds: list[dict], arm: str = "main") -> list[dict]:
    """:func:`~loop.core.metrics.lagging_groups` of an arm's last evaluated round (of any
    arm when it has none)."""
    evaluated = [r for r in rounds if r["metrics"].get("per_group")]
    mine = [r for r in evaluated if r["arm"] == arm] or evaluated
    if not mine:
        return []
    return lagging_groups(mine[-1]["metrics"]["per_group"], HEADLINE[study.config.task])


def round_summaries(study: Study, arm: str | None = None) -> list[dict]:
    """:func:`round_summary` of every round (of one arm, when given), by arm and round, with
    the experts' ``effort`` on its batch (weighted edits of the pre-annotations, None before
    the batch is annotated; :func:`loop.store.rounds.effort_of_batch`)."""
    out = []
    for row in study.store.rounds(arm):
        summary = round_summary(row, study.config.task)
        regions = json.loads(row.get("regions") or "null")
        spent = effort_of_batch(study.store, summary["batch"], regions)
        summary["effort"] = spent if summary["agreement"] is not None or spent else None
        summary["n_regions"] = len(regions) if regions else None
        out.append(summary)
    return out


def study_status(study: Study) -> StudyStatus:
    store = study.store
    by_split = store.count_by("split")
    groups = {}
    for key in group_keys(study):
        table = images.by_value_and_split(store, key)
        if table is not None:
            groups[key] = table
    rounds = round_summaries(study)
    sent, decided = annotations.reviews(store)
    annotation = annotations.annotation_summary(
        store, min_annotations=study.config.rounds.min_annotations
    )
    annotation["regions"] = region_summary(store)
    lagging = latest_lagging(study, rounds)
    return StudyStatus(
        task=study.config.task,
        n_images=sum(by_split.values()),
        by_split=by_split,
        with_truth=images.truth_by_split(store),
        groups=groups,
        skipped=images.skipped_by_reason(store),
        rounds=rounds,
        labels=made_by_people(store),
        review={"sent": sent, "decided": decided},
        annotation=annotation,
        lagging=lagging,
        unnamed_groups=[] if study.config.groups else sorted(groups),
    )
