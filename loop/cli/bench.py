"""``loop bench al``: label efficiency of strategies against random on a study."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from loop.cli.common import (
    GpuOpt,
    JsonOpt,
    LoopGroup,
    StudyArg,
    emit_json,
    err,
    out,
    progress_bar,
    stage_progress,
)
from loop.cli.rounds import StepsOpt

app = typer.Typer(
    cls=LoopGroup, help="Benchmarks run on a study (label efficiency).", no_args_is_help=True
)


def efficiency_table(result: dict) -> Table:
    """Per strategy: the mean ± sd curve, labels to 90% / 95% of the full pool, ratio to random,
    the experts' effort (weighted edits) to 90% / 95%."""
    metric = result["metric"]
    table = Table(
        "strategy",
        f"{metric} by labeled images (mean ± sd over seeds)",
        "to 90%",
        "to 95%",
        "vs random (95%)",
        "effort to 90% / 95%",
        "gain over random at the end (same seeds)",
        "at equal effort",
        title=f"label efficiency (full pool: {_fmt(result[f'full_pool_{metric}'])}"
        + (f" ± {result['full_pool']['sd']:.3f})" if result["full_pool"] else ")"),
        box=box.SIMPLE,
    )
    for name, record in result["label_efficiency"].items():
        table.add_row(
            name + (" (default)" if name == result["default_strategy"] else ""),
            ", ".join(f"{n:g}: {m:.3f}±{s:.3f}" for n, m, s in record["curve"]),
            _fmt(record["labels_to_90"]),
            _fmt(record["labels_to_95"]),
            _fmt(record["ratio_to_random_95"]),
            f"{_fmt(record.get('effort_to_90'))} / {_fmt(record.get('effort_to_95'))}",
            paired_text(record.get("paired_vs_random")),
            paired_text(record.get("paired_vs_random_by_effort")),
        )
    return table


def paired_text(paired: list | None) -> str:
    """The last round of a ``paired_vs_random`` curve (or ``..._by_effort``) as text: the mean
    gain, its 95% interval and the seeds ahead (``-`` for the baseline itself)."""
    if not paired:
        return "-"
    _n, gain, low, high, ahead, pairs = paired[-1]
    return f"{gain:+.3f} [{low:+.3f}, {high:+.3f}], {ahead}/{pairs} seeds ahead"


def _fmt(value) -> str:
    if value is None:
        return "never"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("al")
def bench_al(
    study: StudyArg,
    strategies: Annotated[
        str,
        typer.Option(help="Comma-separated strategies; random (the baseline) is always run."),
    ] = "",
    seeds: Annotated[int, typer.Option(min=1, help="Arms (seeds) per strategy.")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of annotation per arm.")] = 5,
    batch: Annotated[int, typer.Option("--batch", help="Images per round.")] = 8,
    region_batch: Annotated[
        int | None,
        typer.Option(
            "--region-batch",
            help="Regions per round of a NAME@region strategy (default: --batch); a region "
            "costs a fraction of an image, so give more to compare over the same effort.",
        ),
    ] = None,
    steps: StepsOpt = None,
    full_pool: Annotated[
        bool,
        typer.Option(
            "--full-pool/--no-full-pool",
            help="Train the full-pool reference (a copy of the study under STUDY/bench/).",
        ),
    ] = True,
    full_pool_chunks: Annotated[
        int,
        typer.Option(
            help="Train each full-pool model further, in chunks of the arms' median steps "
            "(warm-started), all seeds together, until a chunk gains less than "
            "--full-pool-plateau on average over the seeds: at most this many chunks (1: the "
            "arms' budget only)."
        ),
    ] = 1,
    full_pool_plateau: Annotated[
        float, typer.Option(help="Smallest gain of the headline metric worth another chunk.")
    ] = 0.01,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label efficiency: each strategy against random over several seeds, with simulated
    annotators through Label Studio; labeled images to reach 90% / 95% of a model trained on
    the whole pool. Writes STUDY/bench/label-efficiency.json and .png. Resumable."""
    import json

    from loop.core import strategies as strategy_registry
    from loop.reports.plots import efficiency_curves, group_curves
    from loop.rounds.efficiency import EfficiencyOptions, label_efficiency
    from loop.study import open_study

    with open_study(study) as s:
        names = [n.strip() for n in strategies.split(",") if n.strip()] or [
            s.config.score.strategy or strategy_registry.DEFAULTS[s.config.task]
        ]
        options = EfficiencyOptions(
            strategies=tuple(names),
            seeds=seeds,
            rounds=rounds,
            batch=batch,
            region_batch=region_batch,
            steps=steps,
            gpu=gpu,
            full_pool_chunks=full_pool_chunks,
            full_pool_plateau=full_pool_plateau,
        )
        from loop.cli.wiring import wiring

        tool, annotate = wiring(s, "simulated", 0)
        folder = s.path / "bench"
        with progress_bar() as bar:
            result = label_efficiency(
                s,
                tool,
                options,
                annotate=annotate,
                full_pool_folder=folder / "full-pool" if full_pool else None,
                progress=stage_progress(bar),
                log=err.print,
            )
        tool.close()
    folder.mkdir(exist_ok=True)
    (folder / "label-efficiency.json").write_text(json.dumps(result, indent=2) + "\n")
    metric = result["metric"]
    for name, effort, title in (
        ("label-efficiency.png", False, f"{study.name}: {seeds} seeds, batch {batch}"),
        ("label-efficiency-effort.png", True, f"{study.name}: by the experts' effort"),
    ):
        efficiency_curves(
            result["label_efficiency"],
            folder / name,
            metric=metric,
            full=result[f"full_pool_{metric}"],
            title=title,
            effort=effort,
        )
    group_curves(
        result["label_efficiency"],
        folder / "label-efficiency-groups.png",
        metric=metric,
        ceilings=(result["full_pool"] or {}).get("per_group"),
        title=f"{study.name}: by group (grey: the full pool)",
    )
    err.print(
        f"wrote {folder / 'label-efficiency.json'} and .png (-effort.png: by the experts' "
        "effort; -groups.png: by group)"
    )
    if as_json:
        emit_json(result)
        return
    out.print(efficiency_table(result))
