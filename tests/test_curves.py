"""Learning-curve arithmetic: labels to a target, means and intervals over seeds, bootstrap
costs, the area under the curve."""

import pytest

from loop.core.curves import (
    area_under,
    cost_to,
    interval,
    interval_curve,
    labels_to,
    mean_curve,
    paired_at_cost,
    paired_curve,
    summarize,
)


def test_labels_to_is_the_first_count_whose_mean_reaches_the_target():
    curve = [[8, 0.60, 0.01], [16, 0.79, 0.02], [24, 0.81, 0.01], [32, 0.80, 0.0]]
    assert labels_to(curve, 0.8) == 24
    assert labels_to(curve, 0.6) == 8
    assert labels_to(curve, 0.9) is None
    assert labels_to(curve, None) is None


def test_mean_curve_over_seeds():
    runs = [[(8, 0.5), (16, 0.7)], [(8, 0.7), (16, 0.9)], [(8, 0.6)]]
    curve = mean_curve(runs)
    assert curve[0] == [8.0, 0.6, pytest.approx(0.0816, abs=1e-4)]
    assert curve[1] == [16.0, 0.8, 0.1]  # the third seed has not reached round 1


def test_summarize_gives_ratios_to_random():
    curves = {
        "random": [[8, 0.5, 0], [16, 0.7, 0], [24, 0.85, 0], [32, 0.9, 0]],
        "smart": [[8, 0.5, 0], [16, 0.82, 0], [24, 0.9, 0], [32, 0.9, 0]],
        "bad": [[8, 0.5, 0], [16, 0.6, 0]],
    }
    out = summarize(curves, 0.9)
    assert (out["random"]["labels_to_90"], out["random"]["labels_to_95"]) == (24, 32)
    assert (out["smart"]["labels_to_90"], out["smart"]["labels_to_95"]) == (16, 24)
    assert out["smart"]["ratio_to_random_95"] == 0.75
    assert out["bad"]["labels_to_95"] is None and out["bad"]["ratio_to_random_95"] is None
    assert summarize(curves, None)["random"]["labels_to_95"] is None


def test_intervals_costs_and_area():
    mean, low, high = interval([0.4, 0.5, 0.6, 0.5, 0.5])
    assert mean == pytest.approx(0.5) and low < 0.5 < high and high - low < 0.2
    assert interval([0.7]) == (0.7, 0.7, 0.7)
    runs = [[(4, 0.2), (8, 0.6), (12, 0.9)], [(4, 0.3), (8, 0.8), (12, 0.95)]]
    curve = interval_curve(runs)
    assert [c[0] for c in curve] == [4, 8, 12] and curve[1][1] == pytest.approx(0.7)
    cost = cost_to(runs, 0.7, resamples=200)
    assert cost["value"] == 8 and 8 <= cost["low"] <= cost["high"] <= 12 and cost["never"] == 0
    assert cost_to(runs, 0.99, resamples=50) == {
        "value": None,
        "low": None,
        "high": None,
        "never": 1.0,
    }
    assert area_under([[4, 0.25], [8, 0.75], [12, 1.0]], 1.0) == pytest.approx(0.6875)
    assert area_under([[4, 0.5]], 1.0) is None


def test_paired_curve_compares_seed_by_seed():
    # seed 1 is 0.3 lower for both strategies: the pairs cancel it, the unpaired spread does not
    smart = [[(4, 0.5), (8, 0.62)], [(4, 0.2), (8, 0.325)], [(4, 0.5), (8, 0.615)]]
    random = [[(4, 0.5), (8, 0.60)], [(4, 0.2), (8, 0.30)], [(4, 0.5), (8, 0.60)]]
    curve = paired_curve(smart, random)
    assert [row[0] for row in curve] == [4, 8]
    assert curve[0][1:] == [0.0, 0.0, 0.0, 0, 3]  # the same initial model: no gain
    n, gain, low, high, ahead, pairs = curve[1]
    assert gain == pytest.approx(0.02) and 0 < low < gain < high and (ahead, pairs) == (3, 3)
    unpaired = interval_curve(smart)[1][3] - interval_curve(smart)[1][2]
    assert high - low < unpaired / 10
    # a seed that stopped early counts only where both reached
    assert paired_curve([[(4, 0.5)], smart[1]], random[:2])[1][-1] == 1
    with pytest.raises(ValueError, match="3 runs against 2 baseline runs; pair them by seed"):
        paired_curve(smart, random[:2])


def test_paired_at_cost_reads_the_baseline_of_the_same_seed_at_equal_effort():
    # regions: cheap rounds; whole images: dear ones; seed 1 sits 0.3 lower on both sides
    regions = [[(0, 0.5), (100, 0.56), (200, 0.60)], [(0, 0.2), (100, 0.27), (200, 0.29)]]
    images = [[(0, 0.5), (200, 0.54), (400, 0.60)], [(0, 0.2), (200, 0.24), (400, 0.30)]]
    curve = paired_at_cost(regions, images)
    assert [row[0] for row in curve] == [0, 100, 200]
    assert curve[0][1:] == [0.0, 0.0, 0.0, 0, 2]
    assert curve[1][1] == pytest.approx(0.045)  # 0.56 - 0.52 and 0.27 - 0.22, mean 0.045
    assert curve[2][1] == pytest.approx(0.055) and curve[2][4:] == [2, 2]
    # at equal rounds the same arm would look behind: the effort axis is what changes it
    assert paired_curve(regions, images)[2][1] < 0
    # beyond the baseline's last round nothing is extrapolated
    far = [[(0, 0.5), (500, 0.7)], [(0, 0.2), (300, 0.3)]]
    assert paired_at_cost(far, images)[1] == [300.0, 0.03, 0.03, 0.03, 1, 1]  # seed 1 alone
    with pytest.raises(ValueError, match="2 runs against 1 baseline runs; pair them by seed"):
        paired_at_cost(regions, images[:1])
