"""The round commands of the ``loop`` CLI: ``round``, ``run`` and ``report``.

Registered on :data:`loop.cli.app` (imported at the end of :mod:`loop.cli`); thin wrappers
over :mod:`loop.rounds` and :mod:`loop.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from loop.cli import (
    GpuOpt,
    JsonOpt,
    StudyArg,
    _simulate_now,
    _stage_progress,
    app,
    emit_json,
    err,
    out,
    progress_bar,
    simulated_annotators,
)

ArmOpt = Annotated[
    str,
    typer.Option(help="Arm of the loop: main, or a control arm named after its strategy (random)."),
]
StrategyOpt = Annotated[
    str | None, typer.Option(help="Query strategy (default: the arm's; see `loop strategies`).")
]
BatchOpt = Annotated[int | None, typer.Option("--batch", help="Images per round (score.k).")]
SeedOpt = Annotated[int, typer.Option(help="Seed of training and selection.")]
StepsOpt = Annotated[
    int | None, typer.Option(help="Training steps per round (default: from the config).")
]
AnnotatorsOpt = Annotated[
    str | None,
    typer.Option(
        help="'simulated': the config's simulated annotators annotate each batch at once; "
        "default: wait for people in Label Studio."
    ),
]


LEGEND = (
    "score: held-out AP@0.5 (segmentation) or macro-F1 (classification); F1: the model's F1 at "
    "IoU 0.5 (or accuracy), next to agree: the annotators' pairwise F1 on the batch; cons.: "
    "consensus vs ground truth; hours: annotator lead times; s: seconds"
)


def rounds_table(rows: list[dict], title: str = "rounds") -> Table:
    """A per-round table (rows from :func:`loop.status.round_summary`)."""

    def num(value, fmt="{:.3f}"):
        return "" if value is None else fmt.format(value)

    table = Table(
        "arm",
        "round",
        "labeled",
        "model",
        "score",
        "F1",
        "agree",
        "cons.",
        "hours",
        "s",
        "status",
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for r in rows:
        table.add_row(
            r["arm"],
            str(r["round"]),
            num(r["n_labeled"], "{}"),
            num(r["model_id"], "{}"),
            num(r["score"]),
            num(r["f1"]),
            num(r["agreement"]),
            num(r["consensus_vs_truth"]),
            num(r["annotator_hours"], "{:.2f}"),
            num(r["seconds"], "{:.0f}"),
            r["status"],
        )
    return table


def _wiring(s, annotators: str | None, seed: int):
    """(Label Studio client, simulated annotators or None)."""
    from connectors.accounts import connect
    from loop.errors import ConfigError

    config = s.config.rounds
    if annotators is not None and annotators != "simulated":
        raise ConfigError(
            f"--annotators {annotators!r}: write 'simulated' (names and noise come from "
            "[rounds] in loop.toml), or leave it out to wait for people"
        )
    if annotators and len(config.annotators) < config.overlap:
        raise ConfigError(
            f"rounds.overlap = {config.overlap} but only {len(config.annotators)} simulated "
            "annotators: list more in rounds.annotators or lower the overlap"
        )
    tool = connect(s)
    if annotators is None:
        return tool, None
    chosen = dict(zip(config.annotators, config.profiles))
    profiles = simulated_annotators(s, tool, list(config.annotators), chosen)

    def annotate() -> dict:
        return _simulate_now(s, tool, profiles, seed).annotated

    return tool, annotate


@app.command("round")
def round_(
    study: StudyArg,
    arm: ArmOpt = "main",
    strategy: StrategyOpt = None,
    batch: BatchOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    annotators: AnnotatorsOpt = None,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One round: train, evaluate, select and push a batch; with simulated annotators also
    annotate, pull and fuse. Without them it returns after the push, and the next call
    finishes the round once the experts are done. Killed at any step, run it again."""
    from loop.rounds import RoundOptions, run_round
    from loop.status import round_summaries
    from loop.study import open_study

    options = RoundOptions(arm=arm, strategy=strategy, k=batch, seed=seed, steps=steps, gpu=gpu)
    with open_study(study) as s:
        tool, annotate = _wiring(s, annotators, seed)
        with progress_bar() as bar:
            result = run_round(
                s,
                tool,
                options=options,
                annotate=annotate,
                progress=_stage_progress(bar),
                log=err.print,
            )
        tool.close()
        rows = round_summaries(s, arm)
    if as_json:
        emit_json(next(r for r in rows if r["round"] == result.round))
        return
    out.print(rounds_table(rows, title=f"{study}: arm {arm}"))
    out.print(LEGEND)


@app.command()
def run(
    study: StudyArg,
    rounds: Annotated[int, typer.Option(help="Rounds of annotation to reach.")] = 4,
    arm: ArmOpt = "main",
    strategy: StrategyOpt = None,
    batch: BatchOpt = None,
    seed: SeedOpt = 0,
    steps: StepsOpt = None,
    annotators: AnnotatorsOpt = None,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run rounds until --rounds are done, then train and evaluate on every label once more.
    Waits (polling Label Studio) for people unless --annotators simulated. Resumable."""
    from loop.rounds import RoundOptions
    from loop.rounds import run as run_rounds
    from loop.status import round_summaries
    from loop.study import open_study

    options = RoundOptions(arm=arm, strategy=strategy, k=batch, seed=seed, steps=steps, gpu=gpu)
    with open_study(study) as s:
        tool, annotate = _wiring(s, annotators, seed)
        with progress_bar() as bar:
            run_rounds(
                s,
                tool,
                rounds=rounds,
                options=options,
                annotate=annotate,
                progress=_stage_progress(bar),
                log=err.print,
                on_round=lambda r: err.print(f"{r.arm} round {r.round}: {r.status}"),
            )
        tool.close()
        rows = round_summaries(s)
    if as_json:
        emit_json({"rounds": rows})
        return
    out.print(rounds_table(rows, title=str(study)))
    out.print(LEGEND)


@app.command()
def report(
    study: StudyArg,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder (default: STUDY/report).")
    ] = None,
    gallery: Annotated[int, typer.Option(help="Images in the prediction gallery.")] = 6,
    arm: Annotated[
        str, typer.Option(help="The arm whose curve, annotators and model the report is about.")
    ] = "main",
    as_json: JsonOpt = False,
) -> None:
    """Write the study's report: learning curves (PNG), agreement next to the model (the
    human ceiling), annotators, a gallery of predictions against consensus, and when to stop.
    One self-contained HTML file (plots embedded) that opens offline."""
    from loop.report import write_report
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        result = write_report(
            s,
            output or s.path / "report",
            gallery=gallery,
            arm=arm,
            progress=_stage_progress(bar),
        )
    if as_json:
        emit_json(
            {"html": str(result.html), "plots": [str(p) for p in result.plots], "hint": result.hint}
        )
        return
    out.print(f"report: {result.html}")
    out.print(result.hint)


bench_app = typer.Typer(help="Benchmarks run on a study (label efficiency).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def efficiency_table(result: dict) -> Table:
    """Per strategy: the mean ± sd curve, labels to 90% / 95% of the full pool, ratio to random."""
    metric = result["metric"]
    table = Table(
        "strategy",
        f"{metric} by labeled images (mean ± sd over seeds)",
        "to 90%",
        "to 95%",
        "vs random (95%)",
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
        )
    return table


def _fmt(value) -> str:
    if value is None:
        return "never"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@bench_app.command("al")
def bench_al(
    study: StudyArg,
    strategies: Annotated[
        str,
        typer.Option(help="Comma-separated strategies; random (the baseline) is always run."),
    ] = "",
    seeds: Annotated[int, typer.Option(help="Arms (seeds) per strategy.")] = 3,
    rounds: Annotated[int, typer.Option(help="Rounds of annotation per arm.")] = 5,
    batch: Annotated[int, typer.Option("--batch", help="Images per round.")] = 8,
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
            "(warm-started), until a chunk gains less than --full-pool-plateau: at most this "
            "many chunks (1: the arms' budget only)."
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

    from loop import strategies as strategy_registry
    from loop.efficiency import EfficiencyOptions, label_efficiency
    from loop.plots import efficiency_curves
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
            steps=steps,
            gpu=gpu,
            full_pool_chunks=full_pool_chunks,
            full_pool_plateau=full_pool_plateau,
        )
        tool, annotate = _wiring(s, "simulated", 0)
        folder = s.path / "bench"
        with progress_bar() as bar:
            result = label_efficiency(
                s,
                tool,
                options,
                annotate=annotate,
                full_pool_folder=folder / "full-pool" if full_pool else None,
                progress=_stage_progress(bar),
                log=err.print,
            )
        tool.close()
    folder.mkdir(exist_ok=True)
    (folder / "label-efficiency.json").write_text(json.dumps(result, indent=2) + "\n")
    metric = result["metric"]
    efficiency_curves(
        result["label_efficiency"],
        folder / "label-efficiency.png",
        metric=metric,
        full=result[f"full_pool_{metric}"],
        title=f"{study.name}: {seeds} seeds, batch {batch}",
    )
    err.print(f"wrote {folder / 'label-efficiency.json'} and .png")
    if as_json:
        emit_json(result)
        return
    out.print(efficiency_table(result))
