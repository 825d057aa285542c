"""``make bench``: speed of every stage built so far, as JSON + a markdown table.

Each stage is timed over repeats (median reported) next to a baseline measured in the same
run, and the ratio is given. Results go to ``bench/results/<date>.json`` and ``.md``.

Stages so far
-------------
- ingest: ``loop ingest`` of the DSB2018 images + masks + manifest into a fresh study, vs the
  floor of reading and hashing the same files (no database); and a re-ingest (nothing changed).
- agreement: ``loop agree`` on 30 tasks x 3 annotators of ~50 nuclei (bench/agreement.py).
- labelstudio: push and pull against a local server (bench/labelstudio.py).
- efficiency: label efficiency on DSB2018's three modalities, ``MAKE_BENCH_STRATEGIES``
  (random and the default on whole images, random and typical regions) over 5 seeds,
  ``MAKE_BENCH_ROUNDS`` round (4 initial images, then 4 images or 16 regions), through a
  real Label Studio, with a full-pool reference (bench/efficiency.py); the headline, on three
  cost axes (images, objects, the experts' effort). It keeps 5 seeds and gives up rounds to
  fit the hour: one seed's training noise is larger than most strategy effects, a third point
  is not. More arms, rounds and a full-pool
  reference trained to its plateau: ``python -m bench.efficiency`` (not part of ``make bench``:
  hours on 2 cores). Classification (BCCD, modAL entropy against random) comes with the models.
- models: training, evaluation, uncertainty and scoring (bench/models.py).
- semantic: the U-Net family on ISBI 2012 EM (20 slices train, 10 test) and on DSB as three
  classes (bench/semantic.py): Dice and IoU per class (``semantic.<data>.per_class.<CLASS>``),
  training and scoring times.
- detection: the centre-heatmap family on BCCD's own split (bench/detection.py): precision,
  recall, F1 and AP at IoU 0.5 per class (``detection.bccd.per_class.<CLASS>.f1_50``),
  count errors, training and scoring times.
- scale: ``loop measure`` in one process and on 1 and 2 Dask workers, peak memory for a
  folder ``SCALE_FACTOR`` times larger, and the driver's write rates (bench/scale.py, in a
  process of its own so that its memory figures are its own).

Each stage's wall time is recorded (``stage_seconds``, with the ``total``): the whole is sized
for ``BUDGET_MINUTES`` on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import environment, median_time
from loop.cli.bench import paired_text

REPO = Path(__file__).resolve().parents[1]
# the baselines (random, the default, on whole images) and regions (random, typical by group)
MAKE_BENCH_STRATEGIES = ("random", "auto", "random@region", "typiclust+groups@region")
MAKE_BENCH_ROUNDS = 1  # 5 seeds and fewer rounds (the rule), to fit the hour
SCALE_IMAGES, SCALE_FACTOR = 40, 4  # the folder, and how many times larger for the memory check
BUDGET_MINUTES = 95  # the whole of make bench on 2 CPU cores (semantic 20, detection 12)


def bench_ingest(data: Path, repeats: int) -> dict:
    from loop.core.images import file_sha256, read_image, read_mask
    from loop.data.find import find_images
    from loop.data.ingest import ingest
    from loop.study import init_study

    files = find_images(data / "images", (".png", ".tif"))

    def floor():
        for path in files:
            file_sha256(path)
            image = read_image(path)
            read_mask(data / "masks" / f"{path.stem}.tif", image.shape[:2])

    def fresh():
        with tempfile.TemporaryDirectory() as tmp, init_study(Path(tmp) / "s") as study:
            ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")

    with tempfile.TemporaryDirectory() as tmp:
        with init_study(Path(tmp) / "s") as study:
            ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")

            def again():
                ingest(
                    study, data / "images", masks=data / "masks", metadata=data / "manifest.json"
                )

            t_again, _ = median_time(again, repeats)
    t_floor, _ = median_time(floor, repeats)
    t_fresh, runs = median_time(fresh, repeats)
    n = len(files)
    return {
        "n_images": n,
        "seconds": round(t_fresh, 3),
        "runs": [round(t, 3) for t in runs],
        "images_per_s": round(n / t_fresh, 1),
        "baseline": "read + sha256 of the same images and masks, no database",
        "baseline_seconds": round(t_floor, 3),
        "ratio_to_baseline": round(t_fresh / t_floor, 2),
        "reingest_seconds": round(t_again, 3),
        "target": "< 30 s for 664 images",
    }


def table(results: dict) -> str:
    lines = [
        f"# Benchmarks {results['env']['date']} (commit {results['env']['commit'][:8]}, "
        f"{results['env']['cpus']} CPUs, {results['env']['device']})",
        "",
        "| stage | median | rate | baseline | ratio |",
        "|---|---|---|---|---|",
    ]
    ing = results["speed"].get("ingest")
    if ing:
        lines.append(
            f"| ingest {ing['n_images']} images | {ing['seconds']:.2f} s | "
            f"{ing['images_per_s']:.0f} img/s | {ing['baseline_seconds']:.2f} s (read+hash) | "
            f"{ing['ratio_to_baseline']:.2f}x |"
        )
        lines.append(f"| re-ingest (no change) | {ing['reingest_seconds']:.2f} s | | | |")
    ag = results["speed"].get("agreement")
    if ag:
        lines.append(
            f"| agree {ag['tasks']} tasks x {ag['annotators']} annotators "
            f"({ag['objects_per_image']['mean']:.0f} objects each) | {ag['seconds']:.2f} s | "
            f"{ag['tasks_per_s']:.1f} tasks/s | {ag['baseline_read_masks_seconds']:.2f} s "
            f"(read the masks) | {ag['ratio']:.1f}x |"
        )
    ls = results["speed"].get("labelstudio")
    if ls:
        n = ls["n_tasks"]
        lines.append(
            f"| push {n} tasks + pre-annotations "
            f"({ls['mean_objects_per_image']:.0f} objects each) | "
            f"{ls['push_s']:.1f} s | {ls['push_tasks_per_s']:.0f} tasks/s | "
            f"{ls['push_without_predictions_s']:.1f} s (no pre-annotations) | "
            f"{ls['push_s'] / ls['push_without_predictions_s']:.2f}x |"
        )
        lines.append(
            f"| pull {n} annotations | {ls['pull_s']:.1f} s | "
            f"{ls['pull_annotations_per_s']:.0f} ann/s | | |"
        )
        full = ls.get("repull_full_s")
        lines.append(
            f"| re-pull (nothing new) | {ls['repull_unchanged_s']:.2f} s | | "
            + (
                f"{full:.1f} s (every task read) | {ls['repull_unchanged_s'] / full:.2f}x |"
                if full
                else "| |"
            )
        )
        c = ls["codec"]
        lines.append(
            f"| brush encode, per object | {c['encode_ms_per_object']:.3f} ms | | "
            f"{c['encode_sdk_ms_per_object']:.3f} ms (SDK mask2rle) | "
            f"{c['encode_ms_per_object'] / c['encode_sdk_ms_per_object']:.2f}x |"
        )
        lines.append(
            f"| brush decode, per object | {c['decode_ms_per_object']:.3f} ms | | "
            f"{c['decode_sdk_ms_per_object']:.3f} ms (SDK decode_rle) | "
            f"{c['decode_ms_per_object'] / c['decode_sdk_ms_per_object']:.2f}x |"
        )
        for key, what, base, name in (
            ("encode_labels_ms_per_object", "encode, a label image at once", "encode", "mask2rle"),
            ("alpha_runs_ms_per_object", "decode to pixel runs", "decode", "decode_rle"),
        ):
            if key in c:
                sdk = c[f"{base}_sdk_ms_per_object"]
                lines.append(
                    f"| brush {what}, per object | {c[key]:.3f} ms | | {sdk:.3f} ms (SDK "
                    f"{name}) | {c[key] / sdk:.2f}x |"
                )
        lines.append("")
        lines.append(
            f"push breakdown (s): {ls['push_breakdown_s']}; "
            f"pull breakdown (s): {ls['pull_breakdown_s']}"
        )
    stages = results.get("stage_seconds")
    if stages:
        total = stages.get("total", sum(stages.values()))
        lines += [
            "",
            "Wall time by stage: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in stages.items() if k != "total")
            + f"; in all {total / 60:.1f} min (sized for {BUDGET_MINUTES} min on 2 cores).",
        ]
    eff = results.get("label_efficiency")
    if eff:
        lines += ["", *efficiency_lines(results)]
    models = results.get("models")
    if models:
        lines += ["", *models_table(models)]
    if results.get("scale"):
        lines += ["", *scale_lines(results["scale"])]
    if results.get("semantic"):
        from bench.semantic import lines as semantic_lines

        lines += semantic_lines(results["semantic"])
    if results.get("detection"):
        from bench.detection import lines as detection_lines

        lines += detection_lines(results["detection"])
    return "\n".join(lines) + "\n"


def scale_lines(scale: dict) -> list[str]:
    """The scale section: loop measure in one process and on 1 and 2 Dask workers."""
    lines = [
        "| loop measure | images | seconds | of which startup | images/s | after startup | "
        "peak RSS driver / worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in scale["measure"].items():
        lines.append(
            f"| {name} | {r['images']} | {r['seconds']} | {r['startup_seconds']} | "
            f"{r['images_per_s']} | {r['images_per_s_after_startup']} | "
            f"{r['peak_rss_driver_mb']} / {r['peak_rss_worker_mb'] or '-'} MB |"
        )
    lines += profile_lines(scale["measure"])
    big, w = scale["larger_folder_2_workers"], scale["writer"]
    lines += [
        "",
        f"2 vs 1 workers: {scale['ratio_2_vs_1_workers']}x ("
        f"{scale['ratio_2_vs_1_workers_after_startup']}x after startup; target >= 1.7x); "
        f"2 workers vs one process: {scale['ratio_2_workers_vs_process']}x. A folder of "
        f"{big['images']} images on 2 workers: {big['images_per_s']} images/s, peak RSS "
        f"driver {big['peak_rss_driver_mb']} MB, worker {big['peak_rss_worker_mb']} MB. "
        f"The driver writes {w['score_rows_per_s']} score rows/s (chunks of {w['chunk']}) and "
        f"{w['objects_csv_rows_per_s']} objects.csv rows/s.",
    ]
    malloc = scale.get("malloc_trim")
    if malloc:
        lines += [
            "",
            "One process with Dask's worker setting MALLOC_TRIM_THRESHOLD_=65536 (which the "
            f"worker plugin undoes): {malloc['dask_trim']['seconds']} s against "
            f"{malloc['glibc_default']['seconds']} s ({malloc['ratio_seconds']}x), the network "
            f"{malloc['ratio_network']}x slower per image.",
        ]
    compiled = scale.get("import_cache")
    if compiled:
        lines += [
            "",
            f"Importing the segmentation model in a fresh process: {compiled['cold_s']} s with "
            f"an empty numba cache (every process before), {compiled['warm_s']} s with the "
            f"cache ({compiled['ratio']}x).",
        ]
    standin = scale.get("standin")
    if standin:
        lines += [
            "",
            f"Orchestration alone (a {standin['seconds_per_image']} s stand-in per image, "
            f"{standin['images_per_worker']} a worker): images/s by workers "
            + ", ".join(f"{k}: {v}" for k, v in standin["images_per_s"].items())
            + " (ideal "
            + ", ".join(f"{k}: {v}" for k, v in standin["ideal_images_per_s"].items())
            + "); ratio to one worker "
            + ", ".join(f"{k}: {v}x" for k, v in standin["ratio"].items())
            + " (targets 8: >= 7x, 32: >= 25x).",
        ]
    return lines


def profile_lines(runs: dict) -> list[str]:
    """Where loop measure's time went (``loop measure --profile``), seconds per image of each
    stage, run by run: the workers' stages (summed over them) and the driver's."""
    profiled = {name: r["profile"] for name, r in runs.items() if r.get("profile")}
    if not profiled:
        return []
    stages: dict[tuple[str, str], None] = {}
    for p in profiled.values():
        for side in ("workers", "driver"):
            stages.update(dict.fromkeys((side, s) for s in p[side]))
    lines = [
        "",
        "| seconds per image | " + " | ".join(profiled) + " |",
        "|---|" + "---|" * len(profiled),
    ]
    for side, name in stages:
        cells = [f"{p[side].get(name, 0.0) / max(1, p['images']):.3f}" for p in profiled.values()]
        lines.append(f"| {side}: {name} | " + " | ".join(cells) + " |")
    walls = [f"{p['seconds'] / max(1, p['images']):.3f}" for p in profiled.values()]
    lines.append("| wall | " + " | ".join(walls) + " |")
    return lines


def _never(value) -> str:
    return "never" if value is None else str(value)


def _ci(record: dict | None) -> str:
    if not record or record.get("value") is None:
        return "never"
    low, high = record.get("low"), record.get("high")
    band = f" [{low:g}, {high:g}]" if low is not None else ""
    return f"{record['value']:g}{band}"


def efficiency_lines(results: dict) -> list[str]:
    eff = results["efficiency"]
    settings = eff["settings"]
    split = eff.get("split", {})
    lines = [
        f"Label efficiency, DSB2018 all modalities (subset {split.get('subset')}; "
        f"{settings['test_images']} test images stratified by modality, "
        f"{settings['initial']} initial labels, batches of {settings['batch']}, "
        f"{settings['seeds']} seeds, whole pool ranked: {eff.get('pool_ranked')}): full-pool "
        f"AP@0.5 {results['full_pool_ap50']:.3f} ± {eff['full_pool']['sd']:.3f} "
        f"({eff['full_pool']['n_images']} images, {eff['full_pool']['steps']} steps, one model "
        "per seed: " + ", ".join(f"{r['value']:.3f}" for r in eff["full_pool"]["seeds"]) + ").",
        "",
        "| strategy | AP@0.5 by labeled images (mean [95% interval]) | labels to 95% [bootstrap] "
        "| objects to 95% [bootstrap] | objects at the end | gain over random at the end "
        "(same seeds) | AUC / full | worst group at the end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["label_efficiency"].items():
        default = " (default)" if name == results["default_strategy"] else ""
        curve = ", ".join(
            f"{n:g}: {m:.3f} [{lo:.3f}, {hi:.3f}]" for n, m, lo, hi in r.get("interval_curve", [])
        )
        objects = eff["cost_axis"][name]["objects_to_95_interval"]
        worst = f"{r['worst_group']} {r['worst_group_final']:.3f}" if r.get("worst_group") else "-"
        lines.append(
            f"| {name}{default} | {curve} | {_ci(r.get('labels_to_95_interval'))} | "
            f"{_ci(objects)} | {r['objects_curve'][-1][0]:,.0f} | "
            f"{paired_text(r.get('paired_vs_random'))} | {_never(r.get('auc'))} | {worst} |"
        )
    lines += ["", *effort_lines(results)]
    lines += ["", "| strategy | group | AP@0.5 by labeled images (mean [95% interval]) |"]
    lines += ["|---|---|---|"]
    for group, value in (eff["full_pool"].get("per_group") or {}).items():
        lines.append(f"| full pool (the ceiling of this recipe) | {group} | {value:.3f} |")
    for name, r in results["label_efficiency"].items():
        for group, curve in (r.get("per_group") or {}).items():
            points = ", ".join(f"{n:g}: {m:.3f} [{lo:.3f}, {hi:.3f}]" for n, m, lo, hi in curve)
            lines.append(f"| {name} | {group} | {points} |")
    cls = results.get("classification_efficiency")
    if cls:
        lines += [
            "",
            f"Classification, BCCD (macro-F1; full pool {cls['full_pool_macro_f1']:.3f}):",
            "",
            "| strategy | to 90% | to 95% | vs random (95%) |",
            "|---|---|---|---|",
        ]
        for name, r in cls["label_efficiency"].items():
            lines.append(
                f"| {name} | {_never(r['labels_to_90'])} | {_never(r['labels_to_95'])} | "
                f"{_never(r['ratio_to_random_95'])} |"
            )
    return lines


def effort_lines(results: dict) -> list[str]:
    """The arms on the effort axis: the experts' weighted edits of the pre-annotations
    (``[effort]``) against AP@0.5, and the effort to reach 90% / 95% of the full pool."""
    lines = [
        "| strategy | AP@0.5 by effort spent (mean effort: mean AP [95% interval]) | effort to "
        "90% | effort to 95% | objects at the end | gain over random at its last round's "
        "effort (same seeds) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["label_efficiency"].items():
        curve = ", ".join(
            f"{e:,.0f}: {m:.3f} [{lo:.3f}, {hi:.3f}]" for e, m, lo, hi in r.get("effort_curve", [])
        )
        lines.append(
            f"| {name} | {curve} | {_ci(r.get('effort_to_90_interval'))} | "
            f"{_ci(r.get('effort_to_95_interval'))} | {r['objects_curve'][-1][0]:,.0f} | "
            f"{paired_text(r.get('paired_vs_random_by_effort'))} |"
        )
    return lines


def _score_speed_lines(speed: dict | None) -> list[str]:
    if not speed:
        return []
    return [
        "",
        f"Default measure (flip, forward only) on {speed['n_images']} 256x256 images: "
        f"{speed['default_seconds_per_image']} s per image = {speed['default_vs_forward']}x one "
        f"batched forward pass ({speed['forward_seconds_per_image']} s; target <= 2x); "
        f"segment (masks) {speed['segment_vs_forward']}x. `loop score` of 1,000 256x256 "
        f"images: {speed['rank_1000_seconds']} s (target < 180 s), peak RSS "
        f"{speed['peak_rss_mb']} MB.",
    ]


def models_table(models: dict) -> list[str]:
    seg, cls = models["segmentation"], models["classification"]
    d = seg["default"]
    lines = [
        f"Segmentation ({seg['split']}): nbase {d['nbase']}, {d['n_train']} training + "
        f"{d['n_val']} validation images, {d['steps']} steps in {d['train_seconds']:.0f} s; "
        f"test AP@0.5 {d['test']['ap50']:.3f}, AP@0.75 {d['test']['ap75']:.3f}, "
        f"Dice {d['test']['dice']:.3f}.",
    ]
    plain = seg.get("without_augmentation")
    if plain:
        lines.append(
            f"Without augmentation: AP@0.5 {plain['test_ap50']:.3f}, AP@0.75 "
            f"{plain['test_ap75']:.3f} ({plain['train_seconds']:.0f} s)."
        )
    u = seg["uncertainty"]
    lines += ["", "| measure | Spearman with 1 - AP@0.5 (test images) |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in u["spearman_with_error"].items()]
    lines += [
        "",
        f"Seconds per image: plain {u['seconds_per_image']['plain']}, with TTA "
        f"{u['seconds_per_image']['tta']}, flip (forward only) {u['seconds_per_image']['flip']}.",
        *_score_speed_lines(seg.get("score_speed")),
        "",
        "| loop score | images | seconds | images/s | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name, r in seg["score"].items():
        lines.append(
            f"| pool of {name} | {r['scored']} | {r['seconds']:.0f} | "
            f"{r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} MB |"
        )
    lines += [
        "",
        f"Classification (BCCD, {cls['n_images']} crops, {cls['n_test']} test): "
        + "; ".join(
            f"{k}: accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}"
            for k, v in cls.items()
            if isinstance(v, dict) and "accuracy" in v
        ),
    ]
    for arm, curve in cls["active_learning"].items():
        lines.append(f"- {arm}: " + ", ".join(f"{n}: {m:.3f}±{s:.3f}" for n, m, s in curve))
    return lines


def _ingest_stage(args, results: dict, stem: Path) -> None:
    print("bench: ingest ...", file=sys.stderr)
    results["speed"]["ingest"] = bench_ingest(args.data, args.repeats)


def _agreement_stage(args, results: dict, stem: Path) -> None:
    from bench.agreement import bench_agreement

    print("bench: agreement ...", file=sys.stderr)
    results["speed"]["agreement"] = bench_agreement(args.data, args.repeats)


def _labelstudio_stage(args, results: dict, stem: Path) -> None:
    from bench.labelstudio import bench_labelstudio

    results["speed"]["labelstudio"] = bench_labelstudio(args.tasks)


def _efficiency_stage(args, results: dict, stem: Path) -> None:
    from bench.efficiency import bench_efficiency, plots

    print("bench: label efficiency (about 30 min on 2 cores) ...", file=sys.stderr)
    eff = bench_efficiency(args.data, strategies=MAKE_BENCH_STRATEGIES, rounds=MAKE_BENCH_ROUNDS)
    results["efficiency"] = eff
    results["full_pool_ap50"] = eff["full_pool_ap50"]
    results["label_efficiency"] = eff["label_efficiency"]
    results["default_strategy"] = eff["default_strategy"]
    for key in ("groups", "seeds", "pool_ranked", "cost_axis"):  # the keys, top level
        results[key] = eff[key]
    results["speed"]["rounds"] = {
        "step_seconds_median": eff["step_seconds_median"],
        "report_seconds": eff["report_seconds"],
        "report_plots": eff.get("report_plots"),
    }
    plots(eff, Path(f"{stem}-efficiency"))


def _scale_stage(args, results: dict, stem: Path) -> None:
    """``python -m bench.scale`` in a process of its own: the driver's peak RSS is then its
    own, not what the earlier stages left in this process."""
    print("bench: scale (about 8 min on 2 cores) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scale.json"
        command = [sys.executable, "-m", "bench.scale", str(out), "--data", str(args.data)]
        command += ["--images", str(SCALE_IMAGES), "--factor", str(SCALE_FACTOR)]
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL)
        if done.returncode:
            raise RuntimeError(f"bench: {' '.join(command)} failed (its log is above)")
        results["scale"] = json.loads(out.read_text())


def _models_stage(args, results: dict, stem: Path) -> None:
    from bench.models import bench_classification, bench_segmentation
    from loop.reports.plots import efficiency_curves

    print("bench: models (about 11 min on 2 cores) ...", file=sys.stderr)
    results["models"] = {
        "segmentation": bench_segmentation(args.data, quick=not args.no_augmentation_run),
        "classification": bench_classification(args.data.parent / "bccd_wbc"),
    }
    seg = results["models"]["segmentation"]
    results["speed"]["score"] = {
        "pools": seg["score"],
        "seconds_per_image": seg["uncertainty"]["seconds_per_image"],  # plain and with TTA
        **seg["score_speed"],  # default_images_per_s, default_vs_forward, rank_1000_seconds
    }
    d = seg["default"]
    results["speed"]["train"] = {
        "seconds_per_image_epoch": round(d["train_seconds"] / (d["steps"] * 8), 4),
        "note": "one 128 px crop of one image per image-epoch; batch 8",
    }
    cls = results["models"]["classification"]["efficiency"]
    results["classification_efficiency"] = cls
    efficiency_curves(
        cls["label_efficiency"],
        Path(f"{stem}-efficiency-bccd.png"),
        metric="macro-F1",
        full=cls["full_pool_macro_f1"],
        title="BCCD: random vs modAL entropy, 3 seeds",
    )


def _semantic_stage(args, results: dict, stem: Path) -> None:
    from bench.semantic import bench_semantic

    print("bench: semantic segmentation (about 20 min on 2 cores) ...", file=sys.stderr)
    results["semantic"] = bench_semantic(args.data.parent)


def _detection_stage(args, results: dict, stem: Path) -> None:
    from bench.detection import bench_detection

    print("bench: object detection (about 12 min on 2 cores) ...", file=sys.stderr)
    results["detection"] = bench_detection(args.data.parent)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "dsb2018_train"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks pushed and pulled")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="stages to skip (ingest, agreement, labelstudio, efficiency, scale, models, "
        "semantic, detection)",
    )
    parser.add_argument(
        "--no-augmentation-run",
        action="store_true",
        help="models: also train without augmentation (about 3 min more)",
    )
    args = parser.parse_args(argv)
    if not (args.data / "images").is_dir():
        sys.exit(f"bench: no DSB2018 data at {args.data}; pass --data")
    results = {"env": environment(), "speed": {}, "stage_seconds": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / results["env"]["date"]
    began = time.perf_counter()
    for name, run in (
        ("ingest", _ingest_stage),
        ("agreement", _agreement_stage),
        ("labelstudio", _labelstudio_stage),
        ("efficiency", _efficiency_stage),
        ("scale", _scale_stage),
        ("models", _models_stage),
        ("semantic", _semantic_stage),
        ("detection", _detection_stage),
    ):
        if name in args.skip:
            continue
        start = time.perf_counter()
        run(args, results, stem)
        results["stage_seconds"][name] = round(time.perf_counter() - start, 1)
    results["stage_seconds"]["total"] = round(time.perf_counter() - began, 1)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(results))
    sys.stdout.write(table(results))
    print(f"bench: wrote {stem}.json and {stem}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
