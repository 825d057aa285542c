"""Models and strategies on real data: the figures issue 4 asks for, through the library.

Segmentation (DSB2018 fluorescence, a fixed split documented in the README: ``loop split
--where modality=fluorescence --test 60 --initial 40 --seed 0``):

- train the default model on the 40 initial labels (CPU time), evaluate on the 60 test images;
- the same with augmentation off (flips, intensity, noise and blur off): its effect;
- Spearman correlation, on the test images, of each segmentation measure with the image's
  error (1 - AP@0.5): does the uncertainty say where the model is wrong;
- ``loop score`` throughput and peak RSS over a pool of 60 images and of 1,000 256x256 images
  (each in its own process, so the peak is its own: flat memory means the same peak).

Classification (BCCD white-blood-cell crops): accuracy and macro-F1 on a stratified 30% test
split with all other images labeled, and an uncertainty-sampling run through modAL
(``ActiveLearner.query``) against random, macro-F1 per round.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _study(
    folder: Path,
    data: Path,
    *,
    where=("modality=fluorescence",),
    test=60,
    initial=40,
    toml: str | None = None,
):
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    study = init_study(folder)
    if toml:
        (folder / "loop.toml").write_text(toml)
        study.close()
        study = open_study(folder)
    ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")
    split_study(study, test=test, initial=initial, seed=0, where=list(where))
    return study


def _spearman(study, model_id: int) -> dict:
    from scipy.stats import spearmanr

    from loop import learn
    from loop.core.images import read_image
    from loop.core.metrics import segmentation_scores
    from loop.learn.labels import _mask_of
    from loop.models import cellpose_rank as rank
    from loop.models import cellpose_seg as cs

    row = learn.model_row(study, model_id)
    net = learn.load_model(study, row)
    errors, measures, seconds = [], [], {"plain": [], "tta": [], "flip": []}
    for image in study.store.images("split = 'test'"):
        pixels = read_image(learn.image_path(image))
        truth = _mask_of(study, image, study.store.truth(image["id"]))
        start = time.perf_counter()
        (fast,) = rank.fast_measures(net, [pixels], config=study.config.model)
        seconds["flip"].append(time.perf_counter() - start)
        start = time.perf_counter()
        cs.segment(net, pixels, config=study.config.model)
        seconds["plain"].append(time.perf_counter() - start)
        start = time.perf_counter()
        seg = cs.segment(net, pixels, config=study.config.model, tta=True)
        seconds["tta"].append(time.perf_counter() - start)
        errors.append(1 - segmentation_scores(truth, seg.masks)["ap50"])
        measures.append({**seg.measures, "flip": fast.measures["flip"]})
    out = {
        name: round(float(spearmanr([m[name] for m in measures], errors).statistic), 3)
        for name in ("flip", "flow_error", "entropy", "tta", "count")
    }
    return {
        "spearman_with_error": out,
        "n_images": len(errors),
        "seconds_per_image": {k: round(float(np.median(v)), 3) for k, v in seconds.items()},
    }


def _speed(study, model_id: int, data: Path, n: int = 32) -> dict:
    """Per-image cost of the default measure (the fast, forward-only one) against one
    batched forward pass of the network (the limit) and against ``segment`` (masks
    reconstructed), on ``n`` 256x256 DSB images, in the same run."""
    from loop import learn
    from loop.core.images import read_image
    from loop.models import cellpose_rank as rank
    from loop.models import cellpose_seg as cs

    net = learn.load_model(study, learn.model_row(study, model_id))
    manifest = json.loads((data / "manifest.json").read_text())
    ids = [r["id"] for r in manifest if tuple(r["shape"][:2]) == (256, 256)][:n]
    images = [read_image(data / "images" / f"{i}.png") for i in ids]
    config = study.config.model
    rank.fast_measures(net, images[:2], config=config)  # warm-up

    def per_image(fn) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) / len(images)

    inputs = [cs.to_input(im, invert=cs.polarity(net)) for im in images]
    forward = per_image(lambda: rank.forward(net, inputs))
    default = per_image(lambda: rank.fast_measures(net, images, config=config))
    segment = per_image(lambda: [cs.segment(net, im, config=config) for im in images])
    return {
        "n_images": len(images),
        "forward_seconds_per_image": round(forward, 4),
        "default_seconds_per_image": round(default, 4),
        "default_images_per_s": round(1 / default, 2),
        "default_vs_forward": round(default / forward, 2),
        "segment_vs_forward": round(segment / forward, 2),
        "target": "default <= 2x one batched forward pass per image",
    }


def _rank_1000(study, data: Path, folder: Path) -> dict:
    """``loop score`` (the default strategy) of 1,000 256x256 images, in its own process: the
    DSB 256x256 images and their rotations by 90, 180 and 270 degrees (distinct content, so
    ingest does not drop them as duplicates) until there are 1,000."""
    from PIL import Image

    manifest = json.loads((data / "manifest.json").read_text())
    ids = [r["id"] for r in manifest if tuple(r["shape"][:2]) == (256, 256)]
    images = folder / "data" / "images"
    images.mkdir(parents=True)
    for i in range(1000):
        turn, source = i // len(ids), data / "images" / f"{ids[i % len(ids)]}.png"
        with Image.open(source) as im:
            (im.rotate(90 * turn) if turn else im).save(images / f"{i:04d}-{source.name}")
    from loop.data.ingest import ingest
    from loop.study import init_study

    with init_study(folder / "study") as target:
        ingest(target, images)
        target.store.db.execute("UPDATE images SET split = 'pool'")
        target.store.db.conn.commit()
        _copy_model(study, target)
    result = _score_process(folder / "study")
    return {
        "n_images": result["scored"],
        "rank_1000_seconds": round(result["seconds"] * 1000 / max(1, result["scored"]), 1),
        "peak_rss_mb": round(result["peak_rss_mb"]),
        "target": "< 180 s on 2 cores",
    }


def _score_process(study_path: Path) -> dict:
    code = (
        "import resource, sys, time, json\n"
        "from loop.study import open_study\nfrom loop import learn\n"
        f"s = open_study({str(study_path)!r})\n"
        "t = time.perf_counter()\n"
        "r = learn.score(s, k=16)\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'scored': r.scored,"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"loop score in {study_path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _copy_model(source, target) -> None:
    """Register ``source``'s current model in ``target`` (same file), for scoring benches."""
    from loop import learn

    row = dict(learn.current_model(source))
    row.pop("id")
    row["arm"] = None  # the target's current model, whichever arm trained it
    row["path"] = str(source.resolve(row["path"]).resolve())
    target.store.db["models"].insert(row)


def bench_segmentation(data: Path, *, quick: bool = False) -> dict:
    from loop import learn

    out = {"split": "fluorescence; test 60, initial 40, seed 0; pool = the rest"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        study = _study(tmp / "seg", data)
        print("bench: training the default model on 40 images ...", file=sys.stderr)
        report = learn.train(study)
        metrics = learn.evaluate(study)
        out["default"] = {
            "train_seconds": round(report.seconds, 1),
            "steps": report.steps,
            "n_train": report.n_train,
            "n_val": report.n_val,
            "nbase": list(study.config.model.nbase),
            "test": {
                k: metrics[k] for k in ("ap50", "ap75", "f1", "matched_iou", "dice", "n_images")
            },
        }
        print(f"bench: AP@0.5 {metrics['ap50']:.3f}; measures vs error ...", file=sys.stderr)
        out["uncertainty"] = _spearman(study, report.model_id)
        if not quick:
            print("bench: training without augmentation ...", file=sys.stderr)
            toml = "[augment]\nflips = false\nintensity = false\nnoise = false\nblur = false\n"
            plain = _study(tmp / "plain", data, toml=toml)
            r2 = learn.train(plain)
            m2 = learn.evaluate(plain)
            out["without_augmentation"] = {
                "train_seconds": round(r2.seconds, 1),
                "test_ap50": m2["ap50"],
                "test_ap75": m2["ap75"],
            }
            plain.close()
        print("bench: scoring 60 images ...", file=sys.stderr)
        small_data = tmp / "small"
        (small_data / "images").mkdir(parents=True)
        (small_data / "masks").mkdir()
        for path in sorted((data / "images").iterdir())[:60]:
            shutil.copy(path, small_data / "images" / path.name)
            shutil.copy(data / "masks" / f"{path.stem}.tif", small_data / "masks")
        shutil.copy(data / "manifest.json", small_data / "manifest.json")
        s = _study(tmp / "score-60", small_data, where=(), test=0, initial=0)
        _copy_model(study, s)
        s.close()
        result = _score_process(tmp / "score-60")
        result["images_per_s"] = round(result["scored"] / result["seconds"], 2)
        scoring = {"60": result}  # the 1,000-image pool: _rank_1000 below
        print(
            "bench: the default measure against the forward pass; 1,000 images ...", file=sys.stderr
        )
        out["score"] = scoring
        out["score_speed"] = {
            **_speed(study, report.model_id, data),
            **_rank_1000(study, data, tmp / "rank"),
        }
        study.close()
    return out


def bench_classification(data: Path, *, rounds: int = 12, batch: int = 10, seeds: int = 3) -> dict:
    from modAL.uncertainty import entropy_sampling
    from sklearn.model_selection import train_test_split

    from loop.config import ClassifierConfig
    from loop.core.images import read_image
    from loop.core.metrics import classification_scores
    from loop.models import classifier as cl

    files = sorted((data / "BCCD_cropped").glob("*/*"))
    y = np.array([f.parent.name for f in files])
    start = time.perf_counter()
    x = np.stack([cl.features(read_image(f)) for f in files])
    feature_s = (time.perf_counter() - start) / len(files)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
    out = {
        "n_images": len(y),
        "n_test": len(test),
        "feature_ms_per_image": round(1000 * feature_s, 2),
    }
    for estimator in ("logistic", "random-forest"):
        model = cl.train(
            x[train],
            y[train],
            config=ClassifierConfig(estimator=estimator),
            rng=np.random.default_rng(0),
            classes=sorted(set(y)),
        )
        s = classification_scores(y[test], model.predict(x[test]))
        out[estimator] = {
            "accuracy": round(s["accuracy"], 3),
            "macro_f1": round(s["macro_f1"], 3),
            "kappa": round(s["kappa"], 3),
        }
    curves = {"entropy (modAL entropy_sampling)": [], "random": []}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        initial = list(rng.choice(train, 20, replace=False))
        for arm in curves:
            labeled = list(initial)
            curve = []
            for _ in range(rounds):
                model = cl.train(
                    x[labeled],
                    y[labeled],
                    config=ClassifierConfig(committee=0),
                    rng=np.random.default_rng(seed),
                    classes=sorted(set(y)),
                )
                f1 = classification_scores(y[test], model.predict(x[test]))["macro_f1"]
                curve.append((len(labeled), f1))
                pool = np.array([i for i in train if i not in set(labeled)])
                if arm == "random":
                    picks = rng.choice(len(pool), batch, replace=False)
                else:
                    picks, _ = entropy_sampling(model.learner.estimator, x[pool], n_instances=batch)
                labeled += list(pool[picks])
            curves[arm].append(curve)
    out["active_learning"] = curves = {
        arm: [
            [
                int(runs[0][i][0]),
                round(float(np.mean([r[i][1] for r in runs])), 3),
                round(float(np.std([r[i][1] for r in runs])), 3),
            ]
            for i in range(rounds)
        ]
        for arm, runs in curves.items()
    }
    from loop.core.curves import summarize

    full = out["logistic"]["macro_f1"]
    out["efficiency"] = {
        "full_pool_macro_f1": full,
        "default_strategy": "entropy (modAL entropy_sampling)",
        "label_efficiency": summarize(
            {("random" if a == "random" else a): c for a, c in curves.items()}, full
        ),
    }
    return out


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="skip the no-augmentation run")
    args = parser.parse_args(argv)
    results = {
        "classification": bench_classification(args.data / "bccd_wbc"),
        "segmentation": bench_segmentation(args.data / "dsb2018_train", quick=args.quick),
        "peak_rss_mb_parent": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
