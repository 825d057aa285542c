"""Rounds of the loop end to end against the session's real Label Studio, crash safety of each
step, arms, and the report (tiny networks on synthetic nuclei)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import remote_env, tiny_rounds_toml
from typer.testing import CliRunner

from loop import rounds
from loop.cli import app
from loop.cli.wiring import add_annotators, connect
from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.data.synthetic import synthetic_nuclei
from loop.errors import RoundError, UnknownStrategy
from loop.faults import CRASH_EXIT_CODE
from loop.reports.html import annotator_rows, stop_hint, write_report
from loop.reports.status import round_summaries
from loop.store.db import dump_tables
from loop.study import init_study, open_study

pytestmark = pytest.mark.slow
NAMES = ("rt-alice", "rt-bob", "rt-carol")
ROUND_TOML = tiny_rounds_toml(NAMES)
# columns that differ between two studies on one server, or between two runs, by nature
VOLATILE = {"id", "timings", "seconds", "project", "external_id", "title"}


def dump(db_path) -> dict:
    return dump_tables(db_path, leave_out=VOLATILE)


@pytest.fixture(scope="module")
def remote(ls_study):
    """The session's server as an existing one, for the whole module."""
    return remote_env(ls_study)


@pytest.fixture(scope="module")
def base(tmp_path_factory, remote):
    """A closed study (20 synthetic images: 4 test, 6 labeled) whose annotator accounts exist;
    tests copy it, so that every copy shares the accounts and the image ids."""
    root = tmp_path_factory.mktemp("rounds")
    images, masks = root / "data" / "images", root / "data" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(20):
        image, mask = synthetic_nuclei((48, 48), 4, radius=(4, 6), rng=100 + i)
        tifffile.imwrite(images / f"r{i:02d}.tif", image)
        tifffile.imwrite(masks / f"r{i:02d}.tif", mask.astype(np.uint16))
    folder = root / "base"
    init_study(folder).close()
    (folder / "loop.toml").write_text(ROUND_TOML)
    old = {k: os.environ.get(k) for k in remote}
    os.environ.update(remote)
    try:
        with open_study(folder) as study:
            ingest(study, images, masks=masks)
            split_study(study, test=4, initial=6, seed=0)
            tool = connect(study)
            add_annotators(study, tool, list(NAMES), profile="careful")
            tool.close()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return folder


def clone(base, dest):
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return dest


def loop_cli(*args, env, crash=None):
    env = {**{k: v for k, v in os.environ.items() if k != "LOOP_CRASH_AT"}, **env}
    if crash:
        env["LOOP_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, "-m", "loop.cli", *map(str, args)], env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def uninterrupted(base, remote, tmp_path_factory):
    """Two rounds (and the final training) with simulated annotators, never interrupted."""
    folder = clone(base, tmp_path_factory.mktemp("clean") / "study")
    result = CliRunner().invoke(
        app, ["run", str(folder), "--rounds", "2", "--annotators", "simulated"], env=remote
    )
    assert result.exit_code == 0, result.output
    return folder


def test_two_rounds_record_everything(uninterrupted):
    with open_study(uninterrupted) as study:
        rows = study.store.rounds("main")
        assert [(r["round"], r["status"]) for r in rows] == [
            (0, "done"),
            (1, "done"),
            (2, "evaluated"),
        ]
        assert all(set(json.loads(r["timings"])) == set(rounds.STEPS) for r in rows[:2])
        assert set(json.loads(rows[2]["timings"])) == {"train", "evaluate"}
        # each round trains on the initial images plus the batches that reached a consensus
        initial = set(rounds.arm_images(study, "main", before=0))
        assert len(initial) == 6 and rows[0]["n_labeled"] == 6
        batch0 = json.loads(rows[0]["batch"])
        assert len(batch0) == 3 and not initial & set(batch0)
        joined = json.loads(rows[0]["agreement"])["joined"]
        assert rows[1]["n_labeled"] == 6 + joined
        model = study.store.db["models"].get(rows[1]["model_id"])
        assert set(json.loads(model["train_image_ids"])) == set(
            rounds.arm_images(study, "main", before=1)
        )
        assert model["parent_id"] == rows[0]["model_id"]  # warm start from the arm's model
        # batches are disjoint, never test images, and were pushed with 3 annotators each
        batch1 = json.loads(rows[1]["batch"])
        assert not set(batch0) & set(batch1)
        test_ids = {im["id"] for im in study.store.images("split = 'test'")}
        assert not test_ids & (set(batch0) | set(batch1))
        for image_id in batch0 + batch1:
            n = study.store.db.execute(
                "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id "
                "WHERE t.image_id = ? AND a.status = 'current'",
                [image_id],
            ).fetchone()[0]
            assert n == 3
        metrics = json.loads(rows[0]["metrics"])
        assert metrics["n_images"] == 4 and 0 <= metrics["ap50"] <= 1
        agreement = json.loads(rows[0]["agreement"])
        assert set(agreement["annotators"]) == set(NAMES)
        assert agreement["against_truth"]["consensus"]["f1_50"] is not None
        assert rows[0]["annotator_hours"] > 0


def test_run_again_changes_nothing(uninterrupted, remote):
    before = dump(uninterrupted / "loop.db")
    result = CliRunner().invoke(
        app,
        ["run", str(uninterrupted), "--rounds", "2", "--annotators", "simulated", "--json"],
        env=remote,
    )
    assert result.exit_code == 0, result.output
    assert dump(uninterrupted / "loop.db") == before
    shown = json.loads(result.stdout)["rounds"]
    assert [r["round"] for r in shown] == [0, 1, 2]


def test_a_seeded_run_gives_the_same_database_twice(base, remote, uninterrupted, tmp_path):
    """The golden check of refactorings: the same seeds give the same rows (ids, timestamps,
    timings and the tool's own ids aside), model files included (their sha256)."""
    folder = clone(base, tmp_path / "again")
    result = CliRunner().invoke(
        app, ["run", str(folder), "--rounds", "2", "--annotators", "simulated"], env=remote
    )
    assert result.exit_code == 0, result.output
    again, first = dump(folder / "loop.db"), dump(uninterrupted / "loop.db")
    assert again["models"] and again == first


def test_rounds_scored_on_a_local_cluster_choose_the_same_images(
    base, remote, uninterrupted, tmp_path
):
    """With ``[cluster] workers = 2`` each round's selection scores the pool on two Dask
    worker processes: the same batches, models and labels as in one process; the score rows
    hold the same measures to 1e-6 (torch sums in another order with other thread counts)."""
    folder = clone(base, tmp_path / "cluster")
    toml = folder / "loop.toml"
    toml.write_text(toml.read_text() + "\n[cluster]\nworkers = 2\n")
    result = CliRunner().invoke(
        app, ["run", str(folder), "--rounds", "2", "--annotators", "simulated"], env=remote
    )
    assert result.exit_code == 0, result.output
    # all but the floats that the thread count moves: measures, embeddings, chosen scores
    leave_out = VOLATILE | {"measures", "embedding", "scores"}
    here = dump_tables(folder / "loop.db", leave_out=leave_out)
    one = dump_tables(uninterrupted / "loop.db", leave_out=leave_out)
    assert here["selections"] and here["models"] and here == one
    with open_study(folder) as a, open_study(uninterrupted) as b:
        got = {(r["model_id"], r["image_id"]): r for r in a.store.db["scores"].rows}
        want = {(r["model_id"], r["image_id"]): r for r in b.store.db["scores"].rows}
    assert got.keys() == want.keys() and len(got) > 10
    for key, row in want.items():
        measures, theirs = json.loads(row["measures"]), json.loads(got[key]["measures"])
        assert measures.keys() == theirs.keys()
        assert np.allclose(list(measures.values()), list(theirs.values()), rtol=1e-6, atol=1e-9)


def test_killed_during_push_and_pull_ends_with_the_same_store(
    base, remote, uninterrupted, tmp_path
):
    folder = clone(base, tmp_path / "study")
    args = ("run", folder, "--rounds", "2", "--annotators", "simulated")
    killed = loop_cli(*args, env=remote, crash="push.created")
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    killed = loop_cli(*args, env=remote, crash="pull.task:2")
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    with open_study(folder) as study:  # the kill left round 0 half done
        assert study.store.rounds("main")[0]["status"] == "started"
    finished = loop_cli(*args, env=remote)
    assert finished.returncode == 0, finished.stderr
    assert dump(folder / "loop.db") == dump(uninterrupted / "loop.db")


class _Kill(BaseException):
    """What a kill does to the process, in-process: nothing after it runs."""


class KillAt:
    """Crash points that raise :class:`_Kill` at one named point (``LOOP_CRASH_AT`` kills
    the process; in-process, the test needs it to come back)."""

    def __init__(self, name: str):
        self.name = name

    def hit(self, name: str) -> None:
        if name == self.name:
            raise _Kill(name)


def test_a_crash_at_each_step_resumes_to_the_same_store(
    base, remote, uninterrupted, tmp_path, monkeypatch
):
    folder = clone(base, tmp_path / "study")
    runner = CliRunner()
    for step in rounds.STEPS:
        monkeypatch.setattr(rounds.round, "crash_points", lambda step=step: KillAt(f"round.{step}"))
        with pytest.raises(_Kill, match=f"round.{step}"):
            runner.invoke(
                app,
                ["round", str(folder), "--annotators", "simulated"],
                env=remote,
                catch_exceptions=False,
            )
        with open_study(folder) as study:
            done = set(json.loads(study.store.rounds("main")[0]["timings"]))
        assert done == set(rounds.STEPS[: rounds.STEPS.index(step)])
    monkeypatch.undo()
    result = runner.invoke(
        app, ["run", str(folder), "--rounds", "2", "--annotators", "simulated"], env=remote
    )
    assert result.exit_code == 0, result.output
    assert dump(folder / "loop.db") == dump(uninterrupted / "loop.db")


def test_a_control_arm_starts_from_the_same_labels(uninterrupted, remote, tmp_path):
    folder = clone(uninterrupted, tmp_path / "study")
    result = CliRunner().invoke(
        app,
        ["round", str(folder), "--arm", "random", "--annotators", "simulated", "--json"],
        env=remote,
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["arm"] == "random" and shown["strategy"] == "random"
    with open_study(folder) as study:
        main, control = study.store.rounds("main")[0], study.store.rounds("random")[0]
        assert rounds.arm_images(study, "random", before=0) == rounds.arm_images(
            study, "main", before=0
        )
        # same labels, same recipe, same seed: the main arm's first model is reused
        assert control["model_id"] == main["model_id"]
        assert len(json.loads(control["batch"])) == 3
        # the main arm's labeled set is untouched by the control arm
        assert len(rounds.arm_images(study, "main")) == len(
            rounds.arm_images(study, "main", before=2)
        )


def test_without_annotators_the_round_waits_then_finishes(base, remote, tmp_path):
    folder = clone(base, tmp_path / "study")
    runner = CliRunner()
    first = runner.invoke(app, ["round", str(folder), "--json"], env=remote)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["status"] == "waiting"
    simulated = runner.invoke(
        app, ["simulate", str(folder), "--annotators", ",".join(NAMES)], env=remote
    )
    assert simulated.exit_code == 0, simulated.output
    second = runner.invoke(app, ["round", str(folder), "--json"], env=remote)
    assert second.exit_code == 0, second.output
    done = json.loads(second.stdout)
    assert done["status"] == "done" and done["agreement"] is not None


def test_report_is_self_contained(uninterrupted, tmp_path):
    with open_study(uninterrupted) as study:
        result = write_report(study, tmp_path / "report", gallery=2)
        with pytest.raises(RoundError, match="--arm nope: the study has no rounds of that arm"):
            write_report(study, tmp_path / "other", arm="nope")
    page = result.html.read_text()
    assert page.count("data:image/png;base64,") == len(result.plots) >= 4
    assert "learning-curve.png" in {p.name for p in result.plots}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.plots)
    for name in NAMES:
        assert name in page
    assert page.count("effort (weighted edits)") == 2  # per round and per annotator
    with open_study(uninterrupted) as study:
        summaries = round_summaries(study, "main")
        people = annotator_rows(study, summaries)
    assert [s["effort"] is not None for s in summaries] == [True, True, False]
    assert all(s["effort"] > 0 for s in summaries[:2])  # a model this small is often wrong
    spent = {row[0]: row[4] for row in people}
    assert set(spent) == set(NAMES) and sum(spent.values()) == pytest.approx(
        sum(s["effort"] for s in summaries[:2])
    )
    assert result.hint in page.replace("&#x27;", "'")
    assert 'src="http' not in page  # opens offline


def test_the_report_opens_in_a_browser(uninterrupted, browser, tmp_path):
    """The HTML report in a real browser (headless Chromium): every image loads, the page
    logs no error, and a screenshot of it is written next to it."""
    from browser import broken_images, console_errors, screenshot

    with open_study(uninterrupted) as study:
        result = write_report(study, tmp_path / "report", gallery=2)
    browser.get(result.html.as_uri())
    assert browser.execute_script("return document.images.length") == len(result.plots)
    assert broken_images(browser) == []
    assert console_errors(browser) == []
    assert "Learning curve" in browser.find_element("tag name", "body").text
    shot = screenshot(browser, result.html.with_name("report.png"), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_cli_report_and_status(uninterrupted, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(uninterrupted), "-o", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["html"].endswith("index.html")
    status = runner.invoke(app, ["status", str(uninterrupted), "--json"])
    assert [r["round"] for r in json.loads(status.stdout)["rounds"]] == [0, 1, 2]


def test_stop_hint():
    def rows(*scores, f1=None, agreement=None):
        return [{"arm": "main", "score": s, "f1": f1, "agreement": agreement} for s in scores]

    assert "flat" in stop_hint(rows(0.5, 0.7, 0.705, 0.708), "ap50")
    assert "Too few rounds" in stop_hint(rows(0.5, 0.7, 0.705, 0.708), "ap50", arm="random")
    assert "still worth" in stop_hint(rows(0.5, 0.6, 0.7), "ap50")
    assert "Too few" in stop_hint(rows(0.5), "ap50")
    assert "within 0.010" in stop_hint(rows(0.5, 0.6, f1=0.8, agreement=0.81), "ap50")
    assert "at or above" in stop_hint(rows(0.5, 0.6, f1=0.9, agreement=0.7), "ap50")
    assert "room above" in stop_hint(rows(0.5, 0.6, f1=0.6, agreement=0.9), "ap50")
    # one flat round is not yet a plateau, and not a reason to go on either
    assert "may be flattening" in stop_hint(rows(0.5, 0.6, 0.603), "ap50")
    # the demo's case: the last model was rejected, the previous one kept (gain +0.000)
    kept = rows(0.83, 0.85, 0.85)
    for row, model in zip(kept, (1, 2, 2)):
        row["model_id"] = model
    hint = stop_hint(kept, "ap50")
    assert "kept the previous model (2)" in hint and "still worth" not in hint


# --- errors -----------------------------------------------------------------------------------


def test_errors_without_a_server(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    with pytest.raises(RoundError, match="run at least one round"):
        rounds.run(seg_study, None, rounds=0)
    with pytest.raises(RoundError, match="need Label Studio"):
        rounds.run_round(seg_study, None)
    with pytest.raises(RoundError, match="until='label'"):
        rounds.run_round(seg_study, None, until="label")
    with pytest.raises(UnknownStrategy, match="arm 'control' names no strategy"):
        rounds.run_round(seg_study, None, options=rounds.RoundOptions(arm="control"), until="train")
    with pytest.raises(RoundError, match="no labeled images to start from"):
        rounds.run_round(seg_study, None, until="evaluate")


def test_pool_used_up(seg_study, nuclei_folder):
    (seg_study.path / "loop.toml").write_text(ROUND_TOML)
    path = seg_study.path
    seg_study.close()
    with open_study(path) as study:
        ingest(study, nuclei_folder / "images", masks=nuclei_folder / "masks")
        split_study(study, test=1, initial=5, seed=0)  # 6 images: nothing left in the pool
        assert rounds.run_round(study, None, until="evaluate").status == "evaluated"
        with pytest.raises(RoundError, match="pool is used up"):
            rounds.run_round(study, None, until="select")


def test_annotators_option_is_checked(seg_study):
    runner = CliRunner()
    result = runner.invoke(app, ["round", str(seg_study.path), "--annotators", "robots"])
    assert result.exit_code == 1
    assert "write 'simulated'" in result.stderr
    (seg_study.path / "loop.toml").write_text(
        'task = "segmentation"\n[rounds]\noverlap = 3\nannotators = ["solo"]\n'
    )
    result = runner.invoke(app, ["run", str(seg_study.path), "--annotators", "simulated"])
    assert result.exit_code == 1
    assert "only 1 simulated annotators" in result.stderr


def test_a_classification_round(class_folder, remote, tmp_path):
    """configs/wbc.toml's settings, smaller: classes pushed with the model's guess, voted on."""
    folder = tmp_path / "wbc"
    init_study(folder, task="classification").close()
    (folder / "loop.toml").write_text(
        'task = "classification"\n[classifier]\ncommittee = 2\n[score]\nk = 2\n'
        '[rounds]\nmin_agreement = 0.0\nannotators = ["rc-a", "rc-b", "rc-c"]\n'
    )
    with open_study(folder) as study:
        ingest(study, class_folder, classes_from_folders=True)
        split_study(study, test=4, initial=8, seed=0)
    result = CliRunner().invoke(
        app,
        ["run", str(folder), "--rounds", "1", "--annotators", "simulated", "--json"],
        env=remote,
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["rounds"]
    assert [r["status"] for r in shown] == ["done", "evaluated"]
    assert shown[0]["strategy"] == "entropy+diversity" and len(shown[0]["batch"]) == 2
    assert 0 <= shown[0]["score"] <= 1  # macro-F1 on the test split
    assert 8 < shown[1]["n_labeled"] <= 10  # batch images with a majority joined


def test_run_waits_for_people(base, remote, tmp_path, monkeypatch):
    """Without simulated annotators `run` polls; the experts come in while it sleeps."""
    from loop.cli.wiring import simulate
    from loop.noise import PROFILES

    folder = clone(base, tmp_path / "study")
    for key, value in remote.items():
        monkeypatch.setenv(key, value)
    naps = []
    with open_study(folder) as study:
        tool = connect(study)

        def sleep(seconds):
            naps.append(seconds)
            simulate(study, tool, {name: PROFILES["careful"] for name in NAMES}, seed=0)

        results = rounds.run(study, tool, rounds=1, sleep=sleep)
        tool.close()
    assert naps == [30.0]  # rounds.poll_seconds, once: everything came in during the first nap
    assert [r.status for r in results] == ["done", "evaluated"]


def test_rounds_of_a_region_strategy(base, remote, tmp_path):
    """``loop run --strategy flip@region``: each round picks regions (at most per_image of
    one image), pushes them as region tasks, the simulated experts draw the objects at each
    frame, and the merged partial labels train the next round's model."""
    folder = clone(base, tmp_path / "regions")
    toml = folder / "loop.toml"
    toml.write_text(toml.read_text() + "\n[regions]\nsize = 16\nper_image = 2\ncontext = 8\n")
    args = ["run", str(folder), "--rounds", "2", "--annotators", "simulated"]
    result = CliRunner().invoke(app, [*args, "--strategy", "flip@region"], env=remote)
    assert result.exit_code == 0, result.output
    with open_study(folder) as study:
        rows = study.store.rounds("main")
        assert [r["status"] for r in rows] == ["done", "done", "evaluated"]
        for row in rows[:2]:
            regions = json.loads(row["regions"])
            batch = json.loads(row["batch"])
            assert len(regions) == row["n_batch"] == 3
            assert sorted({r[0] for r in regions}) == sorted(batch)
            assert max(np.bincount([r[0] for r in regions])) <= 2
            assert all(r[3:] == [16, 16] for r in regions)
            assert json.loads(row["agreement"])["regions"]["merged"] >= 1
        tasks = list(study.store.db["tasks"].rows_where("purpose = 'region'"))
        assert len(tasks) == 6 and all(t["status"] == "done" for t in tasks)
        partial = list(study.store.db["labels"].rows_where("known_path IS NOT NULL"))
        assert partial and all(0 < p["known_fraction"] < 1 for p in partial)
        joined = json.loads(rows[0]["agreement"])["joined"]
        assert joined >= 1 and rows[1]["n_labeled"] == 6 + joined
        model = study.store.db["models"].get(rows[1]["model_id"])
        trained = set(json.loads(model["train_image_ids"]))
        assert {p["image_id"] for p in partial} & trained  # partial labels trained
        efforts = [a["effort"] for a in study.store.db["annotations"].rows]
        assert efforts and all(e is not None for e in efforts)
        # the round table gives the regions' agreement and the effort spent on them
        summaries = round_summaries(study, "main")
        for summary, row in zip(summaries[:2], rows[:2]):
            regions = json.loads(row["agreement"])["regions"]
            assert 0 <= summary["agreement"] == regions["mean_agreement"] <= 1
            assert summary["effort"] > 0 and summary["n_regions"] == 3


def test_semantic_rounds_with_simulated_annotators(remote, tmp_path):
    """A semantic study (discs as two pixel classes, a tiny U-Net) through `loop run`: two
    rounds of whole images, then one of regions, with simulated annotators on the real
    server; every round recorded with its mean Dice, agreement and effort; the report names
    the task's figures."""
    from test_unet import blobs

    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(12):
        image, classes = blobs(200 + i)
        tifffile.imwrite(images / f"d{i:02d}.tif", image)
        tifffile.imwrite(masks / f"d{i:02d}.tif", classes)
    folder = tmp_path / "sem"
    init_study(folder).close()
    (folder / "loop.toml").write_text(
        'task = "semantic"\n[labels]\nclasses = ["background", "disc"]\n'
        "[unet]\nfeatures = [4, 4, 8, 8, 16, 4]\ncrop = 32\ntile = 64\ndropout = 0.0\n"
        "min_steps = 20\nmax_steps = 20\nval_fraction = 0.0\n"
        "[score]\nk = 2\n[regions]\nsize = 32\n"
        '[rounds]\nmin_agreement = 0.0\nannotators = ["sr-ann", "sr-bo", "sr-cy"]\n'
    )
    with open_study(folder) as study:
        ingest(study, images, masks=masks)
        split_study(study, test=3, initial=2, seed=0)
    runner = CliRunner()
    whole = runner.invoke(
        app, ["run", str(folder), "--rounds", "2", "--annotators", "simulated"], env=remote
    )
    assert whole.exit_code == 0, whole.output
    for _ in range(2):  # the first finishes round 2 (run's final training), then regions
        regions = runner.invoke(
            app,
            ["round", str(folder), "--strategy", "flip@region", "--annotators", "simulated"],
            env=remote,
        )
        assert regions.exit_code == 0, regions.output
    assert "held-out mean Dice" in whole.output
    with open_study(folder) as study:
        rows = round_summaries(study)
        done = [r for r in rows if r["status"] == "done"]
        assert len(done) >= 3 and all(r["score"] is not None for r in rows)
        assert all(0 <= r["agreement"] <= 1 for r in done)
        assert done[-1]["strategy"] == "flip@region"
        partial = list(study.store.db["labels"].rows_where("known_path is not null"))
        assert partial and all(0 < p["known_fraction"] < 1 for p in partial)
        written = write_report(study, folder / "report")
        assert "mean Dice" in written.hint or "Too few" in written.hint
