import json

import numpy as np
import pytest
from conftest import remote_env
from scipy import ndimage as ndi

from connectors.simulated import lead_time, noisy_class, noisy_mask
from loop.data.synthetic import synthetic_nuclei
from loop.noise import PROFILES


def iou_matched(a, b):
    """Mean over objects of ``a`` of the best IoU with an object of ``b``."""
    scores = []
    for v in np.unique(a)[1:]:
        region = a == v
        best = 0.0
        for w in np.unique(b[region]):
            if w:
                other = b == w
                best = max(best, (region & other).sum() / (region | other).sum())
        scores.append(best)
    return float(np.mean(scores))


@pytest.fixture
def truth():
    return synthetic_nuclei((160, 160), 30, radius=(6, 11), rng=5)[1]


def test_perfect_annotator_is_exact(truth):
    out = noisy_mask(truth, PROFILES["perfect"], np.random.default_rng(0))
    assert iou_matched(truth, out) == 1.0 and out.max() == truth.max()


def test_noise_is_seeded(truth):
    a = noisy_mask(truth, PROFILES["sloppy"], np.random.default_rng(1))
    b = noisy_mask(truth, PROFILES["sloppy"], np.random.default_rng(1))
    assert np.array_equal(a, b)


def test_noisier_profiles_agree_less_with_truth(truth):
    scores = {
        name: np.mean(
            [
                iou_matched(truth, noisy_mask(truth, PROFILES[name], np.random.default_rng(s)))
                for s in range(4)
            ]
        )
        for name in ("careful", "average", "sloppy")
    }
    assert scores["careful"] > scores["average"] > scores["sloppy"]
    assert scores["careful"] > 0.85 and scores["sloppy"] < 0.8


def test_flip_rate():
    rng = np.random.default_rng(0)
    flips = sum(noisy_class("A", "ABCD", PROFILES["sloppy"], rng) != "A" for _ in range(2000))
    assert 0.2 < flips / 2000 < 0.3
    assert noisy_class("A", ["A"], PROFILES["sloppy"], rng) == "A"


def test_lead_time_grows_with_objects():
    rng = np.random.default_rng(0)
    few = np.median([lead_time(PROFILES["average"], 2, rng) for _ in range(200)])
    many = np.median([lead_time(PROFILES["average"], 40, rng) for _ in range(200)])
    assert many > 3 * few


def test_empty_truth():
    assert (
        noisy_mask(np.zeros((5, 5), int), PROFILES["sloppy"], np.random.default_rng(0)).max() == 0
    )


@pytest.mark.slow
def test_simulate_with_a_noise_profile_of_the_study_s_own(ls_study, tmp_path, nuclei_folder):
    """``[noise.blind]`` in loop.toml (misses every object) chosen with ``--profile``: the
    annotator's annotations are empty, the profile is stored with the account."""
    from typer.testing import CliRunner

    from loop.cli import app
    from loop.data.ingest import ingest
    from loop.study import init_study, open_study

    env = remote_env(ls_study)
    folder = tmp_path / "blind"
    with init_study(folder) as study:
        ingest(study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    with (folder / "loop.toml").open("a") as toml:
        toml.write("\n[noise.blind]\nmiss = 1.0\nmiss_small = 1.0\n")
    runner = CliRunner()
    pushed = runner.invoke(app, ["push", str(folder), "--limit", "2", "--overlap", "1"], env=env)
    assert pushed.exit_code == 0, pushed.output
    bad = runner.invoke(
        app, ["simulate", str(folder), "--annotators", "nora", "--profile", "nora=messy"], env=env
    )
    assert bad.exit_code == 1
    assert "unknown noise profile 'messy'" in bad.stderr and "[noise.messy]" in bad.stderr
    done = runner.invoke(
        app,
        ["simulate", str(folder), "--annotators", "nora", "--profile", "nora=blind", "--json"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["profiles"] == {"nora": "blind"} and shown["annotated"] == {"nora": 2}
    pulled = runner.invoke(app, ["pull", str(folder), "--json"], env=env)
    assert json.loads(pulled.stdout)["new"] == 2
    with open_study(folder) as study:
        rows = list(study.store.db["annotations"].rows_where("annotator = 'nora'"))
        assert len(rows) == 2 and all(r["n_objects"] == 0 for r in rows)
        nora = next(study.store.db["annotators"].rows_where("name = 'nora'"))
        assert nora["profile"] == "blind"
        # the truth has objects: an empty annotation is the profile's doing
        assert all(study.store.truth(r["image_id"])["n_objects"] > 0 for r in rows)


def test_an_annotator_keeps_pre_drawn_outlines_that_look_right_and_deletes_false_ones(truth):
    """Starting from a pre-annotation: an object the model outlined well enough (IoU >=
    the profile's ``accept``) is kept as drawn, a poor one is redrawn, a false one deleted;
    without a pre-annotation the drawing is the from-scratch one."""
    from connectors.simulated import corrected_mask
    from loop.core.agreement import iou_matrix
    from loop.core.effort import edits
    from loop.noise import NoiseProfile

    pre = np.where(ndi.binary_erosion(truth > 0), truth, 0)  # a model a bit too tight
    poor = int(np.unique(truth)[1])
    pre[truth == poor] = 0
    pre[(truth == poor) & (np.indices(truth.shape)[0] % 2 == 0)] = poor  # half of it: poor
    pre[150:158, 150:158] = 999  # a false object
    perfect = corrected_mask(pre, truth, PROFILES["perfect"], np.random.default_rng(0))
    assert np.array_equal(perfect > 0, truth > 0)  # accepts nothing short of perfect
    lenient = NoiseProfile(accept=0.5)
    kept = corrected_mask(pre, truth, lenient, np.random.default_rng(0))
    iou, pre_ids, _ = iou_matrix(pre, kept)
    exact = {int(pre_ids[i]) for i in range(len(pre_ids)) if iou[i].max() == 1.0}
    assert poor not in exact and 999 not in exact  # redrawn, deleted
    assert len(exact) == len(pre_ids) - 2  # every other outline kept as the model drew it
    counts = edits(pre, kept)
    assert counts.accepted == len(exact) and counts.deleted >= 1
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(
        corrected_mask(None, truth, PROFILES["average"], rng_a),
        noisy_mask(truth, PROFILES["average"], rng_b),
    )
    overlooked = corrected_mask(
        pre, truth, NoiseProfile(accept=0.5, miss=1.0), np.random.default_rng(0)
    )
    assert (overlooked[150:158, 150:158] > 0).all()  # a false object overlooked is kept
