"""Adjudication: low-agreement tasks to a named reviewer in Label Studio, whose label wins."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from loop.annotate.adjudicate import check_request, record
from loop.cli import app
from loop.core.images import read_mask
from loop.data.ingest import ingest
from loop.errors import AdjudicationError
from loop.faults import CRASH_EXIT_CODE
from loop.learn.labels import training_labels
from loop.store import utcnow
from loop.study import init_study, open_study

runner = CliRunner()


def _review_task(study, image_id: int, reviewer: str) -> int:
    return (
        study.store.db["tasks"]
        .insert(
            {
                "image_id": image_id,
                "round": 2,
                "purpose": "adjudicate",
                "reviewer": reviewer,
                "tool": "t",
                "project": "9",
                "external_id": f"r{image_id}",
                "status": "open",
                "created_at": utcnow(),
            }
        )
        .last_pk
    )


def _answer(study, task_id: int, image_id: int, name: str, mask=None, status="current", v=1):
    row = {
        "task_id": task_id,
        "image_id": image_id,
        "annotator": name,
        "external_id": f"{task_id}-{name}-{v}",
        "result": "{}",
        "status": status,
        "version": v,
    }
    if mask is not None:
        path = study.path / "annotations" / str(task_id) / f"{name}_v{v}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mask.astype(np.uint16))
        row["mask_path"] = path.relative_to(study.path).as_posix()
        row["n_objects"] = int(len(np.unique(mask)) - 1)
    table = study.store.db["annotations"]
    old = next(table.rows_where("task_id = ? AND annotator = ?", [task_id, name]), None)
    if old is None:
        table.insert(row)
    else:
        table.update(old["id"], row)


def test_bad_requests_are_refused(seg_study):
    with pytest.raises(AdjudicationError, match=r"--min-agreement 1.5: give .* in \(0, 1\]"):
        check_request(seg_study, "labelstudio", reviewer="dana", min_agreement=1.5)
    with pytest.raises(AdjudicationError, match="reviewer 'dana' has no account .* annotators add"):
        check_request(seg_study, "labelstudio", reviewer="dana", min_agreement=0.7)


def test_cli_reports_an_unknown_reviewer(seg_study, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    result = runner.invoke(app, ["adjudicate", str(seg_study.path), "--reviewer", "nobody"])
    assert result.exit_code == 1
    assert "reviewer 'nobody' has no account" in result.stderr


def test_record_keeps_only_the_reviewers_decision(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    a, b, c = (r["id"] for r in seg_study.store.images()[:3])
    decided = _review_task(seg_study, a, "dana")
    skipped = _review_task(seg_study, b, "dana")
    _review_task(seg_study, c, "dana")  # not answered yet
    mask = np.zeros((48, 64), np.int32)
    mask[5:15, 5:15], mask[20:30, 30:40] = 1, 2
    _answer(seg_study, decided, a, "dana", mask)
    _answer(seg_study, decided, a, "erin", np.ones((48, 64), np.int32))  # not the reviewer
    _answer(seg_study, skipped, b, "dana", status="skipped")

    report = record(seg_study)
    assert (report.decided, report.waiting, report.skipped_by_reviewer) == (1, 1, 1)
    assert len(report.ignored) == 1 and "erin is not its reviewer (dana)" in report.ignored[0]
    labels = list(seg_study.store.db["labels"].rows_where("source = 'adjudicated'"))
    assert len(labels) == 1 and labels[0]["image_id"] == a and labels[0]["n_objects"] == 2
    assert np.array_equal(read_mask(seg_study.resolve(labels[0]["mask_path"])), mask)
    assert json.loads(labels[0]["provenance"])["reviewer"] == "dana"
    assert seg_study.store.image(a)["split"] == "labeled"
    assert seg_study.store.image(b)["split"] == "pool"  # a skipped review decides nothing
    # the adjudicated label is the one training uses
    assert training_labels(seg_study, [a])[0][1]["source"] == "adjudicated"

    again = record(seg_study)
    assert (again.decided, again.unchanged) == (0, 1)
    # the reviewer changes their mind: a new version of the label
    mask[mask == 2] = 0
    _answer(seg_study, decided, a, "dana", mask, v=2)
    assert record(seg_study).decided == 1
    label = seg_study.store.db["labels"].get(labels[0]["id"])
    assert (label["version"], label["n_objects"]) == (2, 1)


@pytest.mark.slow
def test_adjudication_through_label_studio(tmp_path, nuclei_folder, ls_remote, monkeypatch):
    """Three annotators disagree; the low-agreement tasks go to a reviewer with every version
    as a pre-annotation (a killed send resumes without duplicates); the reviewer's labels are
    pulled, win over the consensus, and are exported as such."""
    from loop.annotate.pull import pull
    from loop.annotate.push import push
    from loop.cli.wiring import add_annotators, connect, simulate
    from loop.noise import PROFILES

    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)
    names = {"adj-alice": "careful", "adj-bob": "average", "adj-carol": "sloppy"}
    reviewer = "adj-dana"
    folder = tmp_path / "study"
    with init_study(folder) as study:
        ingest(study, nuclei_folder / "images", masks=nuclei_folder / "masks")
        tool = connect(study)
        for name, profile in {**names, reviewer: "perfect"}.items():
            add_annotators(study, tool, [name], profile=profile)
        push(study, tool, study.store.images(), overlap=3, round=1)
        simulate(study, tool, {n: PROFILES[p] for n, p in names.items()}, seed=0)
        assert pull(study, tool).new == 18
        tool.close()

    args = ["adjudicate", str(folder), "--reviewer", reviewer, "--min-agreement", "0.95"]
    env = {k: v for k, v in os.environ.items() if k != "LOOP_CRASH_AT"}
    killed = subprocess.run(
        [sys.executable, "-m", "loop.cli", *args],
        env={**env, **ls_remote, "LOOP_CRASH_AT": "push.created"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    sent = json.loads(result.stdout)
    n = sent["below_threshold"]
    assert n >= 2 and sent["sent"] == n and sent["already_sent"] == n
    assert all(t["agreement"] < 0.95 for t in sent["tasks"])

    with open_study(folder) as study:
        tool = connect(study)
        review = study.store.db.execute(
            "SELECT project FROM tool_projects WHERE purpose = 'adjudicate'"
        ).fetchone()[0]
        in_tool = [t for page in tool.iter_tasks(review) for t in page]
        assert len(in_tool) == n and len({t.key for t in in_tool}) == n  # no duplicates
        shown = tool._json("GET", f"/api/tasks/{in_tool[0].external_id}", what="get a task")
        versions = sorted(p["model_version"] for p in shown["predictions"])
        assert versions == [*sorted(names), "consensus (majority)"]
        assert shown["data"]["reviewer"] == reviewer
        tool.close()

    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert (again["sent"], again["already_sent"], again["awaiting_review"]) == (0, n, n)

    result = runner.invoke(
        app,
        ["simulate", str(folder), "--annotators", reviewer, "--review", "--json"],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["annotated"] == {reviewer: n}
    pulled = json.loads(runner.invoke(app, ["pull", str(folder), "--json"]).stdout)
    assert (pulled["new"], pulled["adjudicated"], pulled["awaiting_review"]) == (n, n, 0)

    with open_study(folder) as study:
        labels = list(study.store.db["labels"].rows_where("source = 'adjudicated'"))
        assert len(labels) == n
        for label in labels:
            # the (noise-free, simulated) reviewer's label is the ground truth
            image = study.store.image(label["image_id"])
            truth = read_mask(study.store.truth(image["id"])["mask_path"])
            assert np.array_equal(read_mask(study.resolve(label["mask_path"])) > 0, truth > 0)
            assert image["split"] == "labeled"
            provenance = json.loads(label["provenance"])
            assert provenance["reviewer"] == reviewer
            assert provenance["annotators"] == sorted(names)
        decided = [label["image_id"] for label in labels]
        assert {lab["source"] for _, lab in training_labels(study, decided)} == {"adjudicated"}

    status = json.loads(runner.invoke(app, ["status", str(folder), "--json"]).stdout)
    assert status["review"] == {"sent": n, "decided": n}
    assert status["labels"]["adjudicated"] == n
    shown = runner.invoke(app, ["status", str(folder)]).stdout
    assert "adjudicated; review tasks: " in shown
    pushed = status["annotation"]
    assert pushed["images_pushed"] == 6 and pushed["tiles"] == 0  # review tasks not counted
    assert pushed["annotations"] == {name: 6 for name in names}
    assert "annotation: 6 images pushed: 6 done; current annotations: " in shown
    final = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert (final["decided"], final["unchanged"], final["below_threshold"]) == (0, n, 0)
    result = runner.invoke(app, ["export", str(folder), str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "out" / "provenance.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["source"] == "adjudicated"]
    assert len(rows) == n and {r["reviewer"] for r in rows} == {reviewer}
