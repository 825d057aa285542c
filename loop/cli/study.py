"""Commands on the study itself: ``split``, ``status``, ``shift`` and ``export`` (``init`` and
``ingest`` are in :mod:`loop.cli.data`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loop.cli.common import (
    JsonOpt,
    LoopGroup,
    StudyArg,
    emit_json,
    err,
    out,
    progress_bar,
    stage_progress,
)

app = typer.Typer(cls=LoopGroup)


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
    test_where: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE or KEY!=VALUE: the test split is every image with ground truth "
            "that matches (e.g. the slices of a stack set apart), not a draw. Repeatable."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Re-split a study whose annotation has begun.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Hold out a test split (never annotated) and an initial labeled set; the rest is the pool."""
    from loop.data.split import split_study
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
            test_where=test_where or (),
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
    from loop.reports.status import study_status
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
    regions = pushed.get("regions") or {}
    if regions.get("tasks") or regions.get("partial_labels"):
        share = regions.get("mean_known_fraction")
        out.print(
            "regions: "
            + (", ".join(f"{n} {k}" for k, n in sorted(regions["tasks"].items())) or "none")
            + f" region tasks; {regions['partial_labels']} partial labels"
            + ("" if share is None else f" (known on {share:.0%} of their image on average)")
        )
    if pushed.get("effort"):
        out.print(
            "effort of correcting pre-annotations (weighted edits; Label Studio's lead "
            "time): "
            + ", ".join(
                f"{a} {e['effort']:.1f} over {e['annotations']} ({e['lead_time'] or 0:.0f} s)"
                for a, e in pushed["effort"].items()
            )
        )
    if pushed["images_pushed"]:
        tiles = f" (as {pushed['tiles']} tiles where large)" if pushed["tiles"] else ""
        out.print(
            f"annotation: {pushed['images_pushed']} images pushed{tiles}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(pushed["tasks"].items()))
            + "; current annotations: "
            + (", ".join(f"{a} {n}" for a, n in pushed["annotations"].items()) or "none")
        )
        if pushed["malformed"]:
            out.print(
                "malformed annotations (kept, not used): "
                + ", ".join(f"{a} {n}" for a, n in pushed["malformed"].items())
                + " (`loop pull` says why for each; fix them in Label Studio)"
            )
        if pushed.get("edited"):
            out.print(
                "annotations last saved by someone else than their author (kept, not used): "
                + ", ".join(f"{a} {n}" for a, n in pushed["edited"].items())
                + " (`loop pull` says who; the author saves it again, or deletes it)"
            )
        if pushed["unmapped_tasks"]:
            out.print(
                f"unmapped: {pushed['unmapped_tasks']} tasks in Label Studio's project are not "
                "the study's (no loop_task_id in their data; `loop pull` says more)"
            )
        if pushed["too_few_annotations"]:
            out.print(
                f"waiting: {pushed['too_few_annotations']} done tasks have too few valid "
                f"annotations for a consensus (rounds.min_annotations = "
                f"{s.config.rounds.min_annotations}); `loop agree` lists them"
            )
    if st.labels or st.review["sent"]:
        out.print(
            f"labels made: {st.labels.get('consensus', 0)} consensus, "
            f"{st.labels.get('adjudicated', 0)} adjudicated; review tasks: "
            f"{st.review['sent']} sent, {st.review['decided']} decided"
        )
    if st.rounds:
        from loop.cli.common import legend, rounds_table

        out.print(rounds_table(st.rounds))
        out.print(legend(s.config.task))
    else:
        out.print("rounds: none yet")
    for lag in st.lagging:  # loud: a group the model fails while others rise
        err.print(f"[bold red]warning:[/] {lag['message']}")
    if st.unnamed_groups:
        names = ", ".join(f'"{k}"' for k in st.unnamed_groups)
        err.print(
            f"note: metadata {names} looks like groups, but loop.toml names no `groups`, so "
            "batches are chosen without regard to it; when images come from several "
            f"instruments, stains or sessions, add groups = [{names}] to loop.toml (on a mixed "
            "pool, choosing without groups fell behind random: docs/explanation/benchmarks.md)"
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

    from loop.reports.shift import default_key, shift_report
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
                progress=stage_progress(bar),
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
    from loop.reports.export import export
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
