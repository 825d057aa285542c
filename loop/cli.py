"""The ``loop`` command line: thin commands over the library.

Each command parses its options, calls one library function and renders the result. Human
output goes to stdout as rich tables; ``--json`` output goes alone to stdout; progress bars,
logs and skipped-file lines go to stderr. A :class:`~loop.errors.LoopError` becomes
``error: <message>`` on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from loop.errors import LoopError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class LoopGroup(TyperGroup):
    """Turns library errors into a clean message and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LoopError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    name="loop",
    cls=LoopGroup,
    help="Active-learning annotation loop for scientific images.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print locals: they can hold tokens
    add_completion=False,
)

StudyArg = Annotated[Path, typer.Argument(help="The study folder (holds loop.toml and loop.db).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")]


def progress_bar() -> Progress:
    """A progress bar on stderr (never stdout, which may carry --json)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def init(
    study: StudyArg,
    task: Annotated[
        str,
        typer.Option(help="segmentation (instance masks) or classification (whole-image classes)."),
    ] = "segmentation",
    config: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Start from this loop.toml (e.g. configs/nuclei.toml); its task wins.",
        ),
    ] = None,
) -> None:
    """Create a study folder with a commented loop.toml and an empty loop.db."""
    from loop.study import init_study

    with init_study(study, task=task, config=config) as s:
        task = s.config.task
        out.print(
            f"created study {s.path} ({task}): edit {s.path / 'loop.toml'} to change defaults"
        )


@app.command()
def ingest(
    study: StudyArg,
    folder: Annotated[
        Path, typer.Argument(help="Data root: image files under it are ingested (recursive).")
    ],
    masks: Annotated[
        Path | None,
        typer.Option(help="Folder of instance label images, <stem>.tif per image (segmentation)."),
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON table of metadata, one row per image (key: id/filename/path)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON table of classes (classification): key + class/label column."),
    ] = None,
    classes_from_folders: Annotated[
        bool, typer.Option("--classes-from-folders", help="Class = first folder under the root.")
    ] = False,
    task: Annotated[
        str | None,
        typer.Option(
            help="Task of a new study (default: classification with classes, else segmentation)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a folder of images with masks or classes and metadata (idempotent: re-run to
    resume or to pick up changes)."""
    from loop.ingest import ingest as run_ingest
    from loop.study import init_study, open_study

    if (study / "loop.toml").exists():
        s = open_study(study)
    else:
        task = task or ("classification" if (classes_from_folders or labels) else "segmentation")
        s = init_study(study, task=task)
        err.print(f"created study {study} ({task})")
    with s, progress_bar() as bar:
        job = bar.add_task("ingest", total=None)
        report = run_ingest(
            s,
            folder,
            masks=masks,
            metadata=metadata,
            labels=labels,
            classes_from_folders=classes_from_folders,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    for skip in report.skipped:
        print(f"skipped {skip.path}: [{skip.reason}] {skip.message}", file=sys.stderr)
    if report.unmatched_rows:
        print(
            f"warning: {len(report.unmatched_rows)} metadata rows matched no image "
            f"(first: {report.unmatched_rows[0]})",
            file=sys.stderr,
        )
    summary = {
        "root": report.root,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "with_truth": report.with_truth,
        "skipped": len(report.skipped),
    }
    if as_json:
        emit_json({**summary, "skipped_files": [vars(s) for s in report.skipped]})
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items() if k != "root"))


@app.command()
def split(
    study: StudyArg,
    test: Annotated[
        float | None, typer.Option(help="Held-out test set: fraction (< 1) or count.")
    ] = None,
    initial: Annotated[
        float | None, typer.Option(help="Initial labeled set: fraction (< 1) or count.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the draw.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE or KEY!=VALUE; images that fail are excluded. Repeatable."),
    ] = None,
    stratify: Annotated[
        list[str] | None, typer.Option(help="Metadata key (or 'class') to stratify by. Repeatable.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Re-split a study whose annotation has begun.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Hold out a test split (never annotated) and an initial labeled set; the rest is the pool."""
    from loop.split import split_study
    from loop.study import open_study

    with open_study(study) as s:
        cfg = s.config.split
        result = split_study(
            s,
            test=cfg.test if test is None else test,
            initial=cfg.initial if initial is None else initial,
            seed=cfg.seed if seed is None else seed,
            where=where or (),
            stratify=tuple(stratify) if stratify else None,
            force=force,
        )
    if as_json:
        emit_json(
            {
                "counts": result.counts,
                "stratify": list(result.stratify),
                "by_stratum": result.by_stratum,
            }
        )
        return
    table = Table(
        "stratum",
        "pool",
        "labeled",
        "test",
        title=f"split (stratified by {', '.join(result.stratify) or 'nothing'})",
    )
    for key, c in result.by_stratum.items():
        table.add_row(key, str(c["pool"]), str(c["labeled"]), str(c["test"]))
    out.print(table)
    out.print(", ".join(f"{k}: {v}" for k, v in result.counts.items()))


@app.command()
def status(study: StudyArg, as_json: JsonOpt = False) -> None:
    """Images by split and by group, ground truth, skipped files and rounds so far."""
    from loop.status import study_status
    from loop.study import open_study

    with open_study(study) as s:
        st = study_status(s)
    if as_json:
        emit_json(st.to_dict())
        return
    splits = ("pool", "labeled", "test", "excluded")
    table = Table("", *splits, "total", title=f"{study} ({st.task}): {st.n_images} images")
    table.add_row("images", *(str(st.by_split.get(k, 0)) for k in splits), str(st.n_images))
    table.add_row(
        "with truth",
        *(str(st.with_truth.get(k, 0)) for k in splits),
        str(sum(st.with_truth.values())),
    )
    for key, values in st.groups.items():
        for value, counts in values.items():
            table.add_row(
                f"{key}={value}",
                *(str(counts.get(k, 0)) for k in splits),
                str(sum(counts.values())),
            )
    out.print(table)
    if st.skipped:
        out.print(
            "skipped files: "
            + ", ".join(f"{r} {n}" for r, n in st.skipped.items())
            + " (SELECT * FROM skipped)"
        )
    pushed = st.annotation
    if pushed["images_pushed"]:
        tiles = f" (as {pushed['tiles']} tiles where large)" if pushed["tiles"] else ""
        out.print(
            f"annotation: {pushed['images_pushed']} images pushed{tiles}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(pushed["tasks"].items()))
            + "; current annotations: "
            + (", ".join(f"{a} {n}" for a, n in pushed["annotations"].items()) or "none")
        )
    if st.labels or st.review["sent"]:
        out.print(
            f"labels made: {st.labels.get('consensus', 0)} consensus, "
            f"{st.labels.get('adjudicated', 0)} adjudicated; review tasks: "
            f"{st.review['sent']} sent, {st.review['decided']} decided"
        )
    if st.rounds:
        from loop.cli_rounds import LEGEND, rounds_table

        out.print(rounds_table(st.rounds))
        out.print(LEGEND)
    else:
        out.print("rounds: none yet")


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
    rounds: Annotated[int, typer.Option(help="Rounds of annotation.")] = 4,
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
    from connectors.accounts import server_of
    from connectors.credentials import env_server
    from loop.cli_rounds import LEGEND, _wiring, rounds_table
    from loop.demo import DEMO_TOML, DSB_SPLIT, SYNTHETIC_SPLIT, find_dsb, write_synthetic
    from loop.ingest import ingest as run_ingest
    from loop.report import write_report
    from loop.rounds import RoundOptions
    from loop.rounds import run as run_rounds
    from loop.split import split_study
    from loop.status import round_summaries
    from loop.study import init_study, open_study

    source = data or find_dsb()
    if source is None and download:
        from loop.datasets import fetch_bbbc038

        with err.status("downloading BBBC038 (once; kept in the user cache) ..."):
            fetched = fetch_bbbc038()
        source = fetched.folder
    if source is None:
        source = write_synthetic(folder / "synthetic-data")
        err.print(
            f"no DSB2018 data found: using {source} (synthetic nuclei, generated now); "
            "`loop demo --download` fetches the real BBBC038 images"
        )
        metadata, (n_test, n_initial) = source / "metadata.csv", SYNTHETIC_SPLIT
    else:
        err.print(f"sample data: {source}")
        metadata, (n_test, n_initial) = source / "manifest.json", DSB_SPLIT
    if not (folder / "loop.toml").exists():
        init_study(folder).close()
        (folder / "loop.toml").write_text(DEMO_TOML)
    with open_study(folder) as s:
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
        if not s.store.db["splits"].count:  # a re-run keeps the study's split
            split_study(s, test=n_test, initial=n_initial, seed=0, where=["modality=fluorescence"])
        server = None
        if env_server() is None:
            server = server_of(s)
            with err.status("starting Label Studio (about 40 s the first time) ..."):
                info = server.start()
            err.print(f"Label Studio at {info.url}")
        arms = ["main", "random"] if control else ["main"]
        for arm in arms:
            tool, annotate = _wiring(s, "simulated", 0)
            with progress_bar() as bar:
                run_rounds(
                    s,
                    tool,
                    rounds=rounds,
                    options=RoundOptions(arm=arm, gpu=gpu),
                    annotate=annotate,
                    progress=_stage_progress(bar),
                    log=err.print,
                )
            tool.close()
        with progress_bar() as bar:
            written = write_report(s, s.path / "report", progress=_stage_progress(bar))
        if server is not None and stop_server:
            server.stop()
        summaries = round_summaries(s)
    out.print(rounds_table(summaries, title=f"{folder}: demo"))
    out.print(LEGEND)
    out.print(written.hint)
    out.print(f"report: {written.html}")
    if server is not None and not stop_server:
        out.print(f"Label Studio keeps running; stop it with `loop labelstudio stop {folder}`")


# --- Label Studio --------------------------------------------------------------------------

labelstudio_app = typer.Typer(
    cls=LoopGroup, help="Run the study's local Label Studio server.", no_args_is_help=True
)
annotators_app = typer.Typer(
    cls=LoopGroup, help="Annotator accounts in Label Studio.", no_args_is_help=True
)
app.add_typer(labelstudio_app, name="labelstudio")
app.add_typer(annotators_app, name="annotators")


@labelstudio_app.command("start")
def labelstudio_start(
    study: StudyArg,
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it is healthy.")] = 240.0,
    as_json: JsonOpt = False,
) -> None:
    """Start the study's Label Studio on 127.0.0.1 (SQLite, data in STUDY/labelstudio/)."""
    from connectors.accounts import server_of
    from loop.study import open_study

    with open_study(study) as s:
        server = server_of(s)
        with err.status("starting Label Studio (about 40 s the first time) ..."):
            info = server.start(timeout=timeout, port=port)
        admin = server.credentials()["admin"]
    if as_json:
        emit_json(
            {
                "url": info.url,
                "pid": info.pid,
                "login": admin["email"],
                "credentials": str(server.credentials_file),
            }
        )
        return
    out.print(f"Label Studio is running at {info.url} (pid {info.pid})")
    out.print(
        f"log in as {admin['email']}; the password is in {server.credentials_file} (mode 0600)"
    )


@labelstudio_app.command("stop")
def labelstudio_stop(study: StudyArg) -> None:
    """Stop the study's Label Studio server."""
    from connectors.accounts import server_of
    from loop.study import open_study

    with open_study(study) as s:
        stopped = server_of(s).stop()
    out.print("stopped" if stopped else "Label Studio was not running")


@labelstudio_app.command("status")
def labelstudio_status(study: StudyArg, as_json: JsonOpt = False) -> None:
    """Say whether the study's Label Studio runs, where, and whether it is healthy."""
    from connectors.accounts import server_of
    from connectors.labelstudio_server import healthy
    from loop.study import open_study

    with open_study(study) as s:
        info = server_of(s).info()
    state = {
        "running": info is not None,
        "url": info.url if info else None,
        "pid": info.pid if info else None,
        "healthy": bool(info and healthy(info.url)),
    }
    if as_json:
        emit_json(state)
    else:
        out.print(
            f"running at {info.url} (pid {info.pid}), healthy: {state['healthy']}"
            if info
            else "not running"
        )


@annotators_app.command("add")
def annotators_add(
    study: StudyArg,
    names: Annotated[list[str], typer.Argument(help="Annotator names (letters, digits, . _ -).")],
    domain: Annotated[str, typer.Option(help="Email domain of the new accounts.")] = "loop.local",
    profile: Annotated[
        str | None,
        typer.Option(
            help="Noise profile if simulated: perfect, careful, average, sloppy, or a "
            "[noise.NAME] of loop.toml."
        ),
    ] = None,
) -> None:
    """Create one Label Studio account (with its own API token) per annotator; idempotent."""
    from connectors.accounts import add_annotators, connect
    from loop.study import open_study

    with open_study(study) as s:
        if profile is not None:
            from loop.noise import profile_named

            profile_named(profile, s.config.noise)
        admin = connect(s)
        added = add_annotators(s, admin, names, domain=domain, profile=profile)
    for a in added:
        out.print(f"{a.name}: {a.email} (user {a.user_id}){' created' if a.created else ''}")


@annotators_app.command("list")
def annotators_list(study: StudyArg, as_json: JsonOpt = False) -> None:
    """List the study's annotators (names, emails, noise profiles; never tokens)."""
    from loop.study import open_study

    with open_study(study) as s:
        rows = [
            {k: r[k] for k in ("name", "tool", "external_id", "email", "profile")}
            for r in s.store.db["annotators"].rows
        ]
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "email", "user", "profile")
    for r in rows:
        table.add_row(r["name"], r["email"], r["external_id"], r["profile"] or "")
    out.print(table)


def _read_id_list(images: str) -> list[int]:
    from loop.errors import PushRefused

    path = Path(images)
    text = path.read_text() if path.is_file() else images
    try:
        return [int(tok) for tok in text.replace(",", " ").split()]
    except ValueError:
        raise PushRefused(f"--images {images!r}: give image ids (1,2,3) or a file of ids") from None


def _predictions_from(folder: Path | None):
    if folder is None:
        return None
    from loop.images import read_mask
    from loop.types import Prediction

    def predict(image: dict):
        for ext in (".tif", ".tiff", ".png"):
            path = folder / f"{image['name']}{ext}"
            if path.is_file():
                return Prediction(
                    mask=read_mask(path, (image["height"], image["width"])),
                    model_version=folder.name,
                )
        return None

    return predict


@app.command()
def push(
    study: StudyArg,
    images: Annotated[
        str | None, typer.Option(help="Image ids (1,2,3) or a file listing them.")
    ] = None,
    split: Annotated[
        str, typer.Option(help="Push images of this split (pool or labeled).")
    ] = "pool",
    limit: Annotated[int | None, typer.Option(help="At most this many images of --split.")] = None,
    overlap: Annotated[int, typer.Option(help="Distinct annotators wanted per task.")] = 3,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Folder of label TIFFs <image name>.tif used as pre-annotations."),
    ] = None,
    arm: Annotated[
        str, typer.Option(help="Arm the tasks belong to (main, or a control arm).")
    ] = "main",
    round: Annotated[int | None, typer.Option("--round", help="Round the tasks belong to.")] = None,
    tile: Annotated[
        int,
        typer.Option(
            help="Images larger than --tile-above become tiles of at most this side, one task "
            "each, stitched back on pull (0: whole images; default: [rounds] tile)."
        ),
    ] = -1,
    tile_above: Annotated[
        int, typer.Option(help="Only images with a side longer than this are tiled.")
    ] = 512,
    tile_overlap: Annotated[int, typer.Option(help="Pixels neighbouring tiles share.")] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Send images to Label Studio as tasks (idempotent: an image is never pushed twice)."""
    from connectors.accounts import connect
    from loop.annotation import push as run_push
    from loop.annotation import select_for_push
    from loop.study import open_study
    from loop.tiles import Tiling

    with open_study(study) as s:
        rows = select_for_push(
            s, image_ids=_read_id_list(images) if images else None, split=split, limit=limit
        )
        tiling = (
            s.config.rounds.tiling()
            if tile < 0
            else Tiling(tile=tile, above=tile_above, overlap=tile_overlap)
            if tile
            else None
        )
        tool = connect(s)
        with progress_bar() as bar:
            job = bar.add_task("push", total=None)
            report = run_push(
                s,
                tool,
                rows,
                overlap=overlap,
                arm=arm,
                round=round,
                predictions=_predictions_from(predictions),
                tiling=tiling,
                progress=lambda d, t: bar.update(job, completed=d, total=t),
            )
        tool.close()
    summary = {
        "project": report.project,
        "created": report.created,
        "adopted": report.adopted,
        "already_pushed": report.already,
        "tasks": len(report.task_ids),
        "tiled_images": report.tiled,
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


@app.command()
def pull(study: StudyArg, as_json: JsonOpt = False) -> None:
    """Bring finished annotations back from Label Studio (incremental; nothing is ever lost)."""
    from connectors.accounts import connect
    from loop.adjudicate import record
    from loop.annotation import pull as run_pull
    from loop.study import open_study

    with open_study(study) as s:
        tool = connect(s)
        with progress_bar() as bar:
            job = bar.add_task("pull", total=None)
            report = run_pull(s, tool, progress=lambda d, t: bar.update(job, completed=d, total=t))
        tool.close()
        decisions = record(s)
    for line in report.malformed:
        print(f"malformed annotation kept as is: {line}", file=sys.stderr)
    for line in report.tile_gaps:
        print(f"tiled image not complete: {line}", file=sys.stderr)
    for line in decisions.ignored:
        print(f"not used: {line}", file=sys.stderr)
    summary = {
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "skipped_by_annotator": report.skipped_by_annotator,
        "malformed": len(report.malformed),
        "tasks_seen": report.tasks_seen,
        "tasks_done": report.tasks_done,
        "stitched": report.stitched,
        "tile_gaps": len(report.tile_gaps),
        "adjudicated": decisions.decided,
        "awaiting_review": decisions.waiting,
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


def simulated_annotators(s, admin, names: list[str], chosen: dict[str, str]) -> dict[str, str]:
    """Accounts for simulated annotators (made if missing); returns name -> noise profile:
    the one chosen, else the one stored, else careful, average, sloppy by position."""
    from connectors.accounts import add_annotators
    from loop.noise import DEFAULT_ORDER, profile_named

    stored = {r["name"]: r["profile"] for r in s.store.db["annotators"].rows}
    profiles = {}
    for i, name in enumerate(names):
        profiles[name] = (
            chosen.get(name) or stored.get(name) or DEFAULT_ORDER[i % len(DEFAULT_ORDER)]
        )
    for name, value in profiles.items():
        profile_named(value, s.config.noise)
        add_annotators(s, admin, [name], profile=value)
    return profiles


def _simulate_now(s, admin, profiles: dict[str, str], seed: int, purpose: str = "annotate"):
    from connectors.simulated import simulate as run_simulate
    from loop.noise import profile_named

    with err.status("simulated annotators at work ...") as status_line:
        return run_simulate(
            s,
            admin,
            {n: profile_named(p, s.config.noise) for n, p in profiles.items()},
            seed=seed,
            purpose=purpose,
            progress=lambda name, n: status_line.update(f"{name}: {n} tasks annotated"),
        )


@app.command()
def simulate(
    study: StudyArg,
    annotators: Annotated[
        str, typer.Option(help="Comma-separated annotator names (accounts are created if missing).")
    ] = "alice,bob,carol",
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PROFILE (perfect, careful, average, sloppy, or a [noise.NAME] of "
            "loop.toml). Repeatable."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the annotators' noise.")] = 0,
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Work the adjudication project (simulated reviewers) instead."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulated annotators annotate every open task assigned to them, through the API.

    Default profiles by position: careful, average, sloppy."""
    from connectors.accounts import connect
    from loop.errors import ConfigError
    from loop.study import open_study

    names = [n.strip() for n in annotators.split(",") if n.strip()]
    chosen = {}
    for item in profile or []:
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise ConfigError(
                f"--profile {item!r}: write NAME=PROFILE for one of {', '.join(names)}"
            )
        chosen[name] = value
    with open_study(study) as s:
        admin = connect(s)
        profiles = simulated_annotators(s, admin, names, chosen)
        report = _simulate_now(s, admin, profiles, seed, "adjudicate" if review else "annotate")
        admin.close()
    if as_json:
        emit_json({"profiles": profiles, "annotated": report.annotated, "skipped": report.skipped})
    else:
        for name in names:
            out.print(
                f"{name} ({profiles[name]}): {report.annotated[name]} annotated, "
                f"{report.skipped[name]} skipped"
            )


@app.command()
def agree(
    study: StudyArg,
    round: Annotated[
        int | None, typer.Option("--round", help="Only the tasks of this round.")
    ] = None,
    method: Annotated[str, typer.Option(help="Mask fusion: majority or staple.")] = "majority",
    min_agreement: Annotated[
        float, typer.Option(help="Tasks below this mean pairwise agreement go to adjudication.")
    ] = 0.7,
    against_truth: Annotated[
        bool,
        typer.Option(
            "--against-truth", help="Also score annotators and consensus against ground truth."
        ),
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or csv (one row per task).")
    ] = "table",
    as_json: JsonOpt = False,
) -> None:
    """Inter-annotator agreement per task, pair and annotator; writes consensus labels and lists
    tasks for adjudication."""
    import csv

    from loop.agree import agree as run_agree
    from loop.errors import ConfigError
    from loop.study import open_study

    if output_format not in ("table", "json", "csv"):
        raise ConfigError(f"--format {output_format}: choose table, json or csv")
    output_format = "json" if as_json else output_format
    with open_study(study) as s, progress_bar() as bar:
        job = bar.add_task("agreement", total=None)
        report = run_agree(
            s,
            round=round,
            method=method,
            min_agreement=min_agreement,
            against_truth=against_truth,
            progress=lambda d, t: bar.update(job, completed=d, total=t),
        )
    if output_format == "json":
        data = {
            "overall": report.overall,
            "annotators": report.annotators,
            "tasks": [vars(t) for t in report.tasks],
        }
        if against_truth:
            data.update(report.against_truth or {"consensus": None, "annotators": {}})
        emit_json(data)
    elif output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(
            [
                "task_id",
                "image_id",
                "image",
                "round",
                "annotators",
                "agreement",
                "consensus",
                "adjudicate",
            ]
        )
        for t in report.tasks:
            writer.writerow(
                [
                    t.task_id,
                    t.image_id,
                    t.image,
                    t.round,
                    " ".join(t.annotators),
                    "" if t.agreement is None else f"{t.agreement:.4f}",
                    t.consensus,
                    int(t.adjudicate),
                ]
            )
    else:
        table = Table("annotator", "agreement with the others' consensus")
        for name, value in report.annotators.items():
            table.add_row(name, f"{value:.3f}")
        out.print(table)
        overall = report.overall
        mean = overall["mean_agreement"]
        out.print(
            f"{overall['tasks']} tasks, mean pairwise agreement "
            f"{'n/a' if mean is None else f'{mean:.3f}'}; "
            f"{len(overall['adjudicate'])} for adjudication: {overall['adjudicate'][:20]}"
        )
        if report.against_truth:
            out.print(f"against truth: {report.against_truth}")


@app.command()
def adjudicate(
    study: StudyArg,
    reviewer: Annotated[
        str, typer.Option(help="The annotator whose label decides (an account of the study).")
    ],
    min_agreement: Annotated[
        float, typer.Option(help="Tasks below this mean pairwise agreement are reviewed.")
    ] = 0.7,
    round: Annotated[
        int | None, typer.Option("--round", help="Only the tasks of this round.")
    ] = None,
    method: Annotated[
        str, typer.Option(help="Fusion of the consensus offered as a version: majority or staple.")
    ] = "majority",
    as_json: JsonOpt = False,
) -> None:
    """Send low-agreement tasks to a reviewer in Label Studio, every annotator's version shown
    as a pre-annotation; record the reviewer's decisions made since the last call."""
    from connectors.accounts import connect
    from loop.adjudicate import adjudicate as run_adjudicate
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        job = bar.add_task("adjudication", total=None)
        tool = connect(s)
        try:
            report = run_adjudicate(
                s,
                tool,
                reviewer=reviewer,
                min_agreement=min_agreement,
                round=round,
                method=method,
                progress=lambda stage, d, t: bar.update(
                    job, description=stage, completed=d, total=t
                ),
            )
        finally:
            tool.close()
    for line in report.recorded.ignored:
        print(f"not used: {line}", file=sys.stderr)
    rec = report.recorded
    summary = {
        "decided": rec.decided,
        "unchanged": rec.unchanged,
        "awaiting_review": rec.waiting,
        "skipped_by_reviewer": rec.skipped_by_reviewer,
        "below_threshold": len(report.candidates),
        "sent": report.sent,
        "already_sent": report.already,
        "project": report.project,
    }
    if as_json:
        emit_json(
            {
                **summary,
                "tasks": [
                    {k: getattr(t, k) for k in ("task_id", "image_id", "image", "round")}
                    | {"agreement": t.agreement, "annotators": t.annotators}
                    for t in report.candidates
                ],
            }
        )
        return
    if report.candidates:
        table = Table("task", "image", "round", "agreement", "annotators", title="below threshold")
        for t in report.candidates:
            table.add_row(
                str(t.task_id),
                t.image,
                "" if t.round is None else str(t.round),
                "" if t.agreement is None else f"{t.agreement:.3f}",
                " ".join(t.annotators),
            )
        out.print(table)
    out.print(", ".join(f"{k}: {v}" for k, v in summary.items()))


# --- models -------------------------------------------------------------------------------

GpuOpt = Annotated[
    bool | None,
    typer.Option("--gpu/--cpu", help="Use CUDA (default: when present) or force the CPU."),
]


def _stage_progress(bar: Progress):
    job = bar.add_task("starting", total=None)
    return lambda stage, done, total: bar.update(
        job, description=stage, completed=done, total=total
    )


@app.command()
def train(
    study: StudyArg,
    seed: Annotated[int | None, typer.Option(help="Overrides the config's seed.")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimisation steps (segmentation; default from config).")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Do not warm-start from the previous model.")
    ] = False,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train on the current labels (labeled split: adjudicated > consensus > ground truth) and
    record the model; a model that validates worse than the previous one is kept out of use."""
    from loop.learner import train as run_train
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = run_train(
            s, seed=seed, steps=steps, fresh=fresh, gpu=gpu, progress=_stage_progress(bar)
        )
    if as_json:
        emit_json(vars(report))
        return
    what = "reused the identical model" if report.reused else "trained"
    out.print(
        f"{what} {report.model_id}: {report.n_train} training + {report.n_val} validation "
        f"images, {report.steps} steps, {report.seconds:.0f} s; {report.decision}"
    )


@app.command()
def evaluate(
    study: StudyArg,
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    split_name: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Held-out figures of the model on the test split, overall and per group."""
    from loop.learner import evaluate as run_evaluate
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        metrics = run_evaluate(
            s, model_id=model, split=split_name, gpu=gpu, progress=_stage_progress(bar)
        )
    if as_json:
        emit_json(metrics)
        return
    keys = [
        k
        for k in (
            "ap50",
            "ap75",
            "ap90",
            "f1",
            "matched_iou",
            "dice",
            "accuracy",
            "macro_f1",
            "kappa",
        )
        if k in metrics
    ]
    table = Table("group", "images", *keys)

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    table.add_row("all", str(metrics["n_images"]), *(fmt(metrics[k]) for k in keys))
    for group, figures in metrics["per_group"].items():
        table.add_row(group, str(figures["n_images"]), *(fmt(figures[k]) for k in keys))
    out.print(f"model {metrics['model_id']} on the {metrics['split']} split")
    out.print(table)


@app.command()
def score(
    study: StudyArg,
    strategy: Annotated[
        str | None, typer.Option(help="A name from `loop strategies` (default: config/task).")
    ] = None,
    k: Annotated[int | None, typer.Option(help="Batch size to choose.")] = None,
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of random choices.")] = 0,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every pool image with the model (stored; images already scored by the same model
    are skipped) and print the chosen batch."""
    from loop.learner import score as run_score
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = run_score(
            s,
            strategy=strategy,
            k=k,
            model_id=model,
            seed=seed,
            gpu=gpu,
            progress=_stage_progress(bar),
        )
    if as_json:
        emit_json(vars(report))
        return
    table = Table("rank", "image id", "path", report.strategy)
    for rank, item in enumerate(report.chosen, 1):
        value = "" if item["score"] is None else f"{item['score']:.4f}"
        table.add_row(str(rank), str(item["image_id"]), item["path"], value)
    out.print(table)
    out.print(
        f"model {report.model_id}: {report.scored} images scored, {report.reused} reused, "
        f"{report.seconds:.1f} s"
    )


@app.command()
def predict(
    study: StudyArg,
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the results.")],
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict label TIFFs (or classes) for any folder; predictions.csv records the model."""
    from loop.learner import predict_folder
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        rows = predict_folder(
            s, folder, output, model_id=model, gpu=gpu, progress=_stage_progress(bar)
        )
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        err.print(f"skipped {folder / r['file']}: {r['error']}")
    if as_json:
        emit_json(rows)
        return
    out.print(
        f"{len(rows) - len(failed)} predictions in {output} ({len(failed)} unreadable); "
        f"model {rows[0]['model_id'] if rows else 'n/a'}"
    )


@app.command()
def measure(
    study: StudyArg,
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for objects.csv, images.csv, ...")
    ],
    model: Annotated[
        int | None, typer.Option(help="Model id (default: the current model).")
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Measure these label images (<file>.tif) instead of segmenting.",
        ),
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Micrometres per pixel: adds *_um columns.")
    ] = None,
    gpu: GpuOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-object measurements of every image in a folder (segmented by the study's model):
    objects.csv, images.csv and provenance.json (model and software versions)."""
    from loop.measure import measure_folder
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        report = measure_folder(
            s,
            folder,
            output,
            model_id=model,
            masks=masks,
            pixel_size=pixel_size,
            gpu=gpu,
            progress=_stage_progress(bar),
        )
    for file, why in report.errors:
        err.print(f"skipped {folder / file}: {why}")
    summary = {
        "images": report.n_images,
        "skipped": len(report.errors),
        "objects": report.n_objects,
        "model_id": report.model_id,
        "objects_csv": str(report.out / "objects.csv"),
        "images_csv": str(report.out / "images.csv"),
        "provenance": str(report.out / "provenance.json"),
    }
    if as_json:
        emit_json(summary)
        return
    source = f"model {report.model_id}" if report.model_id else f"labels in {masks}"
    out.print(
        f"{report.n_objects} objects in {report.n_images} images ({len(report.errors)} skipped; "
        f"{source}) -> {report.out / 'objects.csv'}"
    )


@app.command()
def shift(
    study: StudyArg,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Metadata key to group by (instrument, session, ...) or split; "
            "default: the study's first group.",
        ),
    ] = None,
    splits: Annotated[
        str, typer.Option(help="Comma-separated splits whose images are compared.")
    ] = "pool,labeled,test",
    min_images: Annotated[int, typer.Option(help="Groups with fewer images get no AUC.")] = 5,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="PNG of the features' first two principal components by group "
            "(default: STUDY/report/shift-<key>.png)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Domain shift and batch effects: can each group's images be told from the rest, by
    what, and is each group labeled and tested?"""
    from dataclasses import asdict

    from loop.shift import default_key, shift_report
    from loop.study import open_study

    with open_study(study) as s:
        key = by or default_key(s)
        target = plot or s.path / "report" / f"shift-{key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with progress_bar() as bar:
            report = shift_report(
                s,
                key=key,
                splits=[x.strip() for x in splits.split(",") if x.strip()],
                min_images=min_images,
                plot=target,
                progress=_stage_progress(bar),
            )
    if as_json:
        emit_json(
            {
                "key": report.key,
                "n_images": report.n_images,
                "plot": str(report.plot),
                "groups": [asdict(g) for g in report.groups],
            }
        )
        return
    table = Table(report.key, "images", "by split", "AUC", "verdict", "differs most in (d)")
    for g in report.groups:
        table.add_row(
            g.group,
            str(g.n_images),
            ", ".join(f"{k} {v}" for k, v in g.splits.items()),
            "-" if g.auc is None else f"{g.auc:.2f}",
            g.verdict,
            ", ".join(f"{name} {d:+.1f}" for name, d in g.differs_in),
        )
    out.print(table)
    for g in report.groups:
        for line in g.warnings:
            out.print(f"{report.key} = {g.group}: {line}")
    out.print(
        "AUC: how well a classifier tells the group from the rest by image features "
        f"(0.5: not at all, 1: always). Plot: {report.plot}"
    )


@app.command()
def strategies(
    task: Annotated[str, typer.Option(help="segmentation or classification.")] = "segmentation",
    as_json: JsonOpt = False,
) -> None:
    """List the query strategies with one line each."""
    from loop.config import TASKS
    from loop.errors import ConfigError
    from loop.strategies import DEFAULTS, available

    if task not in TASKS:
        raise ConfigError(f"--task {task}: choose one of {', '.join(TASKS)}")
    listing = available(task)
    if as_json:
        emit_json({"task": task, "default": DEFAULTS[task], "strategies": listing})
        return
    table = Table("strategy", "what it ranks by")
    for name, doc in listing.items():
        table.add_row(name + (" (default)" if name == DEFAULTS[task] else ""), doc)
    out.print(table)


@app.command("export")
def export_labels(
    study: StudyArg,
    folder: Annotated[Path, typer.Argument(help="Output folder (created; files are overwritten).")],
    truth: Annotated[
        bool, typer.Option("--truth", help="Also export images whose only label is ground truth.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Consensus (or adjudicated) label TIFFs, napari/Fiji-ready, and provenance.csv (annotators,
    method, round, agreement)."""
    from loop.export import export
    from loop.study import open_study

    with open_study(study) as s, progress_bar() as bar:
        job = bar.add_task("exporting", total=None)
        report = export(
            s, folder, truth=truth, progress=lambda d, t: bar.update(job, completed=d, total=t)
        )
    if as_json:
        emit_json(
            {
                "folder": report.folder,
                "labels": report.n_labels,
                "by_source": report.by_source,
                "provenance": report.provenance,
            }
        )
        return
    out.print(
        f"{report.n_labels} labels in {report.folder} ({report.by_source}); "
        f"provenance in {report.provenance}"
    )


if __name__ != "__main__":  # registers round, run and report on app (see the end)
    import loop.cli_rounds  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    # `python -m loop.cli`: run the imported module, on which loop.cli_rounds registers its
    # commands (this __main__ copy of the module has an app without them)
    from loop.cli import main as imported_main

    imported_main()
