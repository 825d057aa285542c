"""Train, evaluate, score and predict through a study (tiny networks, synthetic data)."""

import importlib
import json
import os

import numpy as np
import pytest
import tifffile

from loop import learn as learner
from loop.core.images import file_sha256
from loop.core.selectors import steady
from loop.data.ingest import ingest
from loop.data.split import split_study
from loop.data.synthetic import synthetic_nuclei
from loop.errors import ModelError, NoModel, UnknownStrategy
from loop.study import open_study

TINY_TOML = """\
task = "segmentation"
[model]
nbase = [2, 8, 16, 32]
crop = 32
batch_size = 4
epochs = 2
min_steps = 12
max_steps = 12
val_fraction = 0.2
retry_blind = false
[score]
k = 3
shortlist = 2
chunk = 4
"""


@pytest.fixture
def seg_folder(tmp_path):
    images, masks = tmp_path / "nuclei" / "images", tmp_path / "nuclei" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(20):
        image, mask = synthetic_nuclei((48, 48), 4, radius=(4, 6), rng=i)
        tifffile.imwrite(images / f"n{i:02d}.tif", image)
        tifffile.imwrite(masks / f"n{i:02d}.tif", mask.astype(np.uint16))
    return tmp_path / "nuclei"


@pytest.fixture
def tiny_study(seg_study, seg_folder):
    (seg_study.path / "loop.toml").write_text(TINY_TOML)
    path = seg_study.path
    seg_study.close()
    study = open_study(path)
    ingest(study, seg_folder / "images", masks=seg_folder / "masks")
    split_study(study, test=4, initial=12, seed=0)
    yield study
    study.close()


def test_train_uses_exactly_the_labeled_images(tiny_study):
    report = learner.train(tiny_study)
    row = learner.model_row(tiny_study)
    labeled = {im["id"] for im in tiny_study.store.images("split = 'labeled'")}
    used = set(json.loads(row["train_image_ids"])) | set(json.loads(row["val_image_ids"]))
    assert used == labeled and report.n_val >= 2 and report.status == "accepted"
    assert row["sha256"] == file_sha256(tiny_study.resolve(row["path"]))
    assert json.loads(row["versions"])["cellpose"].startswith("3.")
    assert len(json.loads(row["losses"])) >= 1
    png = tiny_study.resolve(row["path"]).with_name(f"cellpose-{report.model_id:04d}-loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # same labels, config and seed: the recorded model is reused, not retrained
    again = learner.train(tiny_study)
    assert again.reused and again.model_id == report.model_id


def test_a_model_is_loaded_once_while_the_study_is_open(tiny_study):
    learner.train(tiny_study)
    row = learner.model_row(tiny_study)
    first = learner.load_model(tiny_study, row, gpu=False)
    assert learner.load_model(tiny_study, row, gpu=False) is first
    tiny_study.close()
    assert tiny_study.models == {}


def test_pool_truth_is_never_read(tiny_study, monkeypatch):
    seen = []
    labels_module = importlib.import_module("loop.learn.labels")  # what reads every label
    real = labels_module._mask_of
    monkeypatch.setattr(
        labels_module, "_mask_of", lambda s, im, lab: seen.append(im["split"]) or real(s, im, lab)
    )
    learner.train(tiny_study)
    assert seen and set(seen) == {"labeled"}


def test_validation_side_is_stable():
    items = [({"id": i, "sha256": f"{i:064x}"}, {}) for i in range(40)]
    train_a, val_a = learner.validation_split(items, 0.2)
    train_b, val_b = learner.validation_split(items[:30] + items[35:], 0.2)
    assert {it[0]["id"] for it in val_b} <= {it[0]["id"] for it in val_a}
    assert learner.validation_split(items[:9], 0.2)[1] == []


def test_warm_start_and_rejection(tiny_study):
    first = learner.train(tiny_study)
    db = tiny_study.store.db
    pool = tiny_study.store.images("split = 'pool'")[0]
    db["images"].update(pool["id"], {"split": "labeled"})
    second = learner.train(tiny_study)
    row = learner.model_row(tiny_study, second.model_id)
    assert (
        row["parent_id"] == first.model_id and json.loads(row["params"])["parent"] == first.model_id
    )
    assert "previous" in second.val
    # a tolerance of -1 rejects any new model (none gains a whole AP): the previous one stays
    (tiny_study.path / "loop.toml").write_text(
        TINY_TOML.replace("[score]", "keep_tolerance = -1.0\n[score]")
    )
    reopened = open_study(tiny_study.path)
    db["images"].update(tiny_study.store.images("split = 'pool'")[0]["id"], {"split": "labeled"})
    third = learner.train(reopened)
    assert third.status == "rejected" and "rejected" in third.decision
    assert learner.current_model(reopened)["id"] == second.model_id
    reopened.close()


def test_extend_trains_further_on_the_same_labels(tiny_study):
    first = learner.train(tiny_study, steps=4)
    # the same labels and recipe again: the parent is returned as it is
    assert learner.train(tiny_study, steps=4).model_id == first.model_id
    more = learner.train(tiny_study, steps=4, parent_id=first.model_id, extend=True)
    assert more.model_id != first.model_id and not more.reused
    row = learner.model_row(tiny_study, more.model_id)
    assert json.loads(row["params"])["parent"] == first.model_id
    if row["device"] == "cpu":  # the CPU keeps the settings as written: nothing to record
        assert "on_device" not in json.loads(row["params"])
    # a second extension of the same parent reuses the first one
    again = learner.train(tiny_study, steps=4, parent_id=first.model_id, extend=True)
    assert again.model_id == more.model_id and again.reused


def test_evaluate_score_predict(tiny_study, tmp_path):
    with pytest.raises(NoModel, match="run `loop train` first"):
        learner.evaluate(tiny_study)
    learner.train(tiny_study)
    metrics = learner.evaluate(tiny_study)
    assert metrics["n_images"] == 4 and 0 <= metrics["ap50"] <= 1 and "dice" in metrics
    assert learner.evaluate(tiny_study) == metrics  # cached
    pool = tiny_study.store.images("split = 'pool'")
    labeled = tiny_study.store.images("split = 'labeled'")
    shortlist = tiny_study.config.score.shortlist
    report = learner.score(tiny_study, strategy="flow-error+diversity", k=1)
    # the forward pass measures every pool and labeled image; flow error the shortlist only
    segmented = min(len(pool), shortlist)
    assert report.scored == len(pool) + len(labeled) + segmented and len(report.chosen) == 1
    stored = {r["image_id"]: json.loads(r["measures"]) for r in tiny_study.store.db["scores"].rows}
    assert len(stored) == len(pool) + len(labeled) and all("flip" in m for m in stored.values())
    assert sum("flow_error" in m for m in stored.values()) == segmented
    # a plain measure picks the highest values of that measure (the measure's own key)
    # (values equal to selectors.STEADY_BITS bits tie, and a tie goes to the earlier image)
    top = learner.score(tiny_study, strategy="entropy", k=2)
    entropy = steady(np.array([stored[im["id"]]["entropy"] for im in pool]))
    by_entropy = sorted(range(len(pool)), key=lambda i: (-entropy[i], i))
    assert [c["image_id"] for c in top.chosen] == [pool[i]["id"] for i in by_entropy[:2]]
    assert top.scored == 0 and top.reused == len(pool) + len(labeled)
    again = learner.score(tiny_study, strategy="tta", k=1)
    assert again.scored == min(len(pool), shortlist)  # TTA on the shortlist only
    measures = [json.loads(r["measures"]) for r in tiny_study.store.db["scores"].rows]
    assert sum("tta" in m for m in measures) == min(len(pool), shortlist)
    assert tiny_study.store.db["selections"].count == 3
    with pytest.raises(UnknownStrategy, match="unknown strategy"):
        learner.score(tiny_study, strategy="margin")
    rows = learner.predict_folder(
        tiny_study, tiny_study.path.parent / "nuclei" / "images", tmp_path / "out"
    )
    assert len(rows) == 20 and (tmp_path / "out" / "n00.tif").is_file()
    csv_text = (tmp_path / "out" / "predictions.csv").read_text()
    assert csv_text.count(rows[0]["model_sha256"]) == 20


def test_random_needs_no_model(tiny_study):
    report = learner.score(tiny_study, strategy="random", k=2, seed=3)
    assert len(report.chosen) == 2 and report.chosen[0]["score"] is None


def test_model_free_coverage_needs_no_model(tiny_study):
    report = learner.score(tiny_study, strategy="typiclust@image", k=3, seed=1)
    pool = {im["id"] for im in tiny_study.store.images("split = 'pool'")}
    picked = [c["image_id"] for c in report.chosen]
    assert len(set(picked)) == 3 and set(picked) <= pool
    again = learner.score(tiny_study, strategy="typiclust@image", k=3, seed=1)
    assert [c["image_id"] for c in again.chosen] == picked  # seeded
    with pytest.raises(NoModel, match="no trained model yet"):
        learner.score(tiny_study, strategy="typiclust", k=3)  # the model's embedding needs one


def test_train_without_labels_is_an_error(seg_study, seg_folder):
    ingest(seg_study, seg_folder / "images", masks=seg_folder / "masks")
    with pytest.raises(ModelError, match="no labeled images to train on"):
        learner.train(seg_study)


def test_predict_reports_unreadable_files(tiny_study, tmp_path, passes):
    """...also when the images share forward passes (``model.images_per_pass``, a GPU's
    way), which predicts the same objects."""
    from dataclasses import replace

    learner.train(tiny_study)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    for i in range(2):
        image, _ = synthetic_nuclei((40, 40), 3, rng=i)
        tifffile.imwrite(folder / f"ok{i}.tif", image)
    rows = learner.predict_folder(tiny_study, folder, tmp_path / "o")
    assert [bool(r.get("error")) for r in rows] == [True, False, False]
    model = replace(tiny_study.config.model, images_per_pass=2)
    tiny_study.config = replace(tiny_study.config, model=model)
    passes.clear()
    assert learner.predict_folder(tiny_study, folder, tmp_path / "shared") == rows
    assert passes == [(2, 40, 40)]  # the two readable images in one pass
    with pytest.raises(ModelError, match="is not a folder of images"):
        learner.predict_folder(tiny_study, tmp_path / "nothing", tmp_path / "o")


def test_missing_or_changed_model_file(tiny_study):
    learner.train(tiny_study)
    row = learner.model_row(tiny_study)
    tiny_study.resolve(row["path"]).unlink()
    with pytest.raises(ModelError, match="run `loop train` again"):
        learner.load_model(tiny_study, row)
    with pytest.raises(NoModel, match="no model with id 99"):
        learner.model_row(tiny_study, 99)


def test_fine_tunes_a_stock_width_checkpoint(tiny_study, tmp_path):
    """The pretrained path, offline: a stock-width Cellpose checkpoint made here (as a user's
    cyto3 would be), saved the way Cellpose saves it (a bare state_dict, no JSON)."""
    import torch

    from loop.models import cellpose_seg as cs

    stock = cs.build_net(cs.STOCK_NBASE, torch.device("cpu"), seed=1)
    stock.save_model(str(tmp_path / "my_cyto"))  # CPnet.save_model: what Cellpose writes
    toml = TINY_TOML.replace("[model]\n", f'[model]\npretrained = "{tmp_path / "my_cyto"}"\n')
    toml = toml.replace("nbase = [2, 8, 16, 32]\n", "").replace(
        "max_steps = 12", "max_steps = 12\nval_fraction = 0.0"
    )
    (tiny_study.path / "loop.toml").write_text(toml.replace("val_fraction = 0.2\n", ""))
    study = open_study(tiny_study.path)
    report = learner.train(study)
    row = learner.model_row(study, report.model_id)
    assert json.loads(row["params"])["config"]["pretrained"].endswith("my_cyto")
    tuned = learner.load_model(study, row)
    assert tuned.nbase == list(cs.STOCK_NBASE)
    assert not torch.equal(
        tuned.state_dict()["output.2.weight"], stock.state_dict()["output.2.weight"]
    )
    study.close()


def test_evaluate_needs_test_images_with_truth(tiny_study):
    learner.train(tiny_study)
    with pytest.raises(ModelError, match="no pool images with ground truth to evaluate on"):
        tiny_study.store.db.execute(
            "DELETE FROM labels WHERE source = 'truth' AND image_id IN "
            "(SELECT id FROM images WHERE split = 'pool')"
        )
        learner.evaluate(tiny_study, split="pool")


def test_the_gate_rejects_only_a_loss_beyond_noise():
    from loop.learn.train import _decide

    # the demo's case: 0.741 against 0.768 on 4 images, one image worse: noise, kept
    noisy = [-0.2, 0.05, 0.02, 0.02]
    status, decision = _decide(0.741, 0.768, 0.02, noisy)
    assert status == "accepted" and "95% bound" in decision
    # every image worse by 0.1: rejected, and the decision says by how much at least
    status, decision = _decide(0.6, 0.7, 0.02, [-0.1, -0.11, -0.09, -0.1])
    assert status == "rejected" and "worse by at least 0.0" in decision
    assert _decide(0.5, None, 0.02)[0] == "accepted"


def test_random_within_groups_follows_the_metadata(tiny_study):
    with pytest.raises(UnknownStrategy, match="needs metadata groups"):
        learner.score(tiny_study, strategy="random+groups", k=2)
    db = tiny_study.store.db
    pool = tiny_study.store.images("split = 'pool'")
    db["images"].add_column("meta_modality", str)
    for i, image in enumerate(pool):  # one rare image among the pool
        db["images"].update(image["id"], {"meta_modality": "tissue" if i == 0 else "fluo"})
    (tiny_study.path / "loop.toml").write_text('groups = ["modality"]\n' + TINY_TOML)
    with open_study(tiny_study.path) as study:
        for image in study.store.images("split = 'labeled'"):
            study.store.db["images"].update(image["id"], {"meta_modality": "fluo"})
        report = learner.score(study, strategy="random+groups", k=2, seed=0)
        # 12 labeled fluorescence images: the tissue image catches up with its share
        assert pool[0]["id"] in [c["image_id"] for c in report.chosen]


@pytest.mark.slow
def test_a_blind_first_fit_is_trained_again_from_scratch(tiny_study):
    """12 steps of a tiny network find no nucleus on its own training images: with
    ``model.retry_blind`` the fit is repeated from scratch with the next seed and twice the
    steps, and the record says so; 150 steps find them, and nothing is repeated."""
    toml = TINY_TOML.replace("retry_blind = false", "retry_blind = true")
    (tiny_study.path / "loop.toml").write_text(toml)
    with open_study(tiny_study.path) as study:
        blind = learner.train(study)
        params = json.loads(learner.model_row(study, blind.model_id)["params"])
        assert (blind.steps, params["steps"], params["seed"]) == (24, 24, 1)
        assert blind.decision.startswith("the first fit found nothing on its own training")
        assert "(seed 1, 24 steps)" in blind.decision
    (tiny_study.path / "loop.toml").write_text(toml.replace("= 12\n", "= 150\n"))
    with open_study(tiny_study.path) as study:
        seeing = learner.train(study, fresh=True)
        assert seeing.steps == 150 and "first fit" not in seeing.decision
        assert seeing.val["new"] > 0


@pytest.mark.slow
def test_predict_on_a_local_cluster_writes_what_one_process_writes(tiny_study, tmp_path):
    import filecmp

    from loop.learn.engine import Engine

    learner.train(tiny_study)
    images = tiny_study.path.parent / "nuclei" / "images"
    (images / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    one = learner.predict_folder(tiny_study, images, tmp_path / "one")
    two = learner.predict_folder(tiny_study, images, tmp_path / "two", engine=Engine(workers=2))
    assert one == two and len(one) == 21
    assert "error" in next(r for r in two if r["file"] == "broken.tif")
    for row in (r for r in one if "labels" in r):
        assert filecmp.cmp(tmp_path / "one" / row["labels"], tmp_path / "two" / row["labels"])


@pytest.mark.slow
def test_score_on_a_local_cluster_and_a_killed_score_resumed(tiny_study, tmp_path):
    """Scoring on two worker processes stores the measures one process stores (to float
    rounding: torch's threads differ) and picks the same batch, the costlier shortlist measure
    included; a score killed after its first chunk keeps that chunk, and the next call
    measures only the rest."""
    import shutil
    import subprocess
    import sys

    from loop.faults import CRASH_EXIT_CODE
    from loop.learn.engine import Engine

    learner.train(tiny_study)
    for name in ("two", "killed"):
        shutil.copytree(tiny_study.path, tmp_path / name, ignore=shutil.ignore_patterns("*.lock"))
    one = learner.score(tiny_study, strategy="flow-error", k=3)
    with open_study(tmp_path / "two") as study:
        two = learner.score(study, strategy="flow-error", k=3, engine=Engine(workers=2))
        assert [c["image_id"] for c in two.chosen] == [c["image_id"] for c in one.chosen]
        # where the time went: the workers' stages came back with their chunks
        assert two.profile["images"] == two.scored > 0
        assert {"read", "normalise", "network", "dynamics"} <= set(two.profile["workers"])
        assert set(two.profile["driver"]) == {"start", "wait", "save"}
        got = {r["image_id"]: json.loads(r["measures"]) for r in study.store.db["scores"].rows}
    want = {r["image_id"]: json.loads(r["measures"]) for r in tiny_study.store.db["scores"].rows}
    assert got.keys() == want.keys()
    with open_study(tmp_path / "two") as study:  # the device that measured each row
        assert {r["device"] for r in study.store.db["scores"].rows} == {"cpu"}
    for image_id, measures in want.items():
        assert measures.keys() == got[image_id].keys()
        assert np.allclose(list(measures.values()), list(got[image_id].values()), rtol=1e-4)
    # killed after the first chunk of 4 images (score.chunk = 4 in TINY_TOML)
    killed = subprocess.run(
        [sys.executable, "-m", "loop.cli", "score", str(tmp_path / "killed"), "--workers", "2"],
        env={**os.environ, "LOOP_CRASH_AT": "score.chunk"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    with open_study(tmp_path / "killed") as study:
        assert study.store.db["scores"].count == 4
        again = learner.score(study, engine=Engine(workers=2))
        assert again.scored == len(want) - 4 and again.reused == 4
        assert study.store.db["scores"].count == len(want)


@pytest.mark.slow
def test_a_chunk_that_fails_twice_on_the_cluster_stops_the_score(tmp_path):
    from loop.config import ModelConfig
    from loop.errors import ModelError
    from loop.learn.engine import Engine, ModelRef
    from loop.learn.score_jobs import Measuring, ScoreJob

    model = ModelRef("cellpose", str(tmp_path / "gone.pt"), "0" * 64, False)
    gone = ScoreJob(("a.tif", "b.tif"), model, ModelConfig())
    with pytest.raises(
        ModelError, match=r"scoring 2 image\(s\) from a.tif failed twice on the cluster"
    ):
        with Measuring(Engine(workers=2)) as measuring:
            list(measuring.run([gone]))


def test_a_partial_label_trains_on_its_known_pixels_and_never_validates(tiny_study, monkeypatch):
    """A label known in part (``labels.known_path``, as regions will make) reaches the
    training loop as a known mask, counts by its known share in the step budget, is never a
    validation image, and a changed known area is another training set."""
    import numpy as np
    import tifffile

    from loop.learn.labels import training_area, training_labels, validation_split
    from loop.models import cellpose_train as ct

    store = tiny_study.store
    image = store.images("split = 'labeled'")[0]
    truth = store.truth(image["id"])
    known = np.zeros((image["height"], image["width"]), np.uint8)
    known[:, : image["width"] // 2] = 1
    tifffile.imwrite(tiny_study.path / "known.tif", known)
    store.db["labels"].insert(
        {
            **{k: v for k, v in truth.items() if k != "id"},
            "source": "consensus",
            "known_path": "known.tif",
            "known_fraction": 0.5,
        }
    )
    items = training_labels(tiny_study)
    assert training_area(items) == len(items) - 0.5
    _, val = validation_split(items, 0.9)  # nearly every whole label validates
    assert len(val) >= 2 and image["id"] not in {im["id"] for im, _ in val}
    seen = []
    prepare = ct.prepare

    def observed(*args, known=None, **kwargs):
        seen.append(known)
        return prepare(*args, known=known, **kwargs)

    monkeypatch.setattr(ct, "prepare", observed)
    first = learner.train(tiny_study)
    partial = [k for k in seen[0] if k is not None]
    assert len(partial) == 1 and partial[0].sum() == known.sum()
    # the same labels with another known area train again
    known[:, :] = 1
    known[0, 0] = 0
    tifffile.imwrite(tiny_study.path / "known2.tif", known)
    store.db["labels"].update(
        next(store.db["labels"].rows_where("known_path = 'known.tif'"))["id"],
        {"known_path": "known2.tif"},
    )
    again = learner.train(tiny_study)
    assert not again.reused and again.model_id != first.model_id


def test_an_arm_trains_only_on_the_regions_it_chose(tiny_study):
    """Two arms that annotated different regions of one image share its merged partial
    label; each trains on its own regions (and the objects touching them), never the other's."""
    import numpy as np
    import tifffile

    from loop.learn.labels import _label_digest, target_of, training_labels
    from loop.types import PartialMask

    store = tiny_study.store
    image = store.images("split = 'labeled'")[0]
    truth = store.truth(image["id"])
    h, w = image["height"], image["width"]
    left, right = [0, 0, h, w // 2], [0, w // 2, h, w - w // 2]
    ids = [
        store.db["tasks"]
        .insert({"image_id": image["id"], "purpose": "region", "region": json.dumps(box)})
        .last_pk
        for box in (left, right)
    ]
    tifffile.imwrite(tiny_study.path / "known.tif", np.ones((h, w), np.uint8))
    store.db["labels"].insert(
        {
            **{k: v for k, v in truth.items() if k != "id"},
            "source": "consensus",
            "known_path": "known.tif",
            "known_fraction": 1.0,
            "provenance": json.dumps({"regions": ids}),
        }
    )
    mine = {image["id"]: [left]}
    (_, both), = [it for it in training_labels(tiny_study, regions={image["id"]: [left, right]})
                  if it[0]["id"] == image["id"]]  # fmt: skip
    (_, half), = [it for it in training_labels(tiny_study, regions=mine)
                  if it[0]["id"] == image["id"]]  # fmt: skip
    assert "known_regions" not in both and both["known_fraction"] == 1.0
    assert half["known_regions"] == [left] and 0.4 < half["known_fraction"] < 1.0
    full, cut = target_of(tiny_study, image, both), target_of(tiny_study, image, half)
    assert cut.known.sum() < full.known.sum() and cut.known[:, : w // 2].all()
    objects = set(np.unique(cut.mask[cut.mask > 0]))
    assert objects == set(np.unique(full.mask[:, : w // 2])) - {0}
    assert half["n_objects"] == len(objects)
    # the pixels right of every kept object are unknown, never background
    outside = np.ones((h, w), bool)
    outside[:, : w // 2] = False
    assert not (cut.known & outside & (cut.mask == 0)).any()
    assert _label_digest([(image, half)], {}) != _label_digest([(image, both)], {})
    # a whole consensus another arm paid for replaces the partial one: the region arm still
    # sees only its own region of it
    from loop.store.labels import label_of, save_label

    consensus = label_of(store, image["id"], "consensus")
    save_label(store, image["id"], source="consensus",
               label={"kind": "mask", "mask_path": consensus["mask_path"],
                      "provenance": json.dumps({"agreement": 0.9})})  # fmt: skip
    whole = label_of(store, image["id"], "consensus")
    assert whole["known_path"] is None and whole["known_fraction"] is None
    (_, view), = [it for it in training_labels(tiny_study, regions=mine)
                  if it[0]["id"] == image["id"]]  # fmt: skip
    assert view["known_regions"] == [left] and 0.4 < view["known_fraction"] < 1.0
    seen = target_of(tiny_study, image, view)
    assert np.array_equal(seen.known, cut.known) and np.array_equal(seen.mask, cut.mask)
    (_, mine_whole), = [it for it in training_labels(tiny_study)
                        if it[0]["id"] == image["id"]]  # fmt: skip
    assert not isinstance(target_of(tiny_study, image, mine_whole), PartialMask)
