"""The round commands: ``round``, ``run`` and ``report``; thin wrappers over
:mod:`loop.rounds` and :mod:`loop.reports.html`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loop.cli.common import (
    GpuOpt,
    JsonOpt,
    LoopGroup,
    StudyArg,
    emit_json,
    err,
    legend,
    out,
    progress_bar,
    rounds_table,
    stage_progress,
)

app = typer.Typer(cls=LoopGroup)


ArmOpt = Annotated[
    str,
    typer.Option(help="Arm of the loop: main, or a control arm named after its strategy (random)."),
]


StrategyOpt = Annotated[
    str | None, typer.Option(help="Query strategy (default: the arm's; see `loop strategies`).")
]


BatchOpt = Annotated[int | None, typer.Option("--batch", min=1, help="Images per round (score.k).")]


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
    from loop.reports.status import round_summaries
    from loop.rounds import RoundOptions, run_round
    from loop.study import open_study

    options = RoundOptions(arm=arm, strategy=strategy, k=batch, seed=seed, steps=steps, gpu=gpu)
    with open_study(study) as s:
        from loop.cli.wiring import wiring

        tool, annotate = wiring(s, annotators, seed)
        with progress_bar() as bar:
            result = run_round(
                s,
                tool,
                options=options,
                annotate=annotate,
                progress=stage_progress(bar),
                log=err.print,
            )
        tool.close()
        rows = round_summaries(s, arm)
    if as_json:
        emit_json(next(r for r in rows if r["round"] == result.round))
        return
    out.print(rounds_table(rows, title=f"{study}: arm {arm}"))
    out.print(legend(s.config.task))


@app.command()
def run(
    study: StudyArg,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of annotation to reach.")] = 4,
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
    from loop.reports.status import round_summaries
    from loop.rounds import RoundOptions
    from loop.rounds import run as run_rounds
    from loop.study import open_study

    options = RoundOptions(arm=arm, strategy=strategy, k=batch, seed=seed, steps=steps, gpu=gpu)
    with open_study(study) as s:
        from loop.cli.wiring import wiring

        tool, annotate = wiring(s, annotators, seed)
        with progress_bar() as bar:
            run_rounds(
                s,
                tool,
                rounds=rounds,
                options=options,
                annotate=annotate,
                progress=stage_progress(bar),
                log=err.print,
                on_round=lambda r: err.print(f"{r.arm} round {r.round}: {r.status}"),
            )
        tool.close()
        rows = round_summaries(s)
    if as_json:
        emit_json({"rounds": rows})
        return
    out.print(rounds_table(rows, title=str(study)))
    out.print(legend(s.config.task))


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
    from loop.reports.html import write_report
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        result = write_report(
            s,
            output or s.path / "report",
            gallery=gallery,
            arm=arm,
            progress=stage_progress(bar),
        )
    if as_json:
        emit_json(
            {"html": str(result.html), "plots": [str(p) for p in result.plots], "hint": result.hint}
        )
        return
    out.print(f"report: {result.html}")
    out.print(result.hint)
