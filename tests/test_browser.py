"""What an annotator sees and does in Label Studio, in a real browser (headless Chromium)
against the session's real server: log in through the form, the label stream with the
model's pre-annotation (one region per object, named from ``[labels]``, doubtful ones apart),
a correction submitted and pulled exactly, a second annotator who does not see the first
one's work, and an edit of someone else's annotation in the Data Manager flagged by pull."""

from __future__ import annotations

import numpy as np
import pytest
from browser import delete_region, log_in, on_screen, press, screenshot, wait_for
from conftest import one_dsb_study, remote_env
from scipy import ndimage as ndi

from loop.annotate.pull import pull
from loop.annotate.push import push
from loop.cli.wiring import add_annotators, connect, server_of
from loop.core.images import read_mask
from loop.study import open_study
from loop.types import Prediction

pytestmark = pytest.mark.slow


def test_an_annotator_corrects_the_pre_annotation_and_pull_keeps_exactly_that(
    ls_study, browser, tmp_path, monkeypatch
):
    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    toml = 'task = "segmentation"\n[labels]\nobject = "cell"\n'
    with open_study(one_dsb_study(tmp_path / "browse", toml, tmp_path / "data")) as study:
        (image,) = study.store.images()
        truth = read_mask(
            study.store.truth(image["id"])["mask_path"], (image["height"], image["width"])
        )
        model = np.where(ndi.binary_erosion(truth > 0), truth, 0)  # a model a bit too tight
        objects = sorted(set(np.unique(model).tolist()) - {0})
        doubtful = tuple(objects[:2])

        def predict(_image):
            return Prediction(mask=model, score=0.5, model_version="tight", unsure=doubtful)

        tool = connect(study)
        add_annotators(study, tool, ["wen", "xiu"])
        push(study, tool, [image], overlap=2, predictions=predict)
        task = next(study.store.db["tasks"].rows)
        project = task["project"]
        creds = server_of(study).credentials()["annotators"]

        # wen: the label stream shows the pre-annotation, one region per object, named and
        # split as configured; wen deletes one region and submits
        log_in(browser, tool.url, creds["wen"]["email"], creds["wen"]["password"])
        browser.get(f"{tool.url}/projects/{project}/data?labeling=1")
        shown = on_screen(browser)
        assert shown["pk"] is None and shown["author"] == creds["wen"]["email"]
        names = [r["labels"] for r in shown["regions"]]
        assert len(names) == len(objects) and {r["type"] for r in shown["regions"]} == {
            "brushregion"
        }
        assert names.count(["cell?"]) == len(doubtful)
        assert names.count(["cell"]) == len(objects) - len(doubtful)
        screenshot(browser, tmp_path / "label-stream.png")
        gone = int(delete_region(browser, 2).split("#")[0].rsplit("-", 1)[1])
        press(browser, "bottombar-submit-button")
        wait_for("wen's annotation in Label Studio", lambda: pull(study, tool).new == 1)
        wens = next(study.store.db["annotations"].rows_where("annotator = 'wen'"))
        pulled = read_mask(study.path / wens["mask_path"], truth.shape)
        expected = np.where(model == gone, 0, model)
        assert np.array_equal(pulled > 0, expected > 0)  # exactly what wen submitted
        assert len(np.unique(pulled)) - 1 == len(objects) - 1

        # xiu: the stream gives the same task, with the model's regions, not wen's work
        log_in(browser, tool.url, creds["xiu"]["email"], creds["xiu"]["password"])
        browser.get(f"{tool.url}/projects/{project}/data?labeling=1")
        shown = on_screen(browser)
        assert shown["pk"] is None and shown["shown"] == [None]
        assert len(shown["regions"]) == len(objects)

        # xiu opens wen's annotation in the Data Manager and tries to update it: the study's
        # server refuses (an annotator changes only their own work), and wen's stays as it was
        browser.get(
            f"{tool.url}/projects/{project}/data?task={task['external_id']}"
            f"&annotation={wens['external_id']}"
        )
        shown = wait_for(
            "wen's annotation in the Data Manager",
            lambda: (s := on_screen(browser)) and s["pk"] == str(wens["external_id"]) and s,
        )
        assert len(shown["regions"]) == len(objects) - 1
        delete_region(browser, 0)
        press(browser, "bottombar-update-button")
        log = ls_study / "labelstudio" / "server.log"  # the server of the session
        refused = f'"PATCH /api/annotations/{wens["external_id"]}?'
        wait_for(
            "the server's refusal of xiu's edit",
            lambda: any(
                refused in line and '" 403 ' in line for line in log.read_text().splitlines()
            ),
        )
        report = pull(study, tool)
        assert report.edited == [] and report.updated == 0
        kept = study.store.db["annotations"].get(wens["id"])
        assert (kept["status"], kept["result"]) == ("current", wens["result"])
        tool.close()


def test_an_annotator_sees_one_region_per_class_and_pull_keeps_the_correction(
    ls_study, browser, tmp_path, monkeypatch
):
    """Semantic segmentation in the labeling view: the model's class map pre-painted as one
    region per class, named by ``[labels] classes``; deleting the boundary region and
    submitting gives back the class map without it, to the pixel."""
    from loop.learn.labels import classmap_of

    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    toml = (
        'task = "semantic"\n[labels]\nclasses = ["background", "nucleus", "boundary"]\n'
        'masks = "instances"\n'
    )
    with open_study(one_dsb_study(tmp_path / "paint", toml, tmp_path / "data")) as study:
        (image,) = study.store.images()
        model = classmap_of(study, image, study.store.truth(image["id"]))
        classes = study.config.labels.classes

        def predict(_image):
            return Prediction(mask=model, labels=classes, model_version="truth")

        tool = connect(study)
        add_annotators(study, tool, ["yan"])
        push(study, tool, [image], overlap=1, predictions=predict)
        project = next(study.store.db["tasks"].rows)["project"]
        creds = server_of(study).credentials()["annotators"]
        log_in(browser, tool.url, creds["yan"]["email"], creds["yan"]["password"])
        browser.get(f"{tool.url}/projects/{project}/data?labeling=1")
        shown = on_screen(browser)
        assert sorted(r["labels"][0] for r in shown["regions"]) == ["boundary", "nucleus"]
        screenshot(browser, tmp_path / "classes.png")
        at = [r["labels"][0] for r in shown["regions"]].index("boundary")
        delete_region(browser, at)
        press(browser, "bottombar-submit-button")
        wait_for("yan's annotation in Label Studio", lambda: pull(study, tool).new == 1)
        row = next(study.store.db["annotations"].rows)
        pulled = read_mask(study.path / row["mask_path"], model.shape)
        assert np.array_equal(pulled, np.where(model == 2, 0, model))
        tool.close()


def test_an_annotator_sees_the_models_boxes_and_pull_keeps_the_correction(
    ls_study, browser, tmp_path, monkeypatch
):
    """Detection in the labeling view: the model's boxes pre-drawn as rectangles named by
    class (doubtful ones as ``<class>?``); deleting one and submitting gives back the other
    boxes, exact to the pixel."""
    from loop.learn.labels import boxes_of
    from loop.store.boxes import read_boxes_file
    from loop.types import Boxes

    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    toml = 'task = "detection"\n[labels]\nobject = "nucleus"\nunsure_probability = 0.5\n'
    with open_study(one_dsb_study(tmp_path / "boxes", toml, tmp_path / "data")) as study:
        (image,) = study.store.images()
        boxes, _ = boxes_of(study, image, study.store.truth(image["id"]))
        scores = np.linspace(0.3, 0.9, len(boxes))
        names = tuple("nucleus?" if s < 0.5 else "nucleus" for s in scores)
        shape = (image["height"], image["width"])

        def predict(_image):
            return Prediction(boxes=Boxes(boxes, names, shape, scores), model_version="truth")

        tool = connect(study)
        add_annotators(study, tool, ["zoe"])
        push(study, tool, [image], overlap=1, predictions=predict)
        project = next(study.store.db["tasks"].rows)["project"]
        creds = server_of(study).credentials()["annotators"]
        log_in(browser, tool.url, creds["zoe"]["email"], creds["zoe"]["password"])
        browser.get(f"{tool.url}/projects/{project}/data?labeling=1")
        shown = on_screen(browser)
        assert {r["type"] for r in shown["regions"]} == {"rectangleregion"}
        labels = [r["labels"][0] for r in shown["regions"]]
        assert sorted(labels) == sorted(names)
        screenshot(browser, tmp_path / "boxes.png")
        gone = delete_region(browser, 0).split("#")[0]
        press(browser, "bottombar-submit-button")
        wait_for("zoe's annotation in Label Studio", lambda: pull(study, tool).new == 1)
        row = next(study.store.db["annotations"].rows)
        pulled, _ = read_boxes_file(study.path / row["mask_path"], ("nucleus",))
        assert len(pulled) == len(boxes) - 1 and row["status"] == "current"
        kept = [b for b in boxes.tolist() if np.isclose(pulled, b, atol=0.01).all(1).any()]
        assert len(kept) == len(boxes) - 1, gone  # every other box exact to 1/100 pixel
        assert row["effort"] is not None
        tool.close()
