"""The full-pool reference of a label-efficiency run: what the recipe reaches when every pool
image is labeled (its ground truth), overall and per metadata group.

Models are trained with the arms' recipe on every pool image, one per seed (training from
scratch is seed-sensitive), in a copy of the study (so the study is untouched), and evaluated
on the same test split; the reference is their mean. With ``chunks`` > 1 each is trained further
in chunks, each warm-started from the last, until one gains less than ``plateau`` (the best
chunk counts), to check that the budget was not what held it back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loop import learn
from loop.core.metrics import HEADLINE, group_figures
from loop.errors import RoundError
from loop.rounds.round import Log, Progress, _quiet
from loop.store.db import backup
from loop.store.labels import truth_only
from loop.study import Study, open_study

FULL_POOL_ARM = "full-pool"


def full_pool(
    study: Study,
    folder: str | Path,
    *,
    steps: int | None,
    seeds: int = 1,
    chunks: int = 1,
    plateau: float = 0.0,
    gpu: bool | None = None,
    progress: Progress = _quiet,
    log: Log = _quiet,
) -> dict:
    """Train and evaluate the full-pool reference in a copy of the study at ``folder``
    (made once; a second call reuses its models and evaluations).

    For each seed, the first chunk of ``steps`` trains from scratch; each further chunk (up
    to ``chunks``) continues the last model for ``steps`` more, until one gains less than
    ``plateau``.

    Returns
    -------
    dict
        ``metric``, ``value`` (mean over seeds of each seed's best chunk), ``sd``,
        ``per_group`` (group -> mean over seeds: the ceiling of each group for this recipe),
        ``n_images``, ``steps`` (per model, first chunk), ``seeds``: per seed ``value``,
        ``steps`` (of its best chunk), ``model_id``, ``curve`` ([[total steps, metric], ...]);
        ``folder``.
    """
    folder = Path(folder)
    if not (folder / "loop.db").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "loop.toml").write_text((study.path / "loop.toml").read_text())
        backup(study.store, folder / "loop.db")
    with open_study(folder) as copy:
        truth_only(copy.store)
        items = learn.training_labels(copy)
        if not items:
            raise RoundError("no pool image has a ground truth: the full-pool model needs one")
        metric = HEADLINE[copy.config.task]
        if copy.config.task == "classification":
            chunks = 1  # the classifier fits to convergence: no step budget to grow
        per_seed = [
            _full_pool_seed(copy, seed, steps, chunks, plateau, metric, gpu, progress, log)
            for seed in range(seeds)
        ]
        values = [r["value"] for r in per_seed]
        groups = sorted({g for r in per_seed for g in r["per_group"]})
        return {
            "metric": metric,
            "value": float(np.mean(values)),
            "sd": float(np.std(values)),
            "per_group": {
                g: float(np.mean([r["per_group"][g] for r in per_seed if g in r["per_group"]]))
                for g in groups
            },
            "n_images": len(items),
            "steps": per_seed[0]["curve"][0][0],
            "seeds": per_seed,
            "folder": str(folder),
        }


def _full_pool_seed(copy, seed, steps, chunks, plateau, metric, gpu, progress, log) -> dict:
    curve: list[list[float]] = []
    best = None
    parent, total = None, 0
    for _ in range(chunks):
        report = learn.train(
            copy,
            seed=seed,
            steps=steps,
            fresh=parent is None,
            parent_id=parent,
            extend=True,
            arm=FULL_POOL_ARM,
            gpu=gpu,
            progress=progress,
        )
        total += report.steps
        metrics = learn.evaluate(copy, model_id=report.model_id, gpu=gpu, progress=progress)
        value = metrics[metric]
        log(f"full-pool reference, seed {seed}, {total} steps: {metric} {value:.3f}")
        gain = None if best is None else value - best["value"]
        if best is None or value > best["value"]:
            best = {
                "seed": seed,
                "value": value,
                "steps": total,
                "model_id": report.model_id,
                "per_group": group_figures(metrics, metric),
            }
        curve.append([total, round(float(value), 4)])
        if gain is not None and gain < plateau:
            break
        parent = report.model_id
    return {**best, "curve": curve}
