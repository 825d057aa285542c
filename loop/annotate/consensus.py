"""Agreement over a study's annotations: per task, per annotator pair, per annotator; writes
consensus labels (``labels.source = 'consensus'``) and lists tasks for adjudication.

A task whose consensus is accepted moves its image from ``pool`` to ``labeled`` (it now has a
training label); a task below ``min_agreement`` keeps its image in the pool, flagged for
adjudication, and gets no consensus label until a reviewer decides.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop.annotate.agree_boxes import agree_boxes
from loop.config_checks import in_range
from loop.core.agreement import krippendorff_alpha, object_f1, percent_agreement
from loop.core.fusion import consensus_mask, majority_vote
from loop.core.images import count_objects, read_mask, write_labels
from loop.core.object_classes import per_class_agreement, vote_classes
from loop.store import annotations, dumps
from loop.store.labels import save_label
from loop.study import Study
from loop.tasks import task_of
from loop.types import Boxes

CONSENSUS_DIR = Path("consensus")


@dataclass
class TaskAgreement:
    task_id: int
    image_id: int
    image: str
    round: int | None
    annotators: list[str]
    pairs: dict = field(
        default_factory=dict
    )  # "a|b" -> {"f1_50", "dice", "mean_matched_iou"} or agree 0/1
    agreement: float | None = None  # mean over pairs of f1_50 (segmentation) or agreement (classes)
    per_annotator: dict = field(
        default_factory=dict
    )  # name -> agreement with the others' consensus
    consensus: str | int | None = None  # class, or number of consensus objects
    per_class: dict = field(default_factory=dict)  # object class -> mean pairwise F1 (others)
    object_classes: list[str] | None = None  # class of each consensus object (others)
    adjudicate: bool = False
    against_truth: dict | None = None  # {"consensus": {...}, "annotators": {...}}


@dataclass
class Waiting:
    """A task with too few valid annotations for a consensus: it waits for more."""

    task_id: int
    image_id: int
    image: str
    annotators: list[str]
    needed: int

    def __str__(self) -> str:
        have = ", ".join(self.annotators) or "nobody"
        return (
            f"task {self.task_id} ({self.image}): {len(self.annotators)} valid annotation(s) "
            f"({have}), a consensus needs {self.needed}"
        )


@dataclass
class AgreementReport:
    tasks: list[TaskAgreement]
    annotators: dict  # name -> mean agreement with the others' consensus
    overall: dict  # mean agreement; kappa/alpha for classes
    against_truth: dict | None = None
    waiting: list[Waiting] = field(default_factory=list)  # too few annotations, no consensus


def _current_annotations(study: Study, round: int | None, image_ids=None) -> dict[int, list[dict]]:
    by_task = annotations.current_by_task(study.store, round=round)
    if image_ids is None:
        return by_task
    wanted = set(image_ids)
    return {t: rows for t, rows in by_task.items() if rows[0]["image_id"] in wanted}


def _write_consensus(study: Study, image: dict, mask: np.ndarray) -> str:
    rel = CONSENSUS_DIR / f"{image['id']}_{image['name']}.tif"
    write_labels(study.path / rel, mask)
    return rel.as_posix()


def _classes(row: dict) -> list[str] | None:
    return None if row.get("object_classes") is None else json.loads(row["object_classes"])


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def agree(
    study: Study,
    *,
    round: int | None = None,
    image_ids=None,
    method: str = "majority",
    min_agreement: float = 0.7,
    min_annotations: int = 2,
    against_truth: bool = False,
    write: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> AgreementReport:
    """Measure agreement on every task with current annotations; fuse and store consensus.

    Parameters
    ----------
    round : int, optional
        Only the tasks of this round.
    image_ids : iterable of int, optional
        Only the tasks of these images (a round's batch).
    method : {"majority", "staple"}
        Foreground fusion of instance masks (classes always use a majority vote; a tie goes
        to adjudication).
    min_agreement : float
        Tasks whose mean pairwise agreement (object F1 at IoU 0.5, or share of agreeing pairs
        for classes) is below this go to adjudication.
    min_annotations : int
        Valid (current, not malformed) annotations a task needs for a consensus, capped by
        the task's overlap: ``min(overlap, min_annotations)``. A task with fewer waits (in
        ``AgreementReport.waiting``): no consensus, no adjudication, its image stays put.
    against_truth : bool
        Also score each annotator and the consensus against the ground truth, where it exists.
    write : bool
        Store consensus labels and move agreed images to the labeled split.

    Raises
    ------
    ConfigError
        For a ``min_agreement`` outside [0, 1] (or not a number) or ``min_annotations`` < 1.
    """
    in_range("min_agreement", min_agreement, 0.0, 1.0)
    in_range("min_annotations", min_annotations, 1, 100)
    store = study.store
    by_task = _current_annotations(study, round, image_ids)
    kind = task_of(study.config.task).label_kind
    masks_drawn = kind != "class"
    results: list[TaskAgreement] = []
    waiting: list[Waiting] = []
    for done, (task_id, rows) in enumerate(by_task.items(), start=1):
        image = store.image(rows[0]["image_id"])
        names = [r["annotator"] for r in rows]
        needed = min(rows[0]["task_overlap"] or 1, min_annotations)
        if len(rows) < needed:
            waiting.append(Waiting(task_id, image["id"], image["name"], names, needed))
            if progress:
                progress(done, len(by_task))
            continue
        item = TaskAgreement(task_id, image["id"], image["name"], rows[0]["task_round"], names)
        truth = store.truth(image["id"]) if against_truth else None
        fused = AGREEMENT[kind](study, item, image, rows, truth, method)
        item.adjudicate = (item.agreement is not None and item.agreement < min_agreement) or (
            not masks_drawn and item.consensus is None
        )
        if write and not item.adjudicate:
            _store_consensus(study, item, image, rows, fused, method)
        results.append(item)
        if progress:
            progress(done, len(by_task))
    report = _summarise(results, by_task, masks_drawn)
    report.waiting = waiting
    return report


def _agree_masks(study, item, image, rows, truth, method) -> np.ndarray:
    """Instance masks: object F1 at IoU 0.5 per pair, each annotator against the others'
    consensus, fused by ``method``; object classes voted when ``[labels] others`` names
    some."""
    names = item.annotators
    shape = (image["height"], image["width"])
    masks = {r["annotator"]: read_mask(study.resolve(r["mask_path"]), shape) for r in rows}
    for a, b in itertools.combinations(names, 2):
        s = object_f1(masks[a], masks[b])
        item.pairs[f"{a}|{b}"] = {k: s[k] for k in ("f1_50", "dice", "mean_matched_iou")}
    item.agreement = _mean(p["f1_50"] for p in item.pairs.values())
    for name in names if len(names) > 1 else []:
        others = [masks[o] for o in names if o != name]
        item.per_annotator[name] = object_f1(consensus_mask(others, method=method), masks[name])[
            "f1_50"
        ]
    fused = consensus_mask(list(masks.values()), method=method)
    item.consensus = count_objects(fused)
    labels = study.config.labels
    if labels.others:
        kinds = {r["annotator"]: _classes(r) for r in rows}
        names_of = (labels.object, *labels.others)
        item.per_class = per_class_agreement(masks, kinds, names_of, default=labels.object)
        item.object_classes = vote_classes(fused, masks, kinds, default=labels.object)
    if truth is not None and truth["kind"] == "mask":
        t = read_mask(truth["mask_path"], shape)
        pick = ("f1_50", "dice", "mean_matched_iou")
        item.against_truth = {
            "consensus": {k: object_f1(t, fused)[k] for k in pick},
            "annotators": {n: {k: object_f1(t, m)[k] for k in pick} for n, m in masks.items()},
        }
    return fused


def _agree_classes(study, item, image, rows, truth, method) -> str | None:
    """Image classes: the share of agreeing pairs, each annotator against the others'
    majority, the majority vote (a tie: None, adjudicated)."""
    names = item.annotators
    classes = {r["annotator"]: r["class"] for r in rows}
    for a, b in itertools.combinations(names, 2):
        item.pairs[f"{a}|{b}"] = float(classes[a] == classes[b])
    item.agreement = _mean(item.pairs.values())
    for name in names if len(names) > 1 else []:
        vote = majority_vote([classes[o] for o in names if o != name], tie="first")
        item.per_annotator[name] = float(vote == classes[name])
    fused = majority_vote(list(classes.values()))
    item.consensus = fused
    if truth is not None and truth["kind"] == "class":
        item.against_truth = {
            "consensus": {"correct": float(fused == truth["class"])},
            "annotators": {n: {"correct": float(c == truth["class"])} for n, c in classes.items()},
        }
    return fused


def _agree_classmaps(study, item, image, rows, truth, method) -> np.ndarray:
    """Class maps (semantic): per pair the mean foreground Dice and IoU and Cohen's kappa on
    pixels, Dice per class; each annotator's Dice against the others' consensus; fused per
    pixel by ``method`` (majority, or STAPLE per class)."""
    from loop.core.classmaps import class_scores, fuse, pixel_kappa
    from loop.learn.labels import classmap_of

    classes = study.config.labels.classes
    k = len(classes)
    names = item.annotators
    shape = (image["height"], image["width"])
    maps = {r["annotator"]: read_mask(study.resolve(r["mask_path"]), shape) for r in rows}
    per_class: dict[str, list] = {}
    for a, b in itertools.combinations(names, 2):
        s = class_scores(maps[a], maps[b], classes)
        item.pairs[f"{a}|{b}"] = {
            "dice": s["mean_dice"],
            "iou": s["mean_iou"],
            "kappa": pixel_kappa(maps[a], maps[b], k),
        }
        for name in classes[1:]:
            per_class.setdefault(name, []).append(s["per_class"][name]["dice"])
    item.agreement = _mean(p["dice"] for p in item.pairs.values())
    item.per_class = {name: _mean(v) for name, v in per_class.items()}
    for name in names if len(names) > 1 else []:
        others = fuse([maps[o] for o in names if o != name], k, method=method)
        item.per_annotator[name] = class_scores(others, maps[name], classes)["mean_dice"]
    fused = fuse(list(maps.values()), k, method=method)
    item.consensus = int(np.unique(fused).size)
    if truth is not None and truth["kind"] == "mask":
        t = classmap_of(study, image, truth)
        known = getattr(t, "known", None)
        t = getattr(t, "mask", t)

        def dice(m):
            return {"dice": class_scores(t, m, classes, known)["mean_dice"]}

        item.against_truth = {
            "consensus": dice(fused),
            "annotators": {n: dice(m) for n, m in maps.items()},
        }
    return fused


AGREEMENT = {
    "mask": _agree_masks,
    "class": _agree_classes,
    "classmap": _agree_classmaps,
    "boxes": agree_boxes,
}
"""How a task's annotations are compared and fused, by the label kind of the study's task
(:attr:`loop.tasks.base.Task.label_kind`); each returns the consensus (None: none)."""


def _store_consensus(
    study: Study, item: TaskAgreement, image: dict, rows: list[dict], fused, method: str
) -> None:
    provenance = {
        "annotations": [r["id"] for r in rows],
        "annotators": item.annotators,
        "method": method if isinstance(fused, np.ndarray) else "majority-vote",
        "round": item.round,
        "task": item.task_id,
        "agreement": item.agreement,
    }
    if isinstance(fused, Boxes):
        from loop.store.boxes import write_boxes_file

        path, sha = write_boxes_file(study.path / CONSENSUS_DIR, fused.boxes, fused.names)
        label = {
            "kind": "boxes",
            "mask_path": path.relative_to(study.path).as_posix(),
            "mask_sha256": sha,
            "n_objects": len(fused.names),
            "class": None,
        }
    elif isinstance(fused, np.ndarray):
        label = {
            "kind": "mask",
            "mask_path": _write_consensus(study, image, fused),
            "n_objects": count_objects(fused),
            "class": None,
            "object_classes": None if item.object_classes is None else dumps(item.object_classes),
        }
    else:
        label = {"kind": "class", "class": fused, "mask_path": None, "n_objects": None}
    label.setdefault("object_classes", None)
    label.update(method=provenance["method"], provenance=dumps(provenance))
    # a consensus is rewritten when what it is made of (provenance) or its class changed
    save_label(
        study.store,
        item.image_id,
        source="consensus",
        label=label,
        compare=("provenance", "class", "object_classes"),
    )


def _summarise(
    tasks: list[TaskAgreement], by_task: dict[int, list[dict]], segmentation: bool
) -> AgreementReport:
    per_annotator: dict[str, list[float]] = {}
    for t in tasks:
        for name, value in t.per_annotator.items():
            per_annotator.setdefault(name, []).append(value)
    annotators = {n: float(np.mean(v)) for n, v in sorted(per_annotator.items())}
    overall = {
        "tasks": len(tasks),
        "mean_agreement": _mean(t.agreement for t in tasks),
        "adjudicate": [t.task_id for t in tasks if t.adjudicate],
    }
    kinds = sorted({k for t in tasks for k in t.per_class})
    if kinds:
        overall["per_class"] = {k: _mean(t.per_class.get(k) for t in tasks) for k in kinds}
    if not segmentation and tasks:
        names = sorted({n for t in tasks for n in t.annotators})
        classes = [{r["annotator"]: r["class"] for r in by_task[t.task_id]} for t in tasks]
        ratings = [[per_task.get(name) for per_task in classes] for name in names]
        try:
            overall["krippendorff_alpha"] = krippendorff_alpha(ratings)
            overall["percent_agreement"] = percent_agreement(ratings)
        except ValueError:
            pass
    truth = [t.against_truth for t in tasks if t.against_truth]
    against = None
    if truth:
        keys = list(truth[0]["consensus"])
        names = sorted({n for t in truth for n in t["annotators"]})
        against = {
            "tasks": len(truth),
            "consensus": {k: _mean(t["consensus"][k] for t in truth) for k in keys},
            "annotators": {
                n: {
                    k: _mean(t["annotators"][n][k] for t in truth if n in t["annotators"])
                    for k in keys
                }
                for n in names
            },
        }
    return AgreementReport(
        tasks=tasks, annotators=annotators, overall=overall, against_truth=against
    )
