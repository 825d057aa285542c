"""The full-pool reference of a label-efficiency run: what the recipe reaches when every pool
image is labeled (its ground truth), overall and per metadata group.

Models are trained with the arms' recipe on every pool image, one per seed (training from
scratch is seed-sensitive), in a copy of the study (so the study is untouched), and evaluated
on the same test split; the reference is their mean. With ``chunks`` > 1 they are trained further
in chunks, each warm-started from the last, all seeds together, until a chunk's mean gain over
the seeds is less than ``plateau`` (each seed's best chunk counts), to check that the budget
was not what held it back.
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
from loop.tasks import task_of

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
    to ``chunks``) continues the last model for ``steps`` more. Every seed gets the same
    chunks: the growth stops when a chunk gains less than ``plateau`` on average over the
    seeds (a seed's gain: its figure minus its best so far).

    Returns
    -------
    dict
        ``metric``, ``value`` (mean over seeds of each seed's best chunk), ``sd``,
        ``per_group`` (group -> mean over seeds: the ceiling of each group for this recipe),
        ``n_images``, ``steps`` (per model, first chunk), ``seeds``: per seed ``value``,
        ``steps`` (of its best chunk), ``model_id``, ``curve`` ([[total steps, metric], ...]),
        ``model_ids`` (its chunks, first to last); ``folder``.
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
        if task_of(copy.config.task).fits_to_convergence:
            chunks = 1  # the classifier fits to convergence: no step budget to grow
        per_seed = _grow(copy, seeds, steps, chunks, plateau, metric, gpu, progress, log)
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


def _grow(copy, seeds, steps, chunks, plateau, metric, gpu, progress, log) -> list[dict]:
    """Train every seed's model chunk by chunk, all seeds together, until the mean gain over
    seeds of a chunk (each seed's figure minus its best so far) is below ``plateau``: one seed
    that happens to gain little does not stop its own reference while the others still rise.
    Returns per seed its best chunk, its ``curve`` and its chunks' ``model_ids``."""
    totals = [0] * seeds
    best: list[dict | None] = [None] * seeds
    curves: list[list[list[float]]] = [[] for _ in range(seeds)]
    ids: list[list[int]] = [[] for _ in range(seeds)]  # each seed's chunks, first to last
    for _ in range(chunks):
        gains = []
        for seed in range(seeds):
            report = learn.train(
                copy,
                seed=seed,
                steps=steps,
                fresh=not ids[seed],
                parent_id=ids[seed][-1] if ids[seed] else None,
                extend=True,
                arm=FULL_POOL_ARM,
                gpu=gpu,
                progress=progress,
            )
            totals[seed] += report.steps
            metrics = learn.evaluate(copy, model_id=report.model_id, gpu=gpu, progress=progress)
            value = metrics[metric]
            log(f"full-pool reference, seed {seed}, {totals[seed]} steps: {metric} {value:.3f}")
            if best[seed] is not None:
                gains.append(value - best[seed]["value"])
            if best[seed] is None or value > best[seed]["value"]:
                best[seed] = {
                    "seed": seed,
                    "value": value,
                    "steps": totals[seed],
                    "model_id": report.model_id,
                    "per_group": group_figures(metrics, metric),
                }
            curves[seed].append([totals[seed], round(float(value), 4)])
            ids[seed].append(report.model_id)
        mean_gain = float(np.mean(gains)) if gains else None
        if mean_gain is not None and mean_gain < plateau:
            log(
                f"full-pool reference: the last chunk gained {mean_gain:+.3f} on average "
                f"over {seeds} seed(s), less than {plateau}: stopped at {max(totals)} steps"
            )
            break
    return [{**b, "curve": c, "model_ids": i} for b, c, i in zip(best, curves, ids)]
