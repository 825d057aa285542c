import csv
import io
import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from connectors.simulated import noisy_class, noisy_mask
from loop.annotate.consensus import agree
from loop.cli import app
from loop.core.images import read_mask
from loop.data.ingest import ingest
from loop.noise import PROFILES
from loop.store import utcnow

NAMES = {"alice": "careful", "bob": "average", "carol": "sloppy"}


def annotate(study, image_ids, make):
    """Task and annotation rows as a pull leaves them (``make(image, name) -> mask or class``)."""
    db = study.store.db
    for image_id in image_ids:
        image = study.store.image(image_id)
        task_id = (
            db["tasks"]
            .insert(
                {
                    "image_id": image_id,
                    "arm": "main",
                    "round": 1,
                    "purpose": "annotate",
                    "tool": "t",
                    "project": "1",
                    "external_id": str(image_id),
                    "overlap": 3,
                    "status": "done",
                    "created_at": utcnow(),
                }
            )
            .last_pk
        )
        for k, name in enumerate(NAMES):
            value = make(image, name)
            row = {
                "task_id": task_id,
                "image_id": image_id,
                "annotator": name,
                "external_id": f"{image_id}-{k}",
                "result": "{}",
                "status": "current",
                "version": 1,
            }
            if isinstance(value, np.ndarray):
                path = study.path / "annotations" / str(task_id) / f"{name}_v1.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, value.astype(np.uint16))
                row["mask_path"] = path.relative_to(study.path).as_posix()
            else:
                row["class"] = value
            db["annotations"].insert(row)


def test_segmentation_agreement_consensus_and_ranking(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    ids = [r["id"] for r in seg_study.store.images()]

    def make(image, name):
        truth = read_mask(seg_study.store.truth(image["id"])["mask_path"])
        return noisy_mask(
            truth, PROFILES[NAMES[name]], np.random.default_rng([image["id"], len(name)])
        )

    annotate(seg_study, ids, make)
    report = agree(seg_study, against_truth=True, min_agreement=0.0)
    assert len(report.tasks) == 6
    assert min(report.annotators, key=report.annotators.get) == "carol"  # the sloppy one ranks last
    truth = report.against_truth
    mean_single = np.mean([truth["annotators"][n]["f1_50"] for n in NAMES])
    assert truth["consensus"]["f1_50"] > mean_single
    # consensus labels were stored with provenance, and the images became labeled
    labels = list(seg_study.store.db["labels"].rows_where("source = 'consensus'"))
    assert len(labels) == 6
    provenance = json.loads(labels[0]["provenance"])
    assert (
        provenance["annotators"] == ["alice", "bob", "carol"] and provenance["method"] == "majority"
    )
    assert {r["split"] for r in seg_study.store.images()} == {"labeled"}
    # running again changes nothing
    before = [dict(r) for r in seg_study.store.db["labels"].rows]
    agree(seg_study, min_agreement=0.0)
    assert [dict(r) for r in seg_study.store.db["labels"].rows] == before


def test_low_agreement_goes_to_adjudication(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    ids = [r["id"] for r in seg_study.store.images()][:2]

    def make(image, name):
        truth = read_mask(seg_study.store.truth(image["id"])["mask_path"])
        return truth if name != "carol" else np.zeros_like(truth)

    annotate(seg_study, ids, make)
    report = agree(seg_study, min_agreement=0.9)
    assert report.overall["adjudicate"] == [t.task_id for t in report.tasks]
    assert seg_study.store.db["labels"].count_where("source = 'consensus'") == 0
    assert {r["split"] for r in seg_study.store.images()} == {"pool"}


def test_classification_agreement(cls_study, class_folder):
    ingest(cls_study, class_folder, classes_from_folders=True)
    ids = [r["id"] for r in cls_study.store.images()]
    classes = ["Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]

    def make(image, name):
        truth = cls_study.store.truth(image["id"])["class"]
        return noisy_class(
            truth, classes, PROFILES[NAMES[name]], np.random.default_rng([image["id"], len(name)])
        )

    annotate(cls_study, ids, make)
    report = agree(cls_study, against_truth=True)
    assert -1 <= report.overall["krippendorff_alpha"] <= 1
    assert 0 < report.overall["percent_agreement"] <= 1
    assert report.against_truth["consensus"]["correct"] >= np.mean(
        [report.against_truth["annotators"][n]["correct"] for n in NAMES]
    )


def test_cli_json_and_csv(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")

    def make(image, name):
        return read_mask(seg_study.store.truth(image["id"])["mask_path"])

    annotate(seg_study, [r["id"] for r in seg_study.store.images()][:3], make)
    runner = CliRunner()
    result = runner.invoke(app, ["agree", str(seg_study.path), "--against-truth", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["consensus"]["f1_50"] == 1.0 and data["annotators"]["alice"]["f1_50"] == 1.0
    result = runner.invoke(app, ["agree", str(seg_study.path), "--round", "1", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3 and rows[0]["agreement"] == "1.0000" and rows[0]["adjudicate"] == "0"
    result = runner.invoke(app, ["agree", str(seg_study.path), "--format", "xml"])
    assert result.exit_code == 1 and "choose table, json or csv" in result.stderr


def test_no_annotations(seg_study):
    report = agree(seg_study)
    assert report.tasks == [] and report.overall["tasks"] == 0


def test_bad_mask_path_is_a_clear_error(seg_study, nuclei_folder):
    from loop.errors import BadMask

    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    annotate(
        seg_study,
        [seg_study.store.images()[0]["id"]],
        lambda image, name: read_mask(seg_study.store.truth(image["id"])["mask_path"]),
    )
    next(iter((seg_study.path / "annotations").rglob("bob_v1.tif"))).write_bytes(b"")
    with pytest.raises(BadMask, match="bob_v1.tif: mask is not readable"):
        agree(seg_study)


@pytest.mark.slow
def test_thirty_dsb_images_through_label_studio(tmp_path, ls_remote, monkeypatch):
    """3 simulated annotators (careful, average, sloppy) annotate 30 real DSB fluorescence
    images through Label Studio: the consensus beats the mean annotator against the ground
    truth, and the agreement with the others ranks the sloppy one last."""
    import shutil

    from conftest import DSB

    from loop.annotate.pull import pull
    from loop.annotate.push import push
    from loop.cli.wiring import add_annotators, connect, simulate
    from loop.study import init_study

    if not DSB.exists():
        pytest.skip(f"{DSB} not present")
    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)
    manifest = json.loads((DSB / "manifest.json").read_text())
    chosen = [r["id"] for r in manifest if r["modality"] == "fluorescence"][:30]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in chosen:
        shutil.copy(DSB / "images" / f"{name}.png", tmp_path / "images")
        shutil.copy(DSB / "masks" / f"{name}.tif", tmp_path / "masks")
    names = {f"ag-{n}": profile for n, profile in NAMES.items()}
    with init_study(tmp_path / "study") as study:
        ingest(study, tmp_path / "images", masks=tmp_path / "masks")
        tool = connect(study)
        for name, profile in names.items():
            add_annotators(study, tool, [name], profile=profile)
        push(study, tool, study.store.images(), overlap=3)
        done = simulate(study, tool, {n: PROFILES[p] for n, p in names.items()}, seed=0)
        assert done.annotated == {n: 30 for n in names}
        assert pull(study, tool).new == 90
        tool.close()
        report = agree(study, against_truth=True, min_agreement=0.0)
    assert len(report.tasks) == 30
    assert min(report.annotators, key=report.annotators.get) == "ag-carol"
    truth = report.against_truth
    mean_single = np.mean([truth["annotators"][n]["f1_50"] for n in names])
    assert truth["consensus"]["f1_50"] > mean_single


def test_a_consensus_needs_two_valid_annotations(seg_study, nuclei_folder):
    """An image annotated validly by one of its three annotators (the others' annotations
    malformed or missing) waits: no consensus from one person, no move to labeled."""
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    ids = [r["id"] for r in seg_study.store.images()][:2]

    def make(image, name):
        return read_mask(seg_study.store.truth(image["id"])["mask_path"])

    annotate(seg_study, ids, make)
    db = seg_study.store.db
    lonely = ids[0]
    db.execute(
        "UPDATE annotations SET status = 'malformed' WHERE image_id = ? AND annotator != 'alice'",
        [lonely],
    )
    db.conn.commit()
    report = agree(seg_study, min_agreement=0.0)
    assert [t.image_id for t in report.tasks] == [ids[1]]
    assert [(w.image_id, w.annotators, w.needed) for w in report.waiting] == [
        (lonely, ["alice"], 2)
    ]
    assert "1 valid annotation(s) (alice), a consensus needs 2" in str(report.waiting[0])
    sources = {r["image_id"] for r in db["labels"].rows_where("source = 'consensus'")}
    assert sources == {ids[1]}
    assert seg_study.store.image(lonely)["split"] == "pool"
    # loop status says why it waits; the CLI lists it on stderr and in --json
    result = CliRunner().invoke(app, ["status", str(seg_study.path)])
    assert "waiting: 1 done tasks have too few valid annotations" in result.stdout
    result = CliRunner().invoke(app, ["agree", str(seg_study.path), "--json"])
    assert json.loads(result.stdout)["waiting"][0]["image_id"] == lonely
    assert "waiting: task" in result.stderr
    # one is enough when asked for (or when the task's overlap is 1)
    report = agree(seg_study, min_agreement=0.0, min_annotations=1)
    assert not report.waiting and {t.image_id for t in report.tasks} == set(ids)


def test_min_annotations_is_checked():
    from loop.config import RoundsConfig
    from loop.errors import ConfigError

    with pytest.raises(ConfigError, match="rounds.min_annotations = 0: give a value from 1 to 100"):
        RoundsConfig(min_annotations=0)
