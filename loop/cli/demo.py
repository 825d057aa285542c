"""``loop demo``: sample data into a study, a local Label Studio, rounds with simulated
experts, the report: the whole workflow as a user would run it, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loop.cli.common import GpuOpt, LoopGroup, err, out, progress_bar, stage_progress

app = typer.Typer(cls=LoopGroup)


def _demo_data(folder: Path, data: Path | None, download: bool) -> tuple[Path, Path, tuple]:
    """(images folder root, metadata table, (test, initial) counts) of the demo's data: the
    given folder, else the shared DSB2018, else a download, else synthetic nuclei."""
    from loop.data.demo import DSB_SPLIT, SYNTHETIC_SPLIT, find_dsb, write_synthetic

    source = data or find_dsb()
    if source is None and download:
        from loop.data.datasets import fetch_bbbc038

        with err.status("downloading BBBC038 (once; kept in the user cache) ..."):
            fetched = fetch_bbbc038()
        source = fetched.folder
    if source is None:
        source = write_synthetic(folder / "synthetic-data")
        err.print(
            f"no DSB2018 data found: using {source} (synthetic nuclei, generated now); "
            "`loop demo --download` fetches the real BBBC038 images"
        )
        return source, source / "metadata.csv", SYNTHETIC_SPLIT
    err.print(f"sample data: {source}")
    return source, source / "manifest.json", DSB_SPLIT


def _demo_study(s, source: Path, metadata: Path, counts: tuple[int, int]) -> None:
    """Ingest the data (a re-run adds nothing) and split it once."""
    from loop.data.ingest import ingest as run_ingest
    from loop.data.split import split_study
    from loop.store.images import has_split

    with progress_bar() as bar:
        job = bar.add_task("ingest", total=None)
        report = run_ingest(
            s,
            source / "images",
            masks=source / "masks",
            metadata=metadata,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    err.print(f"ingested {report.valid} images ({report.added} new)")
    if not has_split(s.store):  # a re-run keeps the study's split
        n_test, n_initial = counts
        split_study(s, test=n_test, initial=n_initial, seed=0)  # stratified by the groups


def _demo_rounds(s, arms: list[str], rounds: int, gpu) -> None:
    from loop.cli.wiring import wiring
    from loop.rounds import RoundOptions
    from loop.rounds import run as run_rounds

    for arm in arms:
        tool, annotate = wiring(s, "simulated", 0)
        with progress_bar() as bar:
            run_rounds(
                s,
                tool,
                rounds=rounds,
                options=RoundOptions(arm=arm, gpu=gpu),
                annotate=annotate,
                progress=stage_progress(bar),
                log=err.print,
            )
        tool.close()


@app.command()
def demo(
    folder: Annotated[
        Path,
        typer.Argument(help="Study folder for the demo (created; git-ignored demo/ by default)."),
    ] = Path("demo"),
    data: Annotated[
        Path | None,
        typer.Option(
            help="DSB2018-layout folder (images/, masks/, manifest.json); default: "
            "shared/data/dsb2018_train if found, else synthetic nuclei."
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Without local data, download BBBC038 (DSB2018, ~80 MB, needs the internet).",
        ),
    ] = False,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of annotation.")] = 4,
    control: Annotated[
        bool, typer.Option("--control", help="Also run a random-selection control arm.")
    ] = False,
    stop_server: Annotated[
        bool,
        typer.Option(
            "--stop-server/--keep-server",
            help="Stop Label Studio at the end (default: keep it, to look at the tasks).",
        ),
    ] = False,
    gpu: GpuOpt = None,
) -> None:
    """The demo: sample data into a study, a local Label Studio, rounds of train -> score ->
    push -> 3 simulated annotators -> pull -> consensus, then the report. Resumable."""
    from loop.cli.common import legend, rounds_table
    from loop.cli.wiring import env_server, server_of, start_server
    from loop.data.demo import DEMO_TOML
    from loop.reports.html import write_report
    from loop.reports.status import round_summaries
    from loop.study import init_study, open_study

    source, metadata, counts = _demo_data(folder, data, download)
    if not (folder / "loop.toml").exists():
        init_study(folder).close()
        (folder / "loop.toml").write_text(DEMO_TOML)
    with open_study(folder) as s:
        _demo_study(s, source, metadata, counts)
        server = None
        if env_server() is None:
            server = server_of(s)
            with err.status("starting Label Studio (about 40 s the first time) ..."):
                info = start_server(s)
            err.print(f"Label Studio at {info.url}")
        _demo_rounds(s, ["main", "random"] if control else ["main"], rounds, gpu)
        with progress_bar() as bar:
            written = write_report(s, s.path / "report", progress=stage_progress(bar))
        if server is not None and stop_server:
            server.stop()
        summaries = round_summaries(s)
    out.print(rounds_table(summaries, title=f"{folder}: demo"))
    out.print(legend(s.config.task))
    out.print(written.hint)
    out.print(f"report: {written.html}")
    if server is not None and not stop_server:
        out.print(f"Label Studio keeps running; stop it with `loop labelstudio stop {folder}`")
