"""Object detection with the centre-heatmap family, through the library as a user runs it.

- ``bccd``: the 364 BCCD blood smears (``configs/blood_cells.toml``: RBC, WBC, Platelets as
  boxes), the repository's own split (``ImageSets/Main``): trained on ``train`` (205 images;
  the model's threshold chosen on 10% of them, its validation images), tested on ``test`` (72),
  ``val`` left out. Reported per class and overall: precision, recall and F1 at IoU 0.5,
  AP@0.5 (COCO's 101 points), the count errors; the seconds to train, and to score 300 images
  (the pool's measures: both passes).

JSON keys (the issue's contract): ``detection.bccd.per_class.<CLASS>.f1_50`` (and
``precision``, ``recall``, ``ap50``), ``train_seconds``, ``score_300_seconds``.

Published figures on BCCD are overall mAP@0.5 of pretrained YOLO detectors on splits of their
own (:data:`PUBLISHED`): the comparison is loose; per-class F1 was not found in the sources at
hand.

``python -m bench.detection OUT.json`` runs it alone (about 12 min on 2 cores).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCORED = 300
PUBLISHED = {
    "source": "overall mAP@0.5 on BCCD with COCO-pretrained YOLO detectors, their own splits: "
    "NBCDC-YOLOv8 0.947 and YOLOv8n 0.924 (Chen et al., IET Computer Vision 2025, "
    "doi:10.1049/cvi2.12341); YOLOv8n 0.904 (Yang et al., as summarised by synapsesocial.com)",
    "map50": {
        "NBCDC-YOLOv8": 0.947,
        "YOLOv8n (Chen et al.)": 0.924,
        "YOLOv8n (Yang et al.)": 0.904,
    },
}


def _split_table(data: Path, out: Path) -> Path:
    """``id,part`` of every BCCD image: train, val or test, from ``ImageSets/Main``."""
    rows = ["id,part"]
    for part in ("train", "val", "test"):
        for stem in (data / "ImageSets" / "Main" / f"{part}.txt").read_text().split():
            rows.append(f"{stem},{part}")
    out.write_text("\n".join(rows) + "\n")
    return out


def bench_bccd(data: Path, work: Path) -> dict:
    from loop.core.images import read_image
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.learn.evaluate import evaluate
    from loop.learn.labels import image_path
    from loop.learn.registry import current_model, load_model
    from loop.learn.train import train
    from loop.models.family import family
    from loop.study import init_study

    config = REPO / "configs" / "blood_cells.toml"
    with init_study(work / "bccd", config=config) as study:
        report = ingest(
            study,
            data / "JPEGImages",
            boxes=data / "Annotations",
            metadata=_split_table(data, work / "bccd-split.csv"),
        )
        train_n = len((data / "ImageSets" / "Main" / "train.txt").read_text().split())
        split_study(study, test=0, initial=train_n, where=["part!=val"], test_where=["part=test"])
        started = time.perf_counter()
        trained = train(study)
        train_seconds = time.perf_counter() - started
        figures = evaluate(study)
        row = current_model(study)
        adapter, model = family(row["kind"]), load_model(study, row)
        rows = study.store.images(order_by="id")[:SCORED]
        started = time.perf_counter()
        for image in rows:
            adapter.measure(model, [read_image(image_path(image))], config=study.config.detection)
        score_seconds = time.perf_counter() - started
    return {
        **{k: figures[k] for k in ("precision", "recall", "f1", "mean_ap", "count_mae")},
        "count_mre": figures["count_mre"],
        "per_class": {
            name: {
                "f1_50": c["f1"],
                "precision": c["precision"],
                "recall": c["recall"],
                "ap50": c["ap50"],
                "count_mae": c["count_mae"],
                "n_true": c["n_true"],
            }
            for name, c in figures["per_class"].items()
        },
        "n_test_images": figures["n_images"],
        "threshold": model.meta.get("threshold"),
        "train_images": trained.n_train,
        "validation_images": trained.n_val,
        "steps": trained.steps,
        "train_seconds": round(train_seconds, 1),
        "score_300_seconds": round(score_seconds, 1),
        "scored": len(rows),
        "boxes_left_out": report.box_notes,
        "split": "BCCD ImageSets/Main: train (labeled), test (held out), val left out",
        "published": PUBLISHED,
    }


def bench_detection(shared: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        print("bench: detection, BCCD ...", file=sys.stderr)
        return {"bccd": bench_bccd(shared / "bccd_detection", Path(tmp))}


def lines(detection: dict) -> list[str]:
    """The markdown table of :func:`bench_detection`'s figures."""
    bccd = detection["bccd"]
    out = ["", "Object detection (centre-heatmap family on MONAI BasicUNet, CPU), BCCD test:", ""]
    out += ["| class | precision | recall | F1@0.5 | AP@0.5 | count MAE | boxes |"]
    out += ["|---|---|---|---|---|---|---|"]
    for name, c in bccd["per_class"].items():
        out.append(
            f"| {name} | {_f(c['precision'])} | {_f(c['recall'])} | {_f(c['f1_50'])} | "
            f"{_f(c['ap50'])} | {_f(c['count_mae'])} | {c['n_true']} |"
        )
    out.append(
        f"| all | {_f(bccd['precision'])} | {_f(bccd['recall'])} | {_f(bccd['f1'])} | "
        f"{_f(bccd['mean_ap'])} (mean) | {_f(bccd['count_mae'])} | |"
    )
    out += [
        "",
        f"Threshold {bccd['threshold']} (chosen on {bccd['validation_images']} validation "
        f"images); training {bccd['train_seconds']} s ({bccd['steps']} steps, "
        f"{bccd['train_images']} images); scoring {bccd['scored']} images "
        f"{bccd['score_300_seconds']} s. Published (loose: pretrained YOLO, own splits): "
        + ", ".join(f"{k} mAP@0.5 {v}" for k, v in bccd["published"]["map50"].items())
        + ".",
    ]
    return out


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv=None) -> None:
    """``python -m bench.detection OUT.json``: this bench alone."""
    from bench.timing import environment

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else REPO / "bench" / "results" / "detection.json"
    env = environment()
    result = {"env": env, "detection": bench_detection(REPO.parent / "shared" / "data")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines(result["detection"])), file=sys.stderr)


if __name__ == "__main__":
    main()
