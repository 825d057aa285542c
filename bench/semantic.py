"""Semantic segmentation with the U-Net family, through the library as a user runs it.

- ``isbi2012_em``: the 30 ISBI 2012 EM slices (``configs/isbi2012_em.toml``: membrane and
  cell interior), trained on slices 0-19, tested on slices 20-29 (consecutive slices are
  near-duplicates: a range is held out, never a draw; ``loop split --test-where part=test``).
  Reported: Dice and IoU per class, the pixel error and the foreground-restricted Rand error
  (scikit-image's ``adapted_rand_error`` on the connected cell interiors, the challenge's
  boundary-aware figure), beside the U-Net paper's figures on the challenge's own test slices
  (whose labels are not public, so the comparison is loose).
- ``dsb2018``: the DSB nucleus masks as three classes (background, nucleus, boundary;
  ``[labels] masks = "instances"``), a test split of ``DSB_TEST`` images stratified by
  modality, every other image labeled (the full pool); Dice per class overall and per
  modality; and the seconds to score 300 images (both passes, the pool's measures).

JSON keys (the issue's contract): ``semantic.isbi2012_em.per_class.<CLASS>.dice`` (and
``iou``), the same under ``semantic.dsb2018``; ``train_seconds`` of each; ``score_300_seconds``.

``python -m bench.semantic OUT.json`` runs it alone (about 20 min on 2 cores).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DSB_TEST = 100
SCORED = 300
DSB_TOML = """\
# make bench: DSB nuclei as three pixel classes (bench/semantic.py)
task = "semantic"
groups = ["modality"]
[labels]
classes = ["background", "nucleus", "boundary"]
masks = "instances"
[unet]
max_steps = 1200
val_fraction = 0.0
"""
PUBLISHED_ISBI = {
    "source": "Ronneberger, Fischer and Brox, U-Net, MICCAI 2015, Table 1 (ISBI 2012 "
    "challenge test slices, labels not public; with their post-processing free)",
    "warping_error": 0.000353,
    "rand_error": 0.0382,
    "pixel_error": 0.0611,
}


def _study(folder: Path, toml: str, images: Path, masks: Path, metadata: Path):
    from loop.data.ingest import ingest
    from loop.study import init_study

    (folder.parent / f"{folder.name}.toml").write_text(toml)
    study = init_study(folder, config=folder.parent / f"{folder.name}.toml")
    ingest(study, images, masks=masks, metadata=metadata)
    return study


def _train_and_evaluate(study) -> dict:
    from loop.learn.evaluate import evaluate
    from loop.learn.train import train

    started = time.perf_counter()
    report = train(study)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    figures = evaluate(study)
    return {
        **{k: figures[k] for k in ("mean_dice", "mean_iou", "pixel_accuracy", "n_images")},
        "per_class": {
            name: {"dice": c["dice"], "iou": c["iou"]} for name, c in figures["per_class"].items()
        },
        "per_group": {
            group: {
                "mean_dice": g["mean_dice"],
                "n_images": g["n_images"],
                "per_class": {name: c["dice"] for name, c in g["per_class"].items()},
            }
            for group, g in figures["per_group"].items()
        },
        "train_seconds": round(seconds, 1),
        "evaluate_seconds": round(time.perf_counter() - started, 1),
        "steps": report.steps,
        "model_id": figures["model_id"],
    }


def rand_error(study, model_id: int) -> float:
    """Mean over the test slices of scikit-image's foreground-restricted Rand error of the
    connected cell interiors (predicted against true)."""
    from skimage.measure import label
    from skimage.metrics import adapted_rand_error

    from loop.core.images import read_image
    from loop.learn.labels import image_path, target
    from loop.learn.registry import load_model, model_row
    from loop.models.family import family

    row = model_row(study, model_id)
    adapter, model = family(row["kind"]), load_model(study, row)
    errors = []
    for image in study.store.images("split = 'test'"):
        truth = target(study, image, study.store.truth(image["id"]), "classmap", partial=False)
        (output,) = adapter.predict(
            model, [read_image(image_path(image))], config=study.config.unet
        )
        true_cells = label(np.asarray(truth) == 1, connectivity=1)
        errors.append(
            adapted_rand_error(true_cells, label(output.classmap == 1, connectivity=1))[0]
        )
    return float(np.mean(errors))


def bench_isbi(data: Path, work: Path) -> dict:
    from loop.data.split import split_study

    names = sorted((p.stem for p in (data / "images").glob("*.png")), key=int)
    meta = work / "isbi-slices.csv"
    meta.write_text(
        "id,part\n" + "".join(f"{n},{'test' if int(n) >= 20 else 'train'}\n" for n in names)
    )
    toml = (REPO / "configs" / "isbi2012_em.toml").read_text()
    study = _study(work / "isbi", toml, data / "images", data / "labels", meta)
    with study:
        split_study(study, test=0, initial=20, test_where=["part=test"])
        out = _train_and_evaluate(study)
        out["rand_error"] = rand_error(study, out["model_id"])
    out["pixel_error"] = 1.0 - out["pixel_accuracy"]
    out["split"] = "train slices 0-19, test slices 20-29"
    out["published"] = PUBLISHED_ISBI
    return out


def bench_dsb(data: Path, work: Path) -> dict:
    from loop.core.images import read_image
    from loop.data.split import split_study
    from loop.learn.labels import image_path
    from loop.learn.registry import current_model, load_model
    from loop.models.family import family

    study = _study(work / "dsb", DSB_TOML, data / "images", data / "masks", data / "manifest.json")
    with study:
        rest = len(study.store.images()) - DSB_TEST
        split_study(study, test=DSB_TEST, initial=rest, seed=0, stratify=("modality",))
        out = _train_and_evaluate(study)
        row = current_model(study)
        adapter, model = family(row["kind"]), load_model(study, row)
        rows = study.store.images(order_by="id")[:SCORED]
        started = time.perf_counter()
        for image in rows:
            adapter.measure(model, [read_image(image_path(image))], config=study.config.unet)
        out["score_300_seconds"] = round(time.perf_counter() - started, 1)
        out["scored_pixels_median"] = int(np.median([r["height"] * r["width"] for r in rows]))
    out["split"] = f"{DSB_TEST} test images stratified by modality, all others labeled"
    return out


def bench_semantic(shared: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("bench: semantic, ISBI 2012 EM ...", file=sys.stderr)
        isbi = bench_isbi(shared / "isbi2012_em", work)
        print("bench: semantic, DSB three classes ...", file=sys.stderr)
        dsb = bench_dsb(shared / "dsb2018_train", work)
    return {"isbi2012_em": isbi, "dsb2018": dsb}


def lines(semantic: dict) -> list[str]:
    """The markdown table of :func:`bench_semantic`'s figures."""
    out = ["", "Semantic segmentation (U-Net family, MONAI BasicUNet, CPU):", ""]
    out += ["| data | class | Dice | IoU |", "|---|---|---|---|"]
    for data in ("isbi2012_em", "dsb2018"):
        for name, c in semantic[data]["per_class"].items():
            out.append(f"| {data} | {name} | {_f(c['dice'])} | {_f(c['iou'])} |")
        out.append(f"| {data} | mean foreground | {_f(semantic[data]['mean_dice'])} | |")
    dsb = semantic["dsb2018"]
    out += ["", "| DSB modality | images | mean Dice | per class |", "|---|---|---|---|"]
    for group, g in dsb["per_group"].items():
        classes = ", ".join(f"{k} {_f(v)}" for k, v in g["per_class"].items())
        out.append(f"| {group} | {g['n_images']} | {_f(g['mean_dice'])} | {classes} |")
    isbi = semantic["isbi2012_em"]
    pub = isbi["published"]
    out += [
        "",
        f"ISBI: pixel error {isbi['pixel_error']:.4f} (U-Net paper {pub['pixel_error']}), "
        f"Rand error {isbi['rand_error']:.4f} (paper {pub['rand_error']}; theirs on the "
        "challenge's test slices). Training: ISBI "
        f"{isbi['train_seconds']} s ({isbi['steps']} steps), DSB {dsb['train_seconds']} s "
        f"({dsb['steps']} steps); scoring {SCORED} DSB images {dsb['score_300_seconds']} s.",
    ]
    return out


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv=None) -> None:
    import argparse

    from bench.timing import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    env = environment()
    result = {"env": env, "semantic": bench_semantic(args.shared)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write("\n".join(lines(result["semantic"])) + "\n")


if __name__ == "__main__":
    main()
