import csv
import json

import numpy as np
import pytest
from test_agree import annotate
from typer.testing import CliRunner

from loop.annotate.consensus import agree
from loop.cli import app
from loop.core.images import read_mask
from loop.data.ingest import ingest
from loop.errors import NothingToExport
from loop.reports.export import export


def test_export_consensus_with_provenance(seg_study, nuclei_folder, tmp_path):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    with pytest.raises(NothingToExport, match="run `loop pull` and `loop agree` first"):
        export(seg_study, tmp_path / "out")
    ids = [r["id"] for r in seg_study.store.images()][:3]
    annotate(
        seg_study,
        ids,
        lambda image, name: read_mask(seg_study.store.truth(image["id"])["mask_path"]),
    )
    agree(seg_study, min_agreement=0.0)
    report = export(seg_study, tmp_path / "out")
    assert report.n_labels == 3 and report.by_source == {"consensus": 3}
    rows = list(csv.DictReader(open(report.provenance)))
    assert [r["annotators"] for r in rows] == ["alice bob carol"] * 3
    first = seg_study.store.image(int(rows[0]["image_id"]))
    exported = read_mask(tmp_path / "out" / rows[0]["label_file"])
    truth = read_mask(seg_study.store.truth(first["id"])["mask_path"])
    assert np.array_equal(exported > 0, truth > 0)  # identical annotators: the truth back
    # ground truth on request; an adjudicated label wins over the consensus
    seg_study.store.db["labels"].insert(
        {
            **dict(seg_study.store.db["labels"].get(1)),
            "id": None,
            "source": "adjudicated",
            "annotator": "",
            "image_id": ids[0],
            "provenance": json.dumps({"reviewer": "dana"}),
        }
    )
    report = export(seg_study, tmp_path / "out", truth=True)
    assert report.by_source == {"adjudicated": 1, "consensus": 2, "truth": 3}


def test_export_cli_json(seg_study, nuclei_folder, tmp_path):
    ingest(seg_study, nuclei_folder / "images", masks=nuclei_folder / "masks")
    result = CliRunner().invoke(
        app, ["export", str(seg_study.path), str(tmp_path / "o"), "--truth", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["labels"] == 6
    result = CliRunner().invoke(app, ["export", str(seg_study.path), str(tmp_path / "o")])
    assert result.exit_code == 1 and "no consensus or adjudicated labels" in result.stderr
