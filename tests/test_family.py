"""The model-family seam: every family turns images into Outputs the same way."""

import numpy as np
import pytest
import torch

from loop.config import ClassifierConfig, ModelConfig
from loop.data.synthetic import synthetic_nuclei
from loop.errors import ModelError
from loop.models import cellpose_seg as cs
from loop.models import classifier as cl
from loop.models.family import FAMILIES, CellposeFamily, ClassifierFamily, family

TINY = ModelConfig(nbase=(2, 8, 16, 32), crop=32, batch_size=4, min_steps=1, max_steps=4)


def test_every_models_kind_has_a_family():
    assert set(FAMILIES) == {"cellpose", "classifier", "unet", "centernet"}
    assert isinstance(family("cellpose"), CellposeFamily)
    assert isinstance(family("classifier"), ClassifierFamily)


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ModelError, match="no model family 'yolo'.*known: cellpose, classifier"):
        family("yolo")


def test_cellpose_outputs_are_the_segmentation_of_each_image(tmp_path):
    net = cs.build_net(TINY.nbase, torch.device("cpu"), seed=0)
    images = [synthetic_nuclei((48, 64), 4, rng=i)[0] for i in range(2)]
    outputs = family("cellpose").predict(net, images, config=TINY)
    assert len(outputs) == 2
    for image, output in zip(images, outputs):
        direct = cs.segment(net, image, config=TINY)
        assert output.masks.shape == image.shape and np.array_equal(output.masks, direct.masks)
        assert output.measures == direct.measures
        assert np.array_equal(output.embedding, direct.style)
        assert output.cellprob.shape == image.shape and output.klass is None
    path = cs.save(net, tmp_path / "net.pt", nbase=TINY.nbase)
    loaded = family("cellpose").load(path, sha256="", gpu=False)
    again = family("cellpose").predict(loaded, images[:1], config=TINY)[0]
    assert np.array_equal(again.masks, outputs[0].masks)


def test_a_missing_cellpose_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file .*gone.pt is missing"):
        family("cellpose").load(tmp_path / "gone.pt", sha256="", gpu=False)


def test_classifier_outputs_carry_class_confidence_and_measures(tmp_path):
    rng = np.random.default_rng(0)
    images = [
        (rng.normal(level, 0.05, (20, 20, 3)).clip(0, 1) * 255).astype(np.uint8)
        for level in [0.2] * 6 + [0.8] * 6
    ]
    y = ["dark"] * 6 + ["bright"] * 6
    adapter = family("classifier")
    config = ClassifierConfig(image_size=16)
    x = np.stack([cl.features(im, size=16) for im in images])
    model = cl.train(x, y, config=config, rng=np.random.default_rng(0))
    outputs = adapter.predict(model, images)
    assert [o.klass for o in outputs] == model.predict(x)
    proba = model.proba(x)
    assert np.allclose([o.confidence for o in outputs], proba.max(axis=1))
    assert set(outputs[0].measures) >= {"entropy", "committee"}
    assert outputs[0].embedding.shape == (x.shape[1],)
    assert adapter.predict(model, []) == []
    from loop.core.images import file_sha256

    path = cl.save(model, tmp_path / "m.pkl")
    loaded = adapter.load(path, sha256=file_sha256(path), gpu=None)
    assert [o.klass for o in adapter.predict(loaded, images)] == model.predict(x)
    with pytest.raises(ModelError, match="has changed since it was trained"):
        adapter.load(path, sha256="0" * 64, gpu=None)


def test_each_family_reads_its_own_section_of_the_config():
    from loop.config import StudyConfig

    config = StudyConfig()
    assert family("cellpose").settings(config) is config.model
    assert family("classifier").settings(config) is config.classifier


def test_the_task_names_the_family_that_trains():
    from loop.models.family import family_for_task

    assert family_for_task("segmentation").label_kind == "mask"
    assert family_for_task("classification").suffix == ".pkl"
    with pytest.raises(ModelError, match="no model family trains 'tracking'"):
        family_for_task("tracking")
