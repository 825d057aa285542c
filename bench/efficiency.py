"""Label efficiency on a pool that mixes modalities: strategies against random.

The headline of ``make bench``, sized for 2 CPU cores:

- data: a fixed, seeded subset of ../shared/data/dsb2018_train stratified by the manifest's
  ``modality`` (``SUBSET`` images of each: fluorescence, stained tissue, brightfield), hard-linked
  into ``bench/work/efficiency/data``; test split stratified by modality (``SPLIT``), never
  annotated; 4 initial labeled images; the rest is the pool, **ranked whole every round**
  (``pool_sample = 0``);
- arms: ``STRATEGIES``: random whole images (the baseline); the default ``auto`` on whole
  images (with the study's ``modality`` groups ``typiclust+groups`` below
  ``score.coverage_until = 32`` labeled images, i.e. for every choice of this bench);
  ``random@region``; and ``typiclust+groups@region``, the most typical region of each
  cluster of model-free region features that no label covers, each modality keeping its share
  (the best region arm of the three-round runs; ``flip+groups@region``, the regions where the
  model's flip disagreement is highest, lost to random regions there). ``SEEDS`` seeds each,
  ``ROUNDS`` rounds of ``BATCH`` images or ``REGION_BATCH`` regions (``[regions]`` size 128,
  at most 2 of one image), through ``loop.rounds.efficiency`` (the same code as
  ``loop bench al``); an arm's cost is counted as images, annotated objects and the experts'
  effort (weighted edits of the pre-annotation, ``[effort]``);
- annotation: 3 simulated annotators (careful, average, sloppy) through a real Label Studio
  started for the bench, consensus by pixel majority, every batch image admitted
  (``min_agreement = 0``);
- recipe: the default network (nbase 2-8-16-32-64, 128 px crops, batch 8, augmentation on,
  input polarity ``auto``), 100..300 steps fresh, half of that warm-started each round, no
  validation hold-out (every label trains);
- full-pool reference: the same recipe on every pool image with its ground truth, one model
  per seed, each with the median number of steps an arm used;
- reported (``loop.rounds.efficiency.label_efficiency``): AP@0.5 overall and per modality by
  labeled images, mean and 95% interval over seeds; labels and annotated objects to 90/95% of
  the full pool with bootstrap intervals; the area under the curve over the full pool; the
  full pool's figure per modality (what this recipe reaches with every label).

The study lives in ``bench/work/efficiency`` (git-ignored): a stopped bench resumes where it
stopped, a finished one re-reads its figures. A changed recipe starts a fresh study: the TOML,
or a default it leaves to the code (``recipe.json`` keeps the resolved configuration). Changed
code under the same configuration is not detected; delete the folder after such a change.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "efficiency"
ANNOTATORS = ("bench-careful", "bench-average", "bench-sloppy")
SUBSET = {"fluorescence": 70, "HE/IHC color": 40, "brightfield": 10}
STRATEGIES = ("random", "auto", "random@region", "typiclust+groups@region")
SEEDS, ROUNDS, BATCH = 5, 2, 4
REGION_BATCH = 16  # regions a round for the @region arms (128 px, at most 2 of one image)
TOML = f"""\
# make bench: label efficiency (bench/efficiency.py)
task = "segmentation"
groups = ["modality"]
[model]
min_steps = 100
max_steps = 300
warm_fraction = 0.5
val_fraction = 0.0
[score]
pool_sample = 0
[rounds]
min_agreement = 0.0
annotators = [{", ".join(f'"{a}"' for a in ANNOTATORS)}]
profiles = ["careful", "average", "sloppy"]
"""
SPLIT = {"test": 30, "initial": 4, "seed": 0, "stratify": ("modality",)}


def subset(data: Path, folder: Path, *, seed: int = 0) -> Path:
    """Link (hard links, or copies) a seeded subset of the DSB images (``SUBSET`` per
    modality), their masks and their manifest entries into ``folder``; returns it."""
    import json

    import numpy as np

    manifest = json.loads((data / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    chosen = []
    for modality, n in SUBSET.items():
        rows = sorted((r for r in manifest if r["modality"] == modality), key=lambda r: r["id"])
        chosen += [rows[i] for i in sorted(rng.choice(len(rows), min(n, len(rows)), False))]
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for row in chosen:
        for sub, ext in (("images", ".png"), ("masks", ".tif")):
            link = folder / sub / f"{row['id']}{ext}"
            if not link.exists():  # ingest refuses symlinks out of the folder: a hard link
                try:
                    os.link(data / sub / f"{row['id']}{ext}", link)
                except OSError:  # another file system: a copy in the git-ignored work folder
                    shutil.copyfile(data / sub / f"{row['id']}{ext}", link)
    (folder / "manifest.json").write_text(json.dumps(chosen))
    return folder


def _study(data: Path, work: Path):
    from loop.config_parse import parse_config, resolved
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    key = work / "recipe.json"  # TOML with every default filled in: a changed default counts
    recipe = resolved(parse_config(TOML))
    if (work / "study" / "loop.toml").is_file():
        same = (work / "study" / "loop.toml").read_text() == TOML
        if same and (not key.is_file() or key.read_text() == recipe):
            key.write_text(recipe)  # a cache from before the key is trusted on its TOML
            return open_study(work / "study")
        shutil.rmtree(work)  # another recipe: its cache says nothing about this one
    study = init_study(work / "study")
    (work / "study" / "loop.toml").write_text(TOML)
    key.write_text(recipe)
    study.close()
    study = open_study(work / "study")
    data = subset(data, work / "data")
    ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")
    split_study(study, **SPLIT)
    return study


def bench_efficiency(
    data: Path,
    *,
    work: Path = WORK,
    strategies: tuple[str, ...] = STRATEGIES,
    seeds: int = SEEDS,
    rounds: int = ROUNDS,
    batch: int = BATCH,
    region_batch: int = REGION_BATCH,
    full_pool_chunks: int = 1,
) -> dict:
    """Run (or resume) the label-efficiency arms; returns the ``loop bench al`` record plus
    the wall time of this call and the per-step medians of the rounds."""
    import json
    import statistics

    from loop.cli.wiring import server_of
    from loop.cli.wiring import wiring as _wiring
    from loop.rounds.efficiency import EfficiencyOptions, arm_name, label_efficiency

    start = time.perf_counter()
    study = _study(data, work)
    server = server_of(study)
    server.start(timeout=300)
    try:
        # the simulated annotators of `loop bench al`: [rounds] of the TOML, noise seed 0
        tool, annotate = _wiring(study, "simulated", 0)
        options = EfficiencyOptions(
            strategies=strategies,
            seeds=seeds,
            rounds=rounds,
            batch=batch,
            region_batch=region_batch,
            full_pool_chunks=full_pool_chunks,
        )
        result = label_efficiency(
            study,
            tool,
            options,
            annotate=annotate,
            full_pool_folder=work / "full-pool",
            log=lambda line: print(f"bench: {line}", file=sys.stderr),
        )
        tool.close()
        steps: dict[str, list[float]] = {}
        for row in study.store.db["rounds"].rows:
            for step, seconds in json.loads(row["timings"] or "{}").items():
                steps.setdefault(step, []).append(seconds)
        result["step_seconds_median"] = {
            k: round(statistics.median(v), 2) for k, v in steps.items()
        }
        from loop.reports.html import write_report

        began = time.perf_counter()  # the report of one arm, its gallery included
        written = write_report(study, work / "report", arm=arm_name("random", 0))
        result["report_seconds"] = round(time.perf_counter() - began, 2)
        result["report_plots"] = len(written.plots)
        result["split"] = {**SPLIT, "subset": SUBSET}
        result["recipe"] = TOML
    finally:
        server.stop()
        study.close()
    result["wall_seconds_this_call"] = round(time.perf_counter() - start, 1)
    return result


def plots(result: dict, stem: Path) -> None:
    """The curves of a ``bench_efficiency`` result: ``STEM.png`` (overall, by labeled
    images), ``STEM-effort.png`` (overall, by the experts' effort), ``STEM-groups.png`` (a
    panel per modality, with the full pool's figure) and ``STEM-groups-effort.png`` (the same
    against effort)."""
    from loop.reports.plots import efficiency_curves, group_curves

    efficiency_curves(
        result["label_efficiency"],
        stem.with_name(stem.name + ".png"),
        metric="AP@0.5",
        full=result["full_pool_ap50"],
        title=f"DSB2018, all modalities: {result['seeds']} seeds, "
        f"batches of {result['settings']['batch']}",
    )
    efficiency_curves(
        result["label_efficiency"],
        stem.with_name(stem.name + "-effort.png"),
        metric="AP@0.5",
        full=result["full_pool_ap50"],
        title=f"DSB2018, all modalities, against the experts' effort: {result['seeds']} seeds",
        effort=True,
    )
    for suffix, against, effort in (("", "", False), ("-effort", ", against effort", True)):
        group_curves(
            result["label_efficiency"],
            stem.with_name(f"{stem.name}-groups{suffix}.png"),
            metric="AP@0.5",
            ceilings=result["full_pool"]["per_group"],
            title=f"DSB2018 by modality{against} (grey: the full pool, every label)",
            effort=effort,
        )


def main(argv=None) -> None:
    """``python -m bench.efficiency``: this bench alone, with other arms if asked; writes
    ``OUT.json`` and ``OUT.png`` (the ``make bench`` run writes its own, beside the rest)."""
    import argparse
    import json
    from datetime import date

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "dsb2018_train"
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="rounds per arm; the rounds already run are read back, not run again",
    )
    parser.add_argument(
        "--full-pool-chunks",
        type=int,
        default=1,
        help="train each full-pool model further, in chunks of the arms' median steps, until "
        "a chunk gains less than 0.01 AP@0.5, at most this many chunks",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / f"{date.today()}-efficiency"
    )
    args = parser.parse_args(argv)
    names = tuple(n.strip() for n in args.strategies.split(",") if n.strip())
    from bench.timing import environment

    env = environment()  # before the run: the commit measured, not one made meanwhile
    result = {
        "env": env,
        **bench_efficiency(
            args.data,
            work=args.work,
            strategies=names,
            rounds=args.rounds,
            full_pool_chunks=args.full_pool_chunks,
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    plots(result, args.out)
    print(f"bench: wrote {args.out}.json, .png and -groups.png", file=sys.stderr)


if __name__ == "__main__":
    main()
