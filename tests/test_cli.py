import json
import re
from pathlib import Path

import click
import pytest
import typer
from conftest import REPO, cli_seg_study
from typer.testing import CliRunner

from loop.cli import app
from loop.study import open_study

runner = CliRunner()


def commands(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


ALL = list(commands())


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_and_a_page_of_the_docs(path, cmd):
    assert cmd.help and len(cmd.help.strip()) > 20, f"loop {' '.join(path)} has no help text"
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"loop {' '.join(path)} {param.opts[0]} has no help text"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    guide = "".join(  # the hand-written pages (the generated reference lists every command)
        page.read_text()
        for page in sorted((REPO / "docs").rglob("*.md"))
        if "reference" not in page.parts
    )
    assert re.search(rf"loop {' '.join(path)}\b", guide), (
        f"no page under docs/ (but the generated reference) shows loop {' '.join(path)}"
    )


def test_init_ingest_split_status(tmp_path, nuclei_folder):
    study = tmp_path / "s"
    result = runner.invoke(app, ["init", str(study), "--task", "segmentation"])
    assert result.exit_code == 0 and "created study" in result.stdout
    result = runner.invoke(
        app,
        [
            "ingest",
            str(study),
            str(nuclei_folder / "images"),
            "--masks",
            str(nuclei_folder / "masks"),
            "--metadata",
            str(nuclei_folder / "meta.csv"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 6  # stdout is only the JSON
    result = runner.invoke(app, ["split", str(study), "--test", "2", "--initial", "2", "--json"])
    assert json.loads(result.stdout)["counts"] == {
        "pool": 2,
        "labeled": 2,
        "test": 2,
        "excluded": 0,
    }
    result = runner.invoke(app, ["status", str(study)])
    assert result.exit_code == 0
    assert re.search(r"images\s*│\s*2\s*│\s*2\s*│\s*2\s*│\s*0\s*│\s*6", result.stdout)
    assert "instrument=scopeA" in result.stdout and "rounds: none yet" in result.stdout
    status = json.loads(runner.invoke(app, ["status", str(study), "--json"]).stdout)
    assert status["by_split"] == {"labeled": 2, "pool": 2, "test": 2}
    assert sum(status["groups"]["instrument"]["scopeB"].values()) == 3
    assert status["lagging"] == [] and "warning" not in result.stderr
    # instrument and batch are categorical metadata that loop.toml does not name as groups
    assert status["unnamed_groups"] == ["batch", "instrument"]
    note = " ".join(result.stderr.split())
    assert 'add groups = ["batch", "instrument"] to loop.toml' in note
    # a round whose model fails one instrument while the other is fine: a loud warning
    per_group = {
        "instrument=scopeA": {"ap50": 0.72, "n_images": 1},
        "instrument=scopeB": {"ap50": 0.0, "n_images": 1},
    }
    with open_study(study) as s:
        s.store.db["rounds"].insert(
            {"arm": "main", "round": 0, "status": "done", "n_labeled": 2,
             "metrics": json.dumps({"ap50": 0.36, "per_group": per_group})}
        )  # fmt: skip
    result = runner.invoke(app, ["status", str(study)])
    assert "warning: instrument=scopeB: ap50 0.00 on 1 test images" in result.stderr
    status = json.loads(runner.invoke(app, ["status", str(study), "--json"]).stdout)
    assert [g["group"] for g in status["lagging"]] == ["instrument=scopeB"]
    toml = study / "loop.toml"  # once named, selection keeps each instrument's share: no note
    toml.write_text(re.sub(r"(?m)^groups = .*$", 'groups = ["instrument"]', toml.read_text()))
    result = runner.invoke(app, ["status", str(study), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["unnamed_groups"] == [] and "note:" not in result.stderr


def test_ingest_creates_a_classification_study(tmp_path, class_folder):
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "wbc"), str(class_folder), "--classes-from-folders"]
    )
    assert result.exit_code == 0, result.stderr
    assert "created study" in result.stderr and "(classification)" in result.stderr
    assert "added: 18" in result.stdout
    assert 'task = "classification"' in (tmp_path / "wbc" / "loop.toml").read_text()


def test_skipped_files_go_to_stderr_in_full(tmp_path, nuclei_folder):
    long_name = "a_rather_long_file_name_that_a_terminal_would_wrap_" * 2 + ".png"
    (nuclei_folder / "images" / long_name).write_bytes(b"")
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "s"), str(nuclei_folder / "images"), "--json"]
    )
    assert result.exit_code == 0
    line = f"skipped {nuclei_folder / 'images' / long_name}: [empty]"
    assert line in result.stderr
    assert json.loads(result.stdout)["skipped"] == 1


def test_errors_are_one_line_and_exit_1(tmp_path):
    result = runner.invoke(app, ["status", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "loop init" in result.stderr
    assert result.stdout == ""
    (tmp_path / "junk").mkdir()
    result = runner.invoke(app, ["ingest", str(tmp_path / "s"), str(tmp_path / "junk")])
    assert result.exit_code == 1 and "nothing ingested" in result.stderr
    result = runner.invoke(app, ["init", str(tmp_path / "s")])
    assert result.exit_code == 1 and "already holds a study" in result.stderr
    result = runner.invoke(app, ["push", str(tmp_path / "s"), "--tile", "16"])
    assert result.exit_code == 1 and "--tile 16: give a tile side of at least 32" in result.stderr


def test_model_commands_classification(tmp_path, class_folder):
    study = str(tmp_path / "wbc")
    assert (
        runner.invoke(app, ["ingest", study, str(class_folder), "--classes-from-folders"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["split", study, "--test", "0.3", "--initial", "6"]).exit_code == 0
    result = runner.invoke(app, ["evaluate", study, "--json"])
    assert result.exit_code == 1 and "run `loop train` first" in result.stderr
    result = runner.invoke(app, ["train", study, "--json"])
    assert result.exit_code == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["status"] == "accepted" and trained["n_train"] + trained["n_val"] == 6
    result = runner.invoke(app, ["evaluate", study, "--json"])
    metrics = json.loads(result.stdout)
    assert {"accuracy", "macro_f1", "kappa", "per_group"} <= set(metrics)
    result = runner.invoke(
        app, ["score", study, "--strategy", "committee+diversity", "--k", "3", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["chosen"]) == 3
    result = runner.invoke(
        app, ["predict", study, str(class_folder), "-o", str(tmp_path / "p"), "--json"]
    )
    rows = json.loads(result.stdout)
    assert len(rows) == 18 and all(r["class"] for r in rows)


def test_model_commands_segmentation(tmp_path, nuclei_folder):
    study = cli_seg_study(tmp_path / "s", nuclei_folder)
    result = runner.invoke(app, ["train", str(study)])
    assert result.exit_code == 0, result.stderr
    assert "trained 1" in result.stdout
    result = runner.invoke(app, ["score", str(study), "--k", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # the default, auto, starts with typical images (few labeled); labeled images are
    # measured too (TypiClust clusters them with the pool)
    assert report["strategy"] == "auto=typiclust" and len(report["chosen"]) == 2
    assert report["scored"] > 2 and "profile" not in report
    # scored again with --profile: nothing left to measure, and it says so
    again = runner.invoke(app, ["score", str(study), "--k", "2", "--json", "--profile"])
    assert again.exit_code == 0 and json.loads(again.stdout)["profile"] == {}
    assert "nothing measured" in again.stderr
    result = runner.invoke(app, ["evaluate", str(study)])
    assert result.exit_code == 0 and "ap50" in result.stdout
    result = runner.invoke(
        app, ["predict", str(study), str(nuclei_folder / "images"), "-o", str(tmp_path / "masks")]
    )
    assert result.exit_code == 0 and (tmp_path / "masks" / "img0.tif").is_file()


def test_strategies_listing():
    result = runner.invoke(app, ["strategies", "--json"])
    listing = json.loads(result.stdout)
    assert listing["default"] == "auto" and "tta" in listing["strategies"]
    assert {"typiclust", "flip+clue", "flow-error+diversity"} <= set(listing["strategies"])
    assert "typiclust@region" in listing["strategies"]
    result = runner.invoke(app, ["strategies", "--task", "classification"])
    assert "committee" in result.stdout
    result = runner.invoke(app, ["strategies"], env={"COLUMNS": "200"})
    assert "uniform random regions ([regions] size)" in result.stdout  # not eaten as markup
    result = runner.invoke(app, ["strategies", "--task", "counting"])
    assert result.exit_code == 1 and "choose one of" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["score", "{s}", "--k", "-3"],
        ["score", "{s}", "--k", "0"],
        ["push", "{s}", "--overlap", "0"],
        ["push", "{s}", "--limit", "0"],
        ["run", "{s}", "--rounds", "0"],
        ["round", "{s}", "--batch", "0"],
        ["bench", "al", "{s}", "--seeds", "0"],
        ["demo", "{s}", "--rounds", "-1"],
    ],
)
def test_counts_must_be_positive(tmp_path, args):
    study = tmp_path / "study"
    CliRunner().invoke(app, ["init", str(study)])
    result = CliRunner().invoke(app, [a.format(s=study) for a in args])
    assert result.exit_code == 2
    wanted = r"Invalid value for '--[\w-]+': Input should be greater than or equal to 1"
    assert re.search(wanted, result.output)


def test_labelstudio_status_exits_1_when_the_server_is_down(tmp_path):
    study = tmp_path / "study"
    CliRunner().invoke(app, ["init", str(study)])
    result = CliRunner().invoke(app, ["labelstudio", "status", str(study)])
    assert result.exit_code == 1 and "not running" in result.stdout
    result = CliRunner().invoke(app, ["labelstudio", "status", str(study), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["running"] is False


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys")
def test_os_errors_are_one_line_and_exit_1():
    """The kernel refuses a folder under /sys (even to root): one line, no traceback."""
    result = CliRunner().invoke(app, ["init", "/sys/loop-study"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: /sys/loop-study: Operation not permitted (check that you may write there)"
    ]
    assert "Traceback" not in result.output


def test_workers_and_scheduler_fall_back_to_the_cluster_section():
    from loop.cli.common import engine_of
    from loop.config import ClusterConfig
    from loop.learn.engine import Engine

    config = ClusterConfig(workers=3, scheduler="")
    assert engine_of(None, None, config) == Engine(workers=3)
    assert engine_of(2, None, config) == Engine(workers=2)
    remote = ClusterConfig(scheduler="tcp://head:8786")
    assert engine_of(None, None, remote) == Engine(scheduler="tcp://head:8786")
    assert engine_of(None, None) == Engine()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "{s}", "--steps", "-5"], r"error: steps = -5: give a value from 1 to"),
        (["train", "{s}", "--steps", "0"], r"error: steps = 0: give a value from 1 to"),
        (["train", "{s}", "--seed", "-1"], r"error: seed = -1: give a value from 0 to"),
        (["agree", "{s}", "--min-agreement", "-5"], r"error: min_agreement = -5.0: give a value"),
        (["agree", "{s}", "--min-agreement", "nan"], r"error: min_agreement = nan: give a finite"),
        (["agree", "{s}", "--min-agreement", "inf"], r"error: min_agreement = inf: give a finite"),
    ],
)
def test_out_of_range_values_are_refused_before_anything_changes(
    tmp_path, nuclei_folder, args, message
):
    study = cli_seg_study(tmp_path / "study", nuclei_folder)
    result = runner.invoke(app, [a.format(s=study) for a in args])
    assert result.exit_code == 1, result.output
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output
    with open_study(study) as s:
        assert s.store.db["models"].count == 0  # no untrained model became the one in use


def test_a_read_only_study_is_one_error_line(tmp_path, nuclei_folder, read_only):
    study = cli_seg_study(tmp_path / "study", nuclei_folder)
    view = read_only(study)
    for args in (["status", view], ["train", view], ["ingest", view, nuclei_folder / "images"]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output
        assert lines[0].startswith(f"error: {view / 'loop.db'}: ")
        assert "run on a writable copy" in lines[0]


def test_a_full_disk_is_one_error_line_naming_the_file_and_leaves_nothing_half_written(
    tmp_path, nuclei_folder, small_disk
):
    from conftest import fill

    here = cli_seg_study(tmp_path / "study", nuclei_folder)
    fill(small_disk, 8 * 1024)  # room for one label TIFF of the six
    result = runner.invoke(app, ["export", str(here), str(small_disk / "out"), "--truth"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(
        rf"error: {small_disk / 'out'}/img\d\.tif: No space left on device \(free some space, "
        r"then run it again\)",
        line,
    ), line
    assert all(p.stat().st_size > 0 for p in (small_disk / "out").glob("*.tif"))
    assert not list((small_disk / "out").glob(".*tmp*"))
    (small_disk / "filler").unlink()
    study = cli_seg_study(small_disk / "study", nuclei_folder)
    assert runner.invoke(app, ["train", str(study)]).exit_code == 0
    fill(small_disk, 4 * 1024)
    result = runner.invoke(app, ["train", str(study), "--fresh"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(
        r"error: .*(No space left on device|disk is full|disk I/O error)", result.stderr
    )
    (small_disk / "filler").unlink()
    with open_study(study) as s:
        assert s.store.db["models"].count == 1  # the failed training recorded nothing
    assert not [p for p in (study / "models").iterdir() if ".tmp" in p.name]


def test_each_stage_of_a_progress_line_shows_its_own_time():
    """One progress line serves every stage of a command (train, evaluate, ...); its clock
    restarts with each stage, also when the same stage starts over (each round's
    evaluation), so the time shown is not the whole command's."""
    from rich.progress import Progress

    from loop.cli.common import stage_progress

    now = [0.0]
    bar = Progress(get_time=lambda: now[0], disable=True)
    update = stage_progress(bar)
    (task,) = bar.tasks
    update("training", 0, 10)
    now[0] = 100.0
    update("training", 10, 10)
    assert task.elapsed == 100.0
    update("evaluating", 0, 60)
    now[0] = 130.0
    update("evaluating", 60, 60)
    assert (task.description, task.elapsed) == ("evaluating", 30.0)
    update("evaluating", 0, 60)  # the next round's evaluation
    now[0] = 135.0
    update("evaluating", 60, 60)
    assert task.elapsed == 5.0 and task.completed == 60
