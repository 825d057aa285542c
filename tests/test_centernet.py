"""The centre-heatmap detector: targets by hand, crops and their symmetries, the loss on
known pixels only, seeded training that learns, files written and read back."""

import numpy as np
import pytest
import torch

from loop.config import AugmentConfig
from loop.config_detection import DetectionConfig
from loop.core.boxes import detection_counts, summarize_detection
from loop.errors import ConfigError, ModelError
from loop.models import centernet, centernet_train, unet

SMALL = DetectionConfig(
    features=(8, 8, 16, 16, 32, 8),
    crop=64,
    batch_size=4,
    tile=64,
    dropout=0.0,
    scale=1.0,
    channels=1,
    learning_rate=0.005,
)
NO_AUGMENT = AugmentConfig(flips=False, intensity=False, noise=False, blur=False, elastic=False)


def squares(seed: int, size: int = 64):
    """A dark image with bright squares of two sizes (class 0: 8 px, class 1: 14 px)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 6, (size, size))
    boxes, classes = [], []
    for k, side in ((0, 8), (1, 14), (0, 8)):
        for _ in range(50):
            y, x = (int(v) for v in rng.integers(2, size - side - 2, 2))
            box = [x, y, x + side, y + side]
            if all(
                box[2] + 2 <= b[0] or b[2] + 2 <= box[0] or box[3] + 2 <= b[1] or b[3] + 2 <= box[1]
                for b in boxes
            ):
                break
        image[y : y + side, x : x + side] = 200
        boxes.append(box)
        classes.append(k)
    return image.clip(0, 255).astype(np.uint8), np.array(boxes, float), np.array(classes)


def test_targets_by_hand():
    heat, size, sized = centernet_train.targets((20, 30), [[4, 2, 10, 12]], [1], 2)
    assert heat.shape == (2, 20, 30) and not heat[0].any()
    # the centre of x 4..10, y 2..12 is pixel (row 6.5 -> 6 or 7, col 6.5 -> 6 or 7): 1 there
    assert heat[1].max() == 1.0
    row, col = np.unravel_index(heat[1].argmax(), heat[1].shape)
    assert abs(row - 6.5) <= 0.5 and abs(col - 6.5) <= 0.5
    assert np.allclose(np.exp(size[:, row, col]), [10, 6])  # height, width
    assert sized[row, col] and sized.sum() < 30


def test_overlapping_boxes_keep_the_small_ones_sizes():
    _, size, _ = centernet_train.targets((40, 40), [[0, 0, 40, 40], [18, 18, 22, 22]], [0, 0], 1)
    assert np.allclose(np.exp(size[:, 20, 20]), [4, 4])


def test_a_transposed_crop_swaps_height_and_width():
    image = np.zeros((64, 64), np.uint8)
    example = centernet_train.prepare(
        [image], [([[10, 20, 40, 30]], [0])], config=SMALL, n_classes=1
    )[0]
    for seed in range(12):  # the 8 symmetries, transposing ones among them
        rng = np.random.default_rng(seed)
        x, heat, size, sized, known = centernet_train.sample(example, 64, rng, AugmentConfig())
        r, c = np.unravel_index(heat[0].argmax(), heat[0].shape)
        h, w = np.exp(size[:, r, c])
        rows, cols = np.nonzero(heat[0] > 0.1)
        assert {round(h), round(w)} == {10, 30}
        assert (h > w) == (np.ptp(rows) > np.ptp(cols))  # the size follows the pixels


def test_the_loss_ignores_unknown_pixels():
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 2, 2] = 1.0
    known = torch.zeros(1, 8, 8, dtype=torch.bool)
    known[0, :4, :4] = True
    logits = torch.full((1, 1, 8, 8), -4.0)
    base = centernet_train.focal_loss(logits, heat, known)
    changed = logits.clone()
    changed[0, 0, 6, 6] = 6.0  # a confident false peak where nothing is known
    assert torch.isclose(centernet_train.focal_loss(changed, heat, known), base)
    changed[0, 0, 1, 1] = 6.0  # the same where it is known costs
    assert centernet_train.focal_loss(changed, heat, known) > base + 1


def test_training_is_seeded_and_learns():
    data = [squares(s) for s in range(6)]
    labels = [(b, c) for _, b, c in data]
    examples = centernet_train.prepare([d[0] for d in data], labels, config=SMALL, n_classes=2)

    def fit(seed, steps):
        net = centernet.build(SMALL, 2, seed=seed)
        result = centernet_train.train(
            net,
            examples,
            config=SMALL,
            augment=NO_AUGMENT,
            steps=steps,
            rng=np.random.default_rng(seed),
            device="cpu",
        )
        return net, result

    a, ra = fit(0, 3)
    _, rb = fit(0, 3)
    assert ra.losses == rb.losses
    net, result = fit(0, 250)
    assert result.losses[-1] < result.losses[0] / 3
    rows = []
    for seed in (100, 101, 102):
        image, boxes, classes = squares(seed)
        found = centernet.detect(net, image, config=SMALL)
        keep = found.scores >= SMALL.threshold
        rows.append(
            detection_counts(
                boxes, classes, found.boxes[keep], found.classes[keep], found.scores[keep], 2
            )
        )
    assert summarize_detection(rows, ["small", "large"])["f1"] >= 0.8
    assert set(found.measures) == {"entropy", "flip", "ambiguous"}


def test_files_round_trip(tmp_path):
    net = centernet.build(SMALL, 3, seed=4)
    path = unet.save(net, tmp_path / "m.pt")
    back = centernet.load(path, "cpu")
    assert back.meta == net.meta
    image = squares(0)[0]
    a = centernet.maps(net, image, config=SMALL)[0]
    b = centernet.maps(back, image, config=SMALL)[0]
    assert np.allclose(a, b)
    with pytest.raises(ModelError, match="missing"):
        centernet.load(tmp_path / "none.pt", "cpu")
    unet.save(
        unet.build(unet.UNetConfig(features=(4, 4, 8, 8, 16, 4)), 2, seed=0), tmp_path / "u.pt"
    )
    with pytest.raises(ModelError, match="not a detector written by loop"):
        centernet.load(tmp_path / "u.pt", "cpu")


def test_the_threshold_is_chosen_by_f1_and_kept_with_the_model(tmp_path):
    def found(scores, boxes):
        n = len(scores)
        return centernet.Detected(
            np.asarray(boxes, float).reshape(-1, 4), np.zeros(n, int), np.asarray(scores),
            np.zeros(n), {}, np.zeros(1),
        )  # fmt: skip

    truth = [(np.array([[0, 0, 10, 10]] * 1, float), np.array([0]))] * 20
    # the true box scores 0.42, a false one 0.2: the F1-best threshold lies between
    dets = [found([0.42, 0.2], [[0, 0, 10, 10], [30, 30, 40, 40]])] * 20
    assert centernet.choose_threshold(dets, truth, 1) == 0.25
    assert centernet.choose_threshold(dets[:5], truth[:5], 1) is None  # too few boxes
    net = centernet.build(SMALL, 1, seed=0)
    net.meta["threshold"] = 0.25
    back = centernet.load(unet.save(net, tmp_path / "m.pt"), "cpu")
    assert back.meta["threshold"] == 0.25
    assert centernet.detect(back, squares(0)[0], config=SMALL).threshold == 0.25


def test_resizing_follows_the_scale():
    image = np.zeros((40, 60, 3), np.uint8)
    assert centernet.resized(image, 3, 0.5).shape == (3, 20, 30)
    assert centernet.resized(image, 1, 1.0).shape == (1, 40, 60)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("shape", "circle", 'choose "box" or "point"'),
        ("point_radius", 0.0, "detection.point_radius"),
        ("crop", 100, "multiple of 16"),
        ("channels", 2, "choose 3"),
        ("min_score", 0.5, "exceeds detection.threshold"),
        ("scale", 9.0, "detection.scale"),
        ("min_steps", 900, "exceeds detection.max_steps"),
        ("features", (1, 2), "six channel counts"),
    ],
)
def test_config_refuses_bad_values(key, value, match):
    values = {"min_steps": 10, "max_steps": 20} if key == "min_steps" else {}
    values[key] = value
    if key == "min_steps":
        values["max_steps"] = 20
    with pytest.raises(ConfigError, match=match):
        DetectionConfig(**values)
