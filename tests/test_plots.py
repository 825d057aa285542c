"""Plots of the loop's figures (files written; their shape follows the data)."""

import warnings

import numpy as np
from skimage.io import imread

from loop.reports.plots import agreement_vs_model, group_curves


def _efficiency(groups):
    curve = [[4, 0.3, 0.2, 0.4], [8, 0.5, 0.4, 0.6]]
    better = [[n, m + 0.05, lo, hi] for n, m, lo, hi in curve]
    return {
        "random": {"per_group": {g: curve for g in groups}},
        "auto": {"per_group": {g: better for g in groups}},
    }


def test_group_curves_has_a_panel_per_group_and_nothing_without_groups(tmp_path):
    one = group_curves(_efficiency(["site=a"]), tmp_path / "one.png", metric="AP@0.5")
    three = group_curves(
        _efficiency(["m=a", "m=b", "m=c"]),
        tmp_path / "three.png",
        metric="AP@0.5",
        ceilings={"m=a": 0.8, "m=b": 0.5},
        title="per group",
    )
    width_one, width_three = imread(one).shape[1], imread(three).shape[1]
    assert np.isclose(width_three / width_one, 3, rtol=0.05)  # panels side by side
    assert group_curves({"random": {"per_group": {}}}, tmp_path / "none.png", metric="x") is None
    assert not (tmp_path / "none.png").exists()


def test_group_curves_against_effort_read_their_own_curves(tmp_path):
    by_images = _efficiency(["m=a", "m=b"])
    assert group_curves(by_images, tmp_path / "e.png", metric="AP", effort=True) is None
    for record in by_images.values():  # the same panels, from the curves against effort
        record["per_group_effort"] = {g: c for g, c in record["per_group"].items()}
        record["per_group"] = {}
    two = group_curves(by_images, tmp_path / "e.png", metric="AP", effort=True)
    one = group_curves(_efficiency(["m=a"]), tmp_path / "one.png", metric="AP")
    assert np.isclose(imread(two).shape[1] / imread(one).shape[1], 2, rtol=0.05)


def test_agreement_vs_model_without_a_main_arm_draws_axes_and_no_empty_legend(tmp_path):
    row = {"arm": "random-s0", "round": 0, "f1": 0.5, "agreement": 0.8, "consensus_vs_truth": 0.9}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about a legend with nothing in it
        path = agreement_vs_model([row], tmp_path / "agreement.png")
    assert imread(path).shape[0] > 100
    path = agreement_vs_model([{**row, "arm": "main"}], tmp_path / "main.png")
    assert imread(path).shape[0] > 100


def test_efficiency_curves_against_effort_use_the_effort_axis(tmp_path):
    from loop.reports.plots import efficiency_curves

    record = {
        "curve": [[4, 0.5, 0.02], [8, 0.6, 0.03]],
        "effort_curve": [[0.0, 0.5, 0.45, 0.55], [900.0, 0.6, 0.5, 0.7]],
    }
    by_effort = efficiency_curves({"random": record}, tmp_path / "e.png", metric="AP@0.5",
                                  full=0.7, effort=True)  # fmt: skip
    by_labels = efficiency_curves({"random": record}, tmp_path / "l.png", metric="AP@0.5",
                                  full=0.7)  # fmt: skip
    assert by_effort.read_bytes()[:4] == b"\x89PNG" and by_labels.stat().st_size > 1000
    assert by_effort.read_bytes() != by_labels.read_bytes()
