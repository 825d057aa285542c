"""Label efficiency on DSB2018 fluorescence nuclei: random against the default strategy.

The headline of ``make bench``, sized to fit the whole bench in < 60 min on 2 CPU cores:

- split (fixed): fluorescence images only, 40 test images (never annotated), 8 initial
  labeled images, the rest (493) the pool; ``loop split --where modality=fluorescence
  --test 40 --initial 8 --seed 0``;
- arms: ``random`` and the default strategy (``flow-error+diversity``), 3 seeds each, 4 rounds
  of 8 images (8 -> 40 labeled images), through ``loop.rounds.efficiency`` (the same code as
  ``loop bench al``);
- annotation: 3 simulated annotators (careful, average, sloppy) through a real Label Studio
  started for the bench, consensus by pixel majority, every batch image admitted
  (``min_agreement = 0``: the noise stays in the labels, as without adjudication);
- recipe: the default network (nbase 2-8-16-32-64, 128 px crops, batch 8, augmentation on),
  100..300 steps fresh, half of that warm-started each round, no validation hold-out (every
  label trains); the default strategy measures 40 pool images sampled per round;
- full-pool reference: the same recipe on all 493 pool images + the 8 initial ones with
  their ground truth, one model per seed (3), each with as many steps as an arm used over its
  rounds; the reference is their mean (training from scratch is seed-sensitive: one seed in
  three lands about 5 points of AP@0.5 lower). ``loop bench al --full-pool-chunks`` can train
  each further in warm-started chunks; twice the budget changed seed 0 by 0.001, so the bench
  does not.

The study lives in ``bench/work/efficiency`` (git-ignored): a stopped bench resumes where it
stopped, a finished one re-reads its figures. A changed recipe starts a fresh study.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "efficiency"
ANNOTATORS = ("bench-careful", "bench-average", "bench-sloppy")
TOML = f"""\
# make bench: label efficiency (bench/efficiency.py)
task = "segmentation"
[model]
min_steps = 100
max_steps = 300
warm_fraction = 0.5
val_fraction = 0.0
[score]
pool_sample = 40
[rounds]
min_agreement = 0.0
annotators = [{", ".join(f'"{a}"' for a in ANNOTATORS)}]
profiles = ["careful", "average", "sloppy"]
"""
SPLIT = {"test": 40, "initial": 8, "seed": 0, "where": ["modality=fluorescence"]}


def _study(data: Path, work: Path):
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    if (work / "study" / "loop.toml").is_file():
        if (work / "study" / "loop.toml").read_text() == TOML:
            return open_study(work / "study")
        shutil.rmtree(work)  # another recipe: its cache says nothing about this one
    study = init_study(work / "study")
    (work / "study" / "loop.toml").write_text(TOML)
    study.close()
    study = open_study(work / "study")
    ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")
    split_study(study, **SPLIT)
    return study


def bench_efficiency(
    data: Path, *, work: Path = WORK, seeds: int = 3, rounds: int = 4, batch: int = 8
) -> dict:
    """Run (or resume) the label-efficiency arms; returns the ``loop bench al`` record plus
    the wall time of this call and the per-step medians of the rounds."""
    import json
    import statistics

    from connectors.accounts import server_of
    from loop.cli.wiring import wiring as _wiring
    from loop.core import strategies
    from loop.rounds.efficiency import EfficiencyOptions, arm_name, label_efficiency

    start = time.perf_counter()
    study = _study(data, work)
    server = server_of(study)
    server.start(timeout=300)
    try:
        # the simulated annotators of `loop bench al`: [rounds] of the TOML, noise seed 0
        tool, annotate = _wiring(study, "simulated", 0)
        options = EfficiencyOptions(
            strategies=(strategies.DEFAULTS["segmentation"],),
            seeds=seeds,
            rounds=rounds,
            batch=batch,
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
        result["split"] = SPLIT
        result["recipe"] = TOML
    finally:
        server.stop()
        study.close()
    result["wall_seconds_this_call"] = round(time.perf_counter() - start, 1)
    return result
