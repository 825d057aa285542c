"""What a study holds: images by split and group, ground truth, skipped files, annotation
so far, rounds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from loop.core.metrics import HEADLINE, lagging_groups
from loop.store import META_PREFIX
from loop.store.annotations import unmapped
from loop.study import Study

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

    def to_dict(self) -> dict:
        return asdict(self)


def group_keys(study: Study) -> list[str]:
    """The configured groups, else categorical metadata: text columns (not JSON lists or
    numbers) with 2..12 distinct values, such as instrument, batch or modality."""
    if study.config.groups:
        return list(study.config.groups)
    keys = []
    for key in study.store.meta_columns():
        column = f'"{META_PREFIX}{key}"'
        n, non_text = study.store.db.execute(
            f"SELECT count(DISTINCT {column}), sum(typeof({column}) NOT IN ('text', 'null') "
            f"OR {column} LIKE '[%' OR {column} LIKE '{{%') FROM images"
        ).fetchone()
        if 2 <= n <= MAX_AUTO_GROUP_VALUES and not non_text:
            keys.append(key)
    return keys


def round_summary(row: dict, task: str) -> dict:
    """One round as a flat record: the figures a table or a plot shows.

    ``score`` is the held-out headline (AP@0.5 for segmentation, macro-F1 for
    classification); ``f1`` the model's F1 at IoU 0.5 (or accuracy) to set beside the
    annotators' agreement (``agreement``: mean pairwise object F1 at IoU 0.5, or share of
    agreeing pairs), the human ceiling on the same kind of figure.
    """
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
        "f1": metrics.get("f1", metrics.get("accuracy")),
        "metrics": metrics,
        "batch": json.loads(row["batch"] or "[]"),
        "agreement": agreement.get("mean_agreement"),
        "consensus_vs_truth": consensus.get("f1_50", consensus.get("correct")),
        "annotators": agreement.get("annotators") or {},
        "annotators_vs_truth": {
            name: figures.get("f1_50", figures.get("correct"))
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
    """:func:`round_summary` of every round (of one arm, when given), by arm and round."""
    return [round_summary(r, study.config.task) for r in study.store.rounds(arm)]


def study_status(study: Study) -> StudyStatus:
    store, db = study.store, study.store.db
    by_split = store.count_by("split")
    with_truth = dict(
        db.execute(
            "SELECT i.split, count(*) FROM images i JOIN labels l ON l.image_id = i.id "
            "AND l.source = 'truth' GROUP BY i.split ORDER BY i.split"
        ).fetchall()
    )
    groups = {}
    for key in group_keys(study):
        column = META_PREFIX + key
        if column not in {c.name for c in db["images"].columns}:
            continue
        table: dict = {}
        for value, split, n in db.execute(
            f'SELECT "{column}", split, count(*) FROM images GROUP BY 1, 2 ORDER BY 1, 2'
        ).fetchall():
            table.setdefault(str(value), {})[split] = n
        groups[key] = table
    skipped = dict(db.execute("SELECT reason, count(*) FROM skipped GROUP BY reason").fetchall())
    rounds = round_summaries(study)
    labels = dict(
        db.execute(
            "SELECT source, count(*) FROM labels WHERE source IN ('consensus', 'adjudicated') "
            "GROUP BY source ORDER BY source"
        ).fetchall()
    )
    sent, decided = db.execute(
        "SELECT count(*), count(a.id) FROM tasks t LEFT JOIN annotations a ON a.task_id = t.id "
        "AND a.annotator = t.reviewer AND a.status = 'current' WHERE t.purpose = 'adjudicate'"
    ).fetchone()
    tasks = dict(
        db.execute(
            "SELECT status, count(*) FROM tasks WHERE purpose = 'annotate' GROUP BY status"
        ).fetchall()
    )
    per_annotator = dict(
        db.execute(
            "SELECT a.annotator, count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id "
            "WHERE t.purpose = 'annotate' AND a.status = 'current' GROUP BY a.annotator "
            "ORDER BY a.annotator"
        ).fetchall()
    )
    # done in the tool, but too few valid annotations for a consensus (malformed ones, say)
    too_few = db.execute(
        "SELECT count(*) FROM tasks t WHERE t.purpose = 'annotate' AND t.status = 'done' "
        "AND (SELECT count(*) FROM annotations a WHERE a.task_id = t.id "
        "AND a.status = 'current') < min(coalesce(t.overlap, 1), ?) "
        "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = t.image_id "
        "AND l.source IN ('consensus', 'adjudicated'))",
        [study.config.rounds.min_annotations],
    ).fetchone()[0]
    annotation = {
        "images_pushed": sum(tasks.values()),
        "unmapped_tasks": unmapped(study.store),  # the tool's tasks that are not the study's
        "too_few_annotations": too_few,
        "tasks": tasks,  # pending (not yet in the tool), open, done
        "tiles": db["tasks"].count_where("purpose = 'tile'"),
        "annotations": per_annotator,  # current annotations of whole images
        # kept as sent but unusable (undecodable RLE, another tool's region): by annotator
        "malformed": dict(
            db.execute(
                "SELECT annotator, count(*) FROM annotations WHERE status = 'malformed' "
                "GROUP BY annotator ORDER BY annotator"
            ).fetchall()
        ),
    }
    lagging = latest_lagging(study, rounds)
    return StudyStatus(
        task=study.config.task,
        n_images=sum(by_split.values()),
        by_split=by_split,
        with_truth=with_truth,
        groups=groups,
        skipped=skipped,
        rounds=rounds,
        labels=labels,
        review={"sent": sent, "decided": decided},
        annotation=annotation,
        lagging=lagging,
    )
