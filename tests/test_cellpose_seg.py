"""The Cellpose model family on tiny synthetic images (seconds, not minutes)."""

import logging
import warnings

import numpy as np
import pytest
import torch
from conftest import CPU, TINY

from loop.config import AugmentConfig, ModelConfig
from loop.data.synthetic import synthetic_nuclei
from loop.errors import ModelError
from loop.models import cellpose_seg as cs
from loop.models import cellpose_train as ct


def test_net_pads_style_for_run_net():
    net = cs.build_net((2, 8, 16, 32), CPU)
    y, style, _ = net(torch.zeros(1, 2, 32, 32))
    assert y.shape == (1, 3, 32, 32) and style.shape == (1, 256)


def test_segment_measures_and_tta(tiny_data):
    pairs, data = tiny_data
    net = cs.build_net(TINY.nbase, CPU)
    ct.train(
        net, data, config=TINY, augment=AugmentConfig(), steps=40, rng=np.random.default_rng(0)
    )
    seg = cs.segment(net, pairs[0][0], config=TINY, tta=True)
    assert seg.masks.shape == pairs[0][0].shape
    assert set(seg.measures) == {"flow_error", "entropy", "n_objects", "tta", "count"}
    assert seg.style.shape == (32,) and np.isclose(np.linalg.norm(seg.style), 1, atol=1e-5)
    assert 0 <= seg.measures["tta"] <= 1


def test_the_mask_step_warns_nobody():
    """Cellpose's mask step builds sparse tensors: with the family imported, torch's "sparse
    invariant checks are implicitly disabled" warning never reaches a user."""
    points = torch.zeros((2, 3), dtype=torch.long)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.sparse_coo_tensor(points, torch.ones(3, dtype=torch.int), (4, 4))
    assert cs.STYLE_WIDTH and not [w for w in caught if issubclass(w.category, UserWarning)]


def test_an_image_without_objects_prints_nothing(caplog):
    """An image without objects is a result (0 objects), not Cellpose's "no seeds found"
    warning, which Python would print on stderr for every such image."""
    from cellpose import dynamics

    net = cs.build_net((2, 8, 16, 32), CPU)
    with caplog.at_level(logging.WARNING):
        seg = cs.segment(net, np.zeros((64, 64), np.float32), config=TINY)
        dynamics.dynamics_logger.warning("no seeds found in get_masks_torch - no masks found.")
    assert seg.masks.max() == 0
    assert not [r for r in caplog.records if "no seeds" in r.getMessage()]


def test_save_load_round_trip(tmp_path):
    net = cs.build_net(TINY.nbase, CPU)
    path = cs.save(net, tmp_path / "m.pt", nbase=TINY.nbase)
    back = cs.load(path, CPU)
    assert all(
        torch.equal(x, y) for x, y in zip(net.state_dict().values(), back.state_dict().values())
    )


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="no model weights at"):
        cs.load_weights(tmp_path / "missing.pt", TINY.nbase, CPU)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="is not a PyTorch weights file"):
        cs.load_weights(junk, TINY.nbase, CPU)
    sam = tmp_path / "sam.pt"
    torch.save({"W2": torch.zeros(1)}, sam)
    with pytest.raises(ModelError, match="Cellpose 4"):
        cs.load_weights(sam, TINY.nbase, CPU)
    narrow = cs.save(cs.build_net(TINY.nbase, CPU), tmp_path / "narrow.pt", nbase=TINY.nbase)
    with pytest.raises(ModelError, match="does not fit a network of widths"):
        cs.load_weights(narrow, (2, 16, 32, 64), CPU)
    listing = tmp_path / "list.pt"
    torch.save([1, 2], listing)
    with pytest.raises(ModelError, match="does not hold a state_dict"):
        cs.load_weights(listing, TINY.nbase, CPU)


def test_pretrained_names_and_paths(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="neither a Cellpose model name"):
        cs.pretrained_path(str(tmp_path / "nope.pt"))
    # offline, a named model cannot be downloaded: a clear error, not a hang or a traceback
    from cellpose import models as cp_models

    def offline(name):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(cp_models, "model_path", offline)
    with pytest.raises(ModelError, match="run once on a connected machine"):
        cs.pretrained_path("cyto3")


def test_stock_width_export_loads_in_stock_cellpose(tmp_path):
    from cellpose.models import CellposeModel

    net = cs.build_net(cs.STOCK_NBASE, CPU)
    path = cs.save(net, tmp_path / "stock.pt", nbase=cs.STOCK_NBASE)
    model = CellposeModel(gpu=False, pretrained_model=str(path))
    image, _ = synthetic_nuclei((64, 64), 3, rng=0)
    masks, flows, _ = model.eval(image, channels=[0, 0], diameter=30)
    assert masks.shape == image.shape


def test_auto_polarity_makes_dark_objects_on_bright_look_like_fluorescence():
    image, mask = synthetic_nuclei((64, 64), 5, radius=(4, 7), rng=3)  # bright on dark
    stained = image.max() - image  # the same nuclei, dark on a bright background
    fluo = cs.to_input(image, invert="auto")[0]
    tissue = cs.to_input(stained, invert="auto")[0]
    assert fluo[mask > 0].mean() > fluo[mask == 0].mean()
    assert tissue[mask > 0].mean() > tissue[mask == 0].mean()  # inverted: bright nuclei
    assert np.allclose(fluo, tissue, atol=0.05)
    # never: the stained image keeps its dark nuclei; always: even fluorescence is inverted
    assert cs.to_input(stained, invert="never")[0][mask > 0].mean() < 0.5
    assert cs.to_input(image, invert="always")[0][mask > 0].mean() < 0.5


def test_a_sparse_image_keeps_its_objects_on_the_scale_of_a_dense_one():
    """Two small nuclei on a dark noisy field (under 1% of the pixels): the 99th percentile
    is background, so 1-99 alone stretched the noise to [0, 1] and the nuclei to about 60
    (one such image in a demo round made every later model predict nothing)."""
    rng = np.random.default_rng(0)
    dense, dense_mask = synthetic_nuclei((128, 128), 12, radius=(6, 9), rng=1)
    sparse = rng.integers(10, 15, (256, 256)).astype(np.uint8)
    sparse[40:48, 40:50] = sparse[200:207, 100:110] = 250
    x = cs.to_input(sparse)[0]
    assert x.max() <= 1.2 * cs.BRIGHTEST
    assert np.percentile(x, 99) < 0.1  # background near 0, not stretched to 1
    plain = cs.normalize_percentile(dense.astype(np.float32), 1, 99)
    assert np.array_equal(cs.to_input(dense)[0], plain)  # a dense image: as before
    assert cs.to_input(dense)[0][dense_mask > 0].mean() > 0.5


def test_a_model_keeps_the_polarity_it_was_trained_with(tmp_path):
    net = cs.build_net(TINY.nbase, CPU, invert="auto")
    path = cs.save(net, tmp_path / "m.pt", nbase=TINY.nbase)
    assert cs.polarity(cs.load(path, CPU)) == "auto"
    # a model saved before the polarity was recorded (no "invert" in its JSON): never
    meta = path.with_suffix(".json")
    meta.write_text(meta.read_text().replace('"invert": "auto"', '"old": 1'))
    assert cs.polarity(cs.load(path, CPU)) == "never"


def test_invert_mode_is_checked():
    from loop.errors import ConfigError

    with pytest.raises(ConfigError, match="model.invert = 'sometimes': give one of auto"):
        ModelConfig(invert="sometimes")


def test_an_image_up_to_whole_up_to_is_segmented_in_one_pass(tiny_data, monkeypatch):
    """A 320 px image (336 padded) goes through the network in one tile of 336 by default,
    in Cellpose's tiles of 224 with ``whole_up_to = 0``; the two find the same objects."""
    from dataclasses import replace

    from loop.core.metrics import segmentation_scores

    pairs, data = tiny_data
    net = cs.build_net(TINY.nbase, CPU)
    ct.train(
        net, data, config=TINY, augment=AugmentConfig(), steps=100, rng=np.random.default_rng(0)
    )
    image, truth = synthetic_nuclei((320, 320), 40, radius=(4, 7), rng=7)
    sides = []
    real = cs.core.run_net

    def spy(*args, bsize, **kwargs):
        sides.append(bsize)
        return real(*args, bsize=bsize, **kwargs)

    monkeypatch.setattr(cs.core, "run_net", spy)
    whole = cs.segment(net, image, config=TINY)
    tiled = cs.segment(net, image, config=replace(TINY, whole_up_to=0))
    assert sides == [336, 224] and whole.masks.max() >= 20  # most of the 40 nuclei
    assert segmentation_scores(tiled.masks, whole.masks)["ap50"] > 0.9


def test_images_of_one_size_share_passes_and_keep_their_masks(tiny_data, passes):
    """``images_per_pass = 3``: four 64 px images and one of 48 x 80 (the third) go through
    ``core.run_net`` as 3 + 1 + 1, in the images' order, and each keeps the masks it has
    alone; the CPU's default is one image a pass."""
    from dataclasses import replace

    from loop.core.metrics import segmentation_scores

    pairs, data = tiny_data
    net = cs.build_net(TINY.nbase, CPU)
    ct.train(
        net, data, config=TINY, augment=AugmentConfig(), steps=100, rng=np.random.default_rng(0)
    )
    other, _ = synthetic_nuclei((48, 80), 6, radius=(4, 7), rng=9)
    images = [pairs[0][0], pairs[1][0], other, pairs[2][0], pairs[3][0]]
    alone = cs.segment_many(net, images, config=TINY)
    assert passes == [(1, 64, 64)] * 2 + [(1, 48, 80)] + [(1, 64, 64)] * 2
    passes.clear()
    shared = cs.segment_many(net, images, config=replace(TINY, images_per_pass=3))
    assert passes == [(3, 64, 64), (1, 48, 80), (1, 64, 64)]
    assert sum(seg.masks.max() for seg in alone) >= 15  # it finds nuclei: something to compare
    for a, b in zip(alone, shared):
        assert a.masks.shape == b.masks.shape
        assert segmentation_scores(a.masks, b.masks)["ap50"] == 1.0
        np.testing.assert_allclose(a.cellprob, b.cellprob, atol=1e-4)
        assert a.measures == pytest.approx(b.measures, abs=1e-4)
