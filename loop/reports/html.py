"""The study report: one self-contained HTML file (plots embedded as PNG data) that opens
offline, with the PNGs beside it.

Sections: the per-round table; learning curves against labeled images and annotator-hours
(with any control arm); the model's held-out F1 next to the annotators' agreement (the human
ceiling); annotators; held-out figures per group; a gallery of predictions against the
reference on the worst test images and on the last batch; and a hint on when to stop.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loop import learn
from loop.core.files import atomic_path
from loop.core.images import read_image, read_mask
from loop.core.metrics import HEADLINE, lagging_groups
from loop.errors import RoundError
from loop.learn.labels import boxes_of
from loop.models.family import family
from loop.reports import plots
from loop.reports.status import round_summaries
from loop.store import annotations, models, utcnow
from loop.store.annotators import annotators
from loop.store.labels import label_of
from loop.study import Study
from loop.tasks import task_of

PLATEAU = 0.01  # gain per round under which the curve is called flat


@dataclass
class ReportResult:
    html: Path
    plots: list[Path] = field(default_factory=list)
    hint: str = ""


FIGURE_NAMES = {"f1": "F1", "accuracy": "accuracy", "mean_dice": "mean Dice"}
"""How the model's figure beside the annotators' agreement is named in words."""


def stop_hint(rounds: list[dict], metric: str, arm: str = "main", figure: str = "f1") -> str:
    """A plain-words hint on whether more rounds are worth it, from an arm's curve;
    ``figure``: the key of the model's figure set beside the annotators' agreement.

    >>> stop_hint([{"arm": "main", "score": s, "f1": None, "agreement": None}
    ...            for s in (0.5, 0.6, 0.605, 0.607)], "ap50")[:24]
    'The last 2 rounds gained'
    """
    scores = [r for r in rounds if r["arm"] == arm and r["score"] is not None]
    if len(scores) < 2:
        return "Too few rounds to judge the trend: run at least two."
    values = [r["score"] for r in scores]
    gains = np.diff(values)
    ceiling = ""
    rated = [r for r in scores if r["f1"] is not None and r["agreement"] is not None]
    name = FIGURE_NAMES.get(figure, figure)
    if rated:
        f1, agreement = rated[-1]["f1"], rated[-1]["agreement"]
        if f1 >= agreement:
            ceiling = (
                f" The model's {name} ({f1:.3f}) is at or above the annotators' pairwise "
                f"agreement ({agreement:.3f}): at the ceiling of what single annotators agree "
                "on; better labels (adjudication, a clearer protocol) matter more than more."
            )
        elif agreement - f1 <= 0.02:
            ceiling = (
                f" The model's {name} ({f1:.3f}) is within {agreement - f1:.3f} of the annotators' "
                f"agreement ({agreement:.3f}), the ceiling of what their labels can teach."
            )
        else:
            ceiling = (
                f" The annotators agree at {agreement:.3f} {name}, the model reaches {f1:.3f}: "
                "there is room above it."
            )
    last, before = scores[-1], scores[-2]
    if last.get("model_id") is not None and last.get("model_id") == before.get("model_id"):
        return (
            f"The last round kept the previous model ({last['model_id']}): the model trained "
            "with the last batch was rejected by validation, or nothing new was labeled, so "
            f"its {gains[-1]:+.3f} {metric} says nothing about the last batch yet. Look at the "
            "round's decision (`loop status`), then train again on every label "
            f"(`loop train`) before judging the curve.{ceiling}"
        )
    if len(gains) >= 2 and np.all(gains[-2:] < PLATEAU):
        return (
            f"The last 2 rounds gained {gains[-2]:+.3f} and {gains[-1]:+.3f} {metric} "
            f"(under {PLATEAU} each): the curve is flat. Another round of the same kind is "
            "unlikely to pay; look at the gallery for systematic errors (a missing modality, "
            f"a labelling convention) before annotating more.{ceiling}"
        )
    if gains[-1] < PLATEAU:
        return (
            f"The last round gained {gains[-1]:+.3f} {metric} (under {PLATEAU}; "
            f"{values[0]:.3f} -> {values[-1]:.3f} over {len(values)} rounds): the curve may "
            f"be flattening; one more round tells whether it has.{ceiling}"
        )
    return (
        f"The last round gained {gains[-1]:+.3f} {metric} ({values[0]:.3f} -> {values[-1]:.3f} "
        f"over {len(values)} rounds): still worth another round.{ceiling}"
    )


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def annotator_rows(study: Study, rounds: list[dict], arm: str = "main") -> list[list]:
    """Per annotator: annotations, hours, effort, agreement with the others' consensus and, where
    ground truth exists (simulations), F1 (or accuracy) against it, over an arm's rounds."""
    stats = annotations.work_by_annotator(study.store)
    profiles = {r["name"]: r["profile"] for r in annotators(study.store)}
    agreement: dict[str, list] = {}
    truth: dict[str, list] = {}
    for r in rounds:
        if r["arm"] != arm:
            continue
        for name, value in r["annotators"].items():
            agreement.setdefault(name, []).append(value)
        for name, value in r["annotators_vs_truth"].items():
            if value is not None:
                truth.setdefault(name, []).append(value)
    rows = []
    for name, (n, hours, effort) in stats.items():
        rows.append(
            [
                name,
                profiles.get(name) or "",
                n,
                hours,
                effort,
                float(np.mean(agreement[name])) if name in agreement else None,
                float(np.mean(truth[name])) if name in truth else None,
            ]
        )
    return rows


def _gallery(
    study: Study, rounds: list[dict], folder: Path, n: int, progress, arm: str
) -> list[tuple[Path, str]]:
    """Overlays of the arm's latest model on its worst test images (against ground truth)
    and on the last batch (against the consensus)."""
    main = [r for r in rounds if r["arm"] == arm and r["model_id"]]
    if not main or not task_of(study.config.task).gallery or n < 1:
        return []

    model_id = main[-1]["model_id"]
    picks: list[tuple[int, str, dict]] = []  # image id, caption, reference label
    evaluation = models.evaluation(study.store, model_id, "test")
    if evaluation:
        per_image = sorted(json.loads(evaluation["per_image"]), key=lambda p: _figure(p)[0])
        for p in per_image[: (n + 1) // 2]:
            label = study.store.truth(p["image_id"])
            value, name = _figure(p)
            if label:
                picks.append((p["image_id"], f"worst test image, {name} {value:.2f}", label))
    batches = [r for r in rounds if r["arm"] == arm and r["batch"]]
    if batches:
        for image_id in batches[-1]["batch"]:
            if len(picks) >= n:
                break
            label = label_of(study.store, image_id, "consensus")
            if label:
                caption = f"chosen in round {batches[-1]['round']} (hardest), vs consensus"
                picks.append((image_id, caption, label))
    if not picks:
        return []
    row = learn.model_row(study, model_id)
    net = learn.load_model(study, row)
    adapter = family(row["kind"])
    out = []
    for i, (image_id, caption, label) in enumerate(picks):
        image = study.store.image(image_id)
        pixels = read_image(learn.image_path(image))
        (seg,) = adapter.predict(net, [pixels], config=adapter.settings(study.config))
        name = image["name"] if len(image["name"]) <= 24 else image["name"][:20] + "..."
        title = f"{name}: {caption} (model {model_id})"
        path = folder / f"gallery-{i}.png"
        if seg.boxes is not None:  # boxes: the reference's and the model's detections
            reference = boxes_of(study, image, label, partial=False)[0]
            found = seg.boxes[seg.box_scores >= seg.box_threshold]
            out.append((plots.overlay_boxes(pixels, reference, found, path, title=title), title))
        else:
            shape = (image["height"], image["width"])
            reference = read_mask(study.resolve(label["mask_path"]), shape)
            out.append((plots.overlay(pixels, reference, seg.masks, path, title=title), title))
        progress("gallery", i + 1, len(picks))
    return out


def _figure(per_image: dict) -> tuple[float, str]:
    """An evaluated test image's figure for the gallery: its AP@0.5 (outlines) or the F1 of
    its boxes."""
    if "ap50" in per_image:
        return float(per_image["ap50"] or 0.0), "AP@0.5"
    tp, fp, fn = (sum(per_image[k]) for k in ("tp", "fp", "fn"))
    return 2 * tp / max(2 * tp + fp + fn, 1), "F1"


ROUND_COLUMNS = (
    ("arm", "arm"),
    ("round", "round"),
    ("strategy", "strategy"),
    ("labeled", "n_labeled"),
    ("objects", "n_objects"),
    ("model", "model_id"),
    ("held-out {metric}", "score"),
    ("held-out {figure}", "f1"),
    ("agreement", "agreement"),
    ("consensus vs truth", "consensus_vs_truth"),
    ("to adjudicate", "adjudicate"),
    ("annotator-hours", "annotator_hours"),
    ("effort (weighted edits)", "effort"),
    ("seconds", "seconds"),
    ("status", "status"),
)
"""The report's round table: (heading, key of :func:`round_summaries`)."""


def _rounds_section(rounds: list[dict], metric: str, figure: str = "F1") -> str:
    return "<h2>Rounds</h2>" + _table(
        [heading.format(metric=metric, figure=figure) for heading, _ in ROUND_COLUMNS],
        [[r[key] for _, key in ROUND_COLUMNS] for r in rounds],
    )


def _curve_sections(
    rounds: list[dict], folder: Path, metric: str, result, figure: str = "F1 at IoU 0.5"
) -> list[str]:
    curve = plots.learning_curves(rounds, folder / "learning-curve.png", metric=metric)
    ceiling = plots.agreement_vs_model(rounds, folder / "agreement.png")
    result.plots += [curve, ceiling]
    return [
        "<h2>Learning curve</h2><p>Held-out "
        f"{metric} of each round's model on the test split (never annotated), against "
        "the labeled images it trained on and against the annotator time spent. A control "
        "arm, when one was run, is dashed.</p>" + _img(curve),
        f"<h2>Model and annotators</h2><p>The model's held-out {figure} next to the "
        "annotators' mean pairwise agreement on each batch (the same measure between "
        "people: the human ceiling) and the consensus scored against ground truth where "
        "it exists.</p>" + _img(ceiling),
    ]


def _group_sections(rounds: list[dict], arm: str, metric: str) -> list[str]:
    """Warnings for lagging groups and the per-group table of the arm's latest evaluation."""
    latest = [r for r in rounds if r["arm"] == arm and r["metrics"]]
    if not latest:
        return []
    groups = latest[-1]["metrics"].get("per_group") or {}
    out = [
        f'<p style="color:#b00"><b>Warning:</b> {html.escape(lag["message"])}</p>'
        for lag in lagging_groups(groups, metric)
    ]
    if groups:
        keys = sorted({k for g in groups.values() for k in g if k != "n_images"})[:6]
        out.append(
            f"<h2>Held-out figures per group (round {latest[-1]['round']})</h2>"
            + _table(
                ["group", "images", *keys],
                [[g, v.get("n_images"), *(v.get(k) for k in keys)] for g, v in groups.items()],
            )
        )
    return out


def write_report(
    study: Study,
    folder: str | Path,
    *,
    gallery: int = 6,
    arm: str = "main",
    progress: Callable[[str, int, int], None] = lambda *a: None,
) -> ReportResult:
    """Write ``folder/index.html`` and its PNGs; returns their paths and the stop hint.

    ``arm``: the arm whose curve gives the stop hint, whose annotators' figures and latest
    model's gallery are shown (every arm's rounds are listed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metric = HEADLINE[study.config.task]
    rounds = round_summaries(study)
    arms = sorted({r["arm"] for r in rounds})
    if arm != "main" and arm not in arms:
        raise RoundError(
            f"--arm {arm}: the study has no rounds of that arm; its arms: "
            f"{', '.join(arms) or 'none yet'}"
        )
    result = ReportResult(html=folder / "index.html")
    key = task_of(study.config.task).model_figure
    figure = FIGURE_NAMES.get(key, key)
    result.hint = stop_hint(rounds, metric, arm, key)
    sections = [
        f"<h2>When to stop</h2><p>{html.escape(result.hint)}</p>",
        _rounds_section(rounds, metric, figure),
    ]
    if rounds:
        sections += _curve_sections(rounds, folder, metric, result, figure)
    people = annotator_rows(study, rounds, arm)
    if people:
        sections.append(
            "<h2>Annotators</h2>"
            + _table(
                [
                    "annotator",
                    "profile (simulated)",
                    "annotations",
                    "hours",
                    "effort (weighted edits)",
                    "agreement with the others",
                    "vs ground truth",
                ],
                people,
            )
        )
    sections += _group_sections(rounds, arm, metric)
    shown = _gallery(study, rounds, folder, gallery, progress, arm)
    if shown:
        result.plots += [p for p, _ in shown]
        sections.append(
            "<h2>Gallery</h2><p>Outlines of the reference (green) and of the model (magenta) "
            "on the worst test images and on the last batch chosen.</p>"
            + "".join(
                f"<figure>{_img(p)}<figcaption>{html.escape(t)}</figcaption></figure>"
                for p, t in shown
            )
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>loop report: {html.escape(study.path.name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
th {{ background: #f4f4f4; }}
img {{ max-width: 100%; }}
figure {{ margin: 1em 0; }}
</style></head><body>
<h1>loop report: {html.escape(study.path.name)}</h1>
<p>{html.escape(study.config.task)} study, {len(rounds)} round(s), written {utcnow()}.</p>
{"".join(sections)}
</body></html>
"""
    with atomic_path(result.html) as tmp:
        tmp.write_text(page)
    return result
