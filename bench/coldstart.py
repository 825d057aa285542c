"""Cold start: how often a model trained on the label-efficiency bench's initial labels (4
images, every modality; the bench's recipe) learns nothing, and what ``model.retry_blind``
makes of it. One training per seed with the guard on: a seed whose first fit was blind says so
in its decision, and its first fit is what the guard off would have kept (a blind model finds
no object: AP@0.5 0 on every test image).

    python -m bench.coldstart OUT.json [--seeds 5]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.efficiency import SPLIT, SUBSET, TOML, subset

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "coldstart"


def _study(data: Path, work: Path):
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    folder = work / "study"
    if not (folder / "loop.db").is_file():
        init_study(folder).close()
        (folder / "loop.toml").write_text(TOML)
        with open_study(folder) as study:
            linked = subset(data, work / "data")
            ingest(
                study, linked / "images", masks=linked / "masks", metadata=linked / "manifest.json"
            )
            split_study(study, **SPLIT)
    return open_study(folder)


def coldstart(data: Path, *, seeds: int = 5, work: Path = WORK) -> dict:
    """Train on the initial labels once per seed (guard on) and evaluate on the test split."""
    from loop.learn.evaluate import evaluate
    from loop.learn.train import train

    rows = []
    with _study(data, work) as study:
        initial = [im["id"] for im in study.store.images("split = 'labeled'")]
        for seed in range(seeds):
            began = time.perf_counter()
            report = train(study, seed=seed, fresh=True, image_ids=initial, arm=f"cold-{seed}")
            figures = evaluate(study, model_id=report.model_id)
            rows.append(
                {
                    "seed": seed,
                    "first_fit_blind": report.decision.startswith("the first fit found nothing"),
                    "steps": report.steps,
                    "ap50": round(figures["ap50"], 4),
                    "per_group": figures.get("per_group"),
                    "seconds": round(time.perf_counter() - began, 1),
                }
            )
            print(f"coldstart: {rows[-1]}", file=sys.stderr)
    blind = [r for r in rows if r["first_fit_blind"]]
    return {
        "initial": len(initial),
        "subset": SUBSET,
        "split": SPLIT,
        "seeds": rows,
        "blind_first_fits": len(blind),
        "rescued": sum(r["ap50"] > 0 for r in blind),
        "ap50_mean_guard_on": round(sum(r["ap50"] for r in rows) / len(rows), 4),
        "ap50_mean_guard_off": round(
            sum(0.0 if r["first_fit_blind"] else r["ap50"] for r in rows) / len(rows), 4
        ),
    }


def main(argv=None) -> None:
    import argparse

    from bench.timing import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    data = Path(__import__("os").environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
    result = coldstart(data / "dsb2018_train", seeds=args.seeds)
    result["environment"] = environment()
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("blind_first_fits", "rescued")}))


if __name__ == "__main__":
    main()
