"""Label efficiency: a tiny run of random against the default strategy
through the real Label Studio."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_rounds_toml
from typer.testing import CliRunner

from loop.cli import app
from loop.errors import RoundError
from loop.rounds.efficiency import EfficiencyOptions

runner = CliRunner()


def synthetic_study(tmp_path, n_images: int, toml: str, *, test, initial, prepare=None):
    """A study of ``n_images`` synthetic 64 px nuclei with ``toml``, ingested, ``prepare``d
    (e.g. metadata added) and split (stratified by its groups); returns its folder."""
    from loop.data.demo import write_synthetic
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    data = write_synthetic(tmp_path / "data", n_images, shape=(64, 64))
    folder = tmp_path / "study"
    init_study(folder).close()
    (folder / "loop.toml").write_text(toml)
    with open_study(folder) as study:
        ingest(study, data / "images", masks=data / "masks")
        if prepare:
            prepare(study)
        stratify = tuple(study.config.groups) or None
        split_study(study, test=test, initial=initial, seed=0, stratify=stratify)
    return folder


def test_bad_options_are_refused():
    with pytest.raises(RoundError, match="--seeds 0: give at least 1"):
        EfficiencyOptions(strategies=("random",), seeds=0)
    with pytest.raises(RoundError, match="--strategies: name at least one"):
        EfficiencyOptions(strategies=())
    with pytest.raises(RoundError, match="--region-batch 0: give at least 1"):
        EfficiencyOptions(strategies=("random@region",), region_batch=0)
    with pytest.raises(RoundError, match="--full-pool-chunks 0: give at least 1"):
        EfficiencyOptions(strategies=("random",), full_pool_chunks=0)
    with pytest.raises(RoundError, match=r"--full-pool-plateau 1.5: give a gain in \[0, 1\)"):
        EfficiencyOptions(strategies=("random",), full_pool_plateau=1.5)


@pytest.mark.slow
def test_bench_al_through_label_studio(tmp_path, monkeypatch, ls_remote):
    """Random and the default strategy, 2 seeds, 1 round of 2 images on synthetic nuclei:
    curves, labels-to figures, the full-pool reference and the plot; a second call resumes
    (trains nothing new) and gives the same figures."""
    from loop.study import open_study

    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)

    def two_sites(study):
        db = study.store.db
        db["images"].add_column("meta_site", str)
        for image in study.store.images():  # two sites, images alternating
            db["images"].update(image["id"], {"meta_site": "ab"[image["id"] % 2]})

    toml = 'groups = ["site"]\n' + tiny_rounds_toml(["eff-a", "eff-b", "eff-c"])
    folder = synthetic_study(tmp_path, 16, toml, test=4, initial=4, prepare=two_sites)
    args = ["bench", "al", str(folder), "--seeds", "2", "--rounds", "1", "--batch", "2"]
    args += ["--full-pool-chunks", "3"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["default_strategy"] == "auto"
    assert set(out["label_efficiency"]) == {"random", "auto"}
    assert out["seeds"] == 2 and out["pool_ranked"] is True
    for name, record in out["label_efficiency"].items():
        assert [point[0] for point in record["curve"]] == [4, 6]
        assert all(0 <= point[1] <= 1 for point in record["curve"])
        # mean and 95% interval per point, over the 2 seeds
        for (n, mean, _sd), (n2, mean2, low, high) in zip(
            record["curve"], record["interval_curve"]
        ):
            assert n == n2 and mean == pytest.approx(mean2, abs=1e-4) and low <= mean <= high
        assert set(record["labels_to_95_interval"]) == {"value", "low", "high", "never"}
        assert record["labels_to_95_interval"]["value"] == record["labels_to_95"]
        cost = out["cost_axis"][name]["objects_to_95"]
        assert cost is None or cost > 0
        # the experts' effort (weighted edits of the model's pre-annotations) is an axis too
        effort = record["effort_curve"]
        assert [round(point[0], 6) for point in effort][:1] == [0.0] and effort[1][0] > 0
        for key in ("effort_to_90", "effort_to_95"):
            assert record[key] == record[f"{key}_interval"]["value"]
            assert out["cost_axis"][name][key] == record[key]
            assert record[key] is None or record[key] >= 0
    # the default against random seed by seed: the same initial model, so no gain at 4
    paired = out["label_efficiency"]["auto"]["paired_vs_random"]
    assert [row[0] for row in paired] == [4, 6] and paired[0][1:4] == [0.0, 0.0, 0.0]
    auto, rand = (out["runs"][name] for name in ("auto", "random"))
    gains = [a[1][1] - r[1][1] for a, r in zip(auto, rand)]
    assert paired[1][1] == pytest.approx(np.mean(gains), abs=1e-4) and paired[1][5] == 2
    assert "paired_vs_random" not in out["label_efficiency"]["random"]
    for record in out["label_efficiency"].values():  # per group against effort as well
        for group, curve in record["per_group_effort"].items():
            assert [p[0] for p in curve] == [p[0] for p in record["effort_curve"]]
            assert [p[1] for p in curve] == [p[1] for p in record["per_group"][group]]
    # and at equal effort: each seed's random curve read at the default's effort
    by_effort = out["label_efficiency"]["auto"]["paired_vs_random_by_effort"]
    assert by_effort[0][1:4] == [0.0, 0.0, 0.0]
    for row in by_effort[1:]:
        assert row[2] <= row[1] <= row[3] and 1 <= row[5] <= 2
    full = out["full_pool_ap50"]
    assert 0 <= full <= 1 and out["full_pool"]["n_images"] == 12
    # one reference per seed, each trained in chunks of as many steps as an arm used over
    # its rounds (8 fresh, then 40% warm), each chunk continuing the last, all seeds together
    # until a chunk gains < 0.01 on average over the seeds or 3 chunks ran; the reference is
    # the mean of each seed's best chunk
    chunk = 8 + round(8 * 0.4)
    seeds = out["full_pool"]["seeds"]
    assert [r["seed"] for r in seeds] == [0, 1] and out["full_pool"]["steps"] == chunk
    n_chunks = len(seeds[0]["curve"])
    assert 2 <= n_chunks <= 3 and all(len(r["curve"]) == n_chunks for r in seeds)

    def mean_gain(k):  # chunk k's gain over each seed's best before it, averaged
        return np.mean([r["curve"][k][1] - max(p[1] for p in r["curve"][:k]) for r in seeds])

    assert all(mean_gain(k) >= 0.01 - 1e-3 for k in range(1, n_chunks - 1))
    if n_chunks < 3:
        assert mean_gain(n_chunks - 1) < 0.01 + 1e-3
    for record in seeds:
        curve = record["curve"]
        assert [point[0] for point in curve] == [chunk * (i + 1) for i in range(len(curve))]
        assert round(record["value"], 4) == max(point[1] for point in curve)
        assert record["steps"] == next(s for s, v in curve if v == round(record["value"], 4))
        assert len(record["model_ids"]) == n_chunks
        assert record["model_id"] in record["model_ids"]
    assert full == pytest.approx(np.mean([r["value"] for r in seeds]))
    # each group's ceiling for this recipe: the mean over seeds of its best chunk's figure
    assert out["groups"] == ["site=a", "site=b"]
    assert set(out["full_pool"]["per_group"]) == set(out["groups"])
    for group, value in out["full_pool"]["per_group"].items():
        assert value == pytest.approx(np.mean([r["per_group"][group] for r in seeds]))
    assert out["settings"]["full_pool_chunks"] == 3
    assert out["settings"]["initial"] == 4 and out["settings"]["test_images"] == 4
    assert (folder / "bench" / "label-efficiency.png").stat().st_size > 1000
    assert (folder / "bench" / "label-efficiency-groups.png").stat().st_size > 1000
    assert (folder / "bench" / "label-efficiency-effort.png").stat().st_size > 1000
    with open_study(folder) as study:
        arms = {r["arm"] for r in study.store.db["rounds"].rows}
        assert arms == {f"{s}-s{i}" for s in ("random", "auto") for i in (0, 1)}
        n_models = study.store.db["models"].count
        # an arm's effort after its round is the effort recorded on its batch's annotations
        for arm, runs in (("random-s0", out["details"]["random"][0]),):
            (row0,) = list(study.store.db["rounds"].rows_where("arm = ? AND round = 0", [arm]))
            marks = ",".join("?" * len(json.loads(row0["batch"])))
            spent = study.store.db.execute(
                "SELECT sum(a.effort) FROM annotations a JOIN tasks t ON t.id = a.task_id "
                f"WHERE t.image_id IN ({marks}) AND a.status = 'current'",
                json.loads(row0["batch"]),
            ).fetchone()[0]
            assert runs[1]["effort"] == pytest.approx(spent) and runs[0]["effort"] == 0
        # the test split was never annotated
        assert not study.store.db.execute(
            "SELECT count(*) FROM tasks t JOIN images i ON i.id = t.image_id WHERE i.split = 'test'"
        ).fetchone()[0]
    with open_study(folder / "bench" / "full-pool") as copy:
        n_full_pool = copy.store.db["models"].count
        chunks = {m["id"]: m for m in copy.store.db["models"].rows_where("arm = 'full-pool'")}
        assert sorted(chunks) == sorted(i for r in seeds for i in r["model_ids"])
        # each chunk continues the one before, each seed starts afresh
        for record in seeds:
            parents = [chunks[i]["parent_id"] for i in record["model_ids"]]
            assert parents == [None, *record["model_ids"][:-1]]

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert "label efficiency" in again.stdout and "random" in again.stdout
    with open_study(folder) as study:
        assert study.store.db["models"].count == n_models
    with open_study(folder / "bench" / "full-pool") as copy:
        assert copy.store.db["models"].count == n_full_pool
    saved = json.loads((folder / "bench" / "label-efficiency.json").read_text())
    assert saved["label_efficiency"] == out["label_efficiency"]


@pytest.mark.slow
def test_region_arms_pay_for_their_regions_only(tmp_path, monkeypatch, ls_remote):
    """``--region-batch``: a region arm annotates that many regions a round, its effort is
    what its region tasks cost, and the partial labels of regions another arm chose on the
    same image do not train it."""
    from loop.learn.labels import training_labels
    from loop.store import dumps
    from loop.store.rounds import arm_images, arm_regions
    from loop.study import open_study

    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)
    toml = tiny_rounds_toml(["reg-a", "reg-b", "reg-c"]) + "\n[regions]\nsize = 32\nper_image = 1\n"
    folder = synthetic_study(tmp_path, 10, toml, test=2, initial=2)
    args = ["bench", "al", str(folder), "--seeds", "1", "--rounds", "1", "--batch", "2"]
    args += ["--strategies", "random@region,flip@region", "--region-batch", "3"]
    result = runner.invoke(app, [*args, "--no-full-pool", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out["label_efficiency"]) == {"random", "random@region", "flip@region"}
    assert out["settings"]["region_batch"] == 3
    with open_study(folder) as study:
        for name in ("random@region", "flip@region"):
            arm = f"{name}-s0"
            (row,) = list(study.store.db["rounds"].rows_where("arm = ? AND round = 0", [arm]))
            regions = json.loads(row["regions"])
            assert len(regions) == 3 and len({r[0] for r in regions}) == 3  # per_image 1
            spent = sum(
                study.store.db.execute(
                    "SELECT sum(a.effort) FROM annotations a JOIN tasks t ON t.id = a.task_id "
                    "WHERE t.purpose = 'region' AND a.status = 'current' AND t.image_id = ? "
                    "AND t.region = ?",
                    [r[0], dumps(r[1:])],
                ).fetchone()[0]
                for r in regions
            )
            details = out["details"][name][0]
            assert details[0]["effort"] == 0 and details[1]["effort"] == pytest.approx(spent)
            # what trained its last model: its own regions of each partial label, no other's
            mine = arm_regions(study.store, arm, before=1)
            for image, label in training_labels(
                study, arm_images(study.store, arm, before=1), mine
            ):
                if label.get("known_path"):
                    boxes = label.get("known_regions") or mine[image["id"]]
                    assert all(b in mine[image["id"]] for b in boxes)
