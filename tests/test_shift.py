"""Domain shift: features on arrays, the domain classifier, and real DSB images grouped by
modality (a real shift) and by a random 'session' (none)."""

import csv
import hashlib
import json

import numpy as np
import pytest
from conftest import DSB, needs
from typer.testing import CliRunner

from loop.cli import app
from loop.data.ingest import ingest
from loop.errors import ShiftError
from loop.reports.shift import domain_auc, effect_sizes, shift_report
from loop.study import init_study


def test_domain_auc_and_effect_sizes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    group = np.arange(60) < 30
    shifted = x.copy()
    shifted[group, 2] += 3.0
    assert domain_auc(shifted, group) > 0.95
    assert domain_auc(x, group) < 0.75  # noise: near 0.5
    d = effect_sizes(shifted, group)
    a, b = shifted[group, 2], shifted[~group, 2]
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)  # equal group sizes
    assert np.argmax(np.abs(d)) == 2 and d[2] == pytest.approx((a.mean() - b.mean()) / pooled)
    assert effect_sizes(np.ones((6, 2)), np.arange(6) < 3).tolist() == [0.0, 0.0]
    with pytest.raises(ShiftError, match="a group of 1 image"):
        domain_auc(x[:10], np.arange(10) < 1)


@pytest.fixture
def dsb_mixed(tmp_path):
    """14 fluorescence and 10 stained-tissue DSB images, with a random 'session' A/B."""
    manifest = json.loads((DSB / "manifest.json").read_text())
    fluo = [r for r in manifest if r["modality"] == "fluorescence"][:14]
    tissue = [r for r in manifest if r["modality"] == "HE/IHC color"][:10]
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for r in fluo + tissue:
        (folder / f"{r['id']}.png").write_bytes((DSB / "images" / f"{r['id']}.png").read_bytes())
        coin = int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 2
        rows.append({"id": r["id"], "modality": r["modality"], "session": "AB"[coin]})
    table = tmp_path / "meta.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "modality", "session"])
        writer.writeheader()
        writer.writerows(rows)
    with init_study(tmp_path / "study") as study:
        ingest(study, folder, metadata=table)
        # some fluorescence images labeled and tested, no tissue image
        fluo_ids = [im["id"] for im in study.store.images("meta_modality = 'fluorescence'")]
        with study.store.atomic() as db:
            for i, image_id in enumerate(fluo_ids[:6]):
                db["images"].update(image_id, {"split": "labeled" if i < 3 else "test"})
    return tmp_path / "study"


@needs(DSB)
def test_modality_is_a_shift_a_random_session_is_not(dsb_mixed, tmp_path):
    from loop.study import open_study

    with open_study(dsb_mixed) as study:
        report = shift_report(study, key="modality", plot=tmp_path / "map.png")
        by = {g.group: g for g in report.groups}
        assert report.n_images == 24 and set(by) == {"fluorescence", "HE/IHC color"}
        tissue = by["HE/IHC color"]
        assert tissue.auc > 0.9 and tissue.verdict == "strong shift"
        # stained tissue on a bright background, fluorescence dark: brighter
        assert dict(tissue.differs_in)["mean"] > 2
        assert tissue.splits == {"pool": 10, "labeled": 0, "test": 0}
        assert [w.split(":")[0] for w in tissue.warnings] == ["no labeled image", "no test image"]
        assert by["fluorescence"].warnings == []
        assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
        session = shift_report(study, key="session")
        assert all(g.auc < 0.8 and g.verdict != "strong shift" for g in session.groups)
        few = shift_report(study, key="modality", min_images=11)
        assert {g.group: g.auc for g in few.groups}["HE/IHC color"] is None
        assert "too few images" in {g.group: g.verdict for g in few.groups}["HE/IHC color"]


@needs(DSB)
def test_bad_keys_are_refused(dsb_mixed, tmp_path):
    from loop.study import open_study

    with open_study(dsb_mixed) as study:
        with pytest.raises(ShiftError, match=r"--by lens: no such metadata key \(known: "):
            shift_report(study, key="lens")
        with pytest.raises(ShiftError, match="no image in the splits excluded"):
            shift_report(study, key="modality", splits=["excluded"])
        with pytest.raises(ShiftError, match="every image has modality = fluorescence"):
            shift_report(study, key="modality", splits=["labeled", "test"])
    with init_study(tmp_path / "bare") as bare:
        with pytest.raises(ShiftError, match="the study has no metadata to group by"):
            shift_report(bare)


@needs(DSB)
def test_cli_json_alone_on_stdout_and_a_plot(dsb_mixed):
    result = CliRunner().invoke(app, ["shift", str(dsb_mixed), "--by", "modality", "--json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["key"] == "modality" and len(shown["groups"]) == 2
    assert (dsb_mixed / "report" / "shift-modality.png").is_file()
    table = CliRunner().invoke(app, ["shift", str(dsb_mixed), "--by", "modality"])
    assert table.exit_code == 0 and "strong shift" in table.stdout
    assert "HE/IHC color: no labeled image" in table.stdout
    from loop.reports.status import group_keys
    from loop.study import open_study

    with open_study(dsb_mixed) as study:
        first = group_keys(study)[0]  # no groups in loop.toml: the first categorical metadata
    default = CliRunner().invoke(app, ["shift", str(dsb_mixed), "--json"])
    assert default.exit_code == 0 and json.loads(default.stdout)["key"] == first
    assert (dsb_mixed / "report" / f"shift-{first}.png").is_file()
    bad = CliRunner().invoke(app, ["shift", str(dsb_mixed), "--by", "lens"])
    assert bad.exit_code == 1 and "no such metadata key" in bad.stderr
