import sqlite3

import pytest

from loop.errors import SchemaTooNew, StudyNotFound
from loop.store import SCHEMA_VERSION, Store, dumps, meta_column, migrate

TABLES = {
    "images",
    "labels",
    "annotations",
    "annotation_versions",
    "tasks",
    "rounds",
    "models",
    "changes",
    "skipped",
    "splits",
}


def test_new_store_has_the_schema(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        assert TABLES <= set(store.db.table_names())
        assert store.schema_version == SCHEMA_VERSION
        rounds = {c.name for c in store.db["rounds"].columns}
        assert {"arm", "round", "n_labeled", "metrics"} <= rounds
        assert migrate(store.db) == 0  # idempotent


def test_missing_database(tmp_path):
    with pytest.raises(StudyNotFound, match="no study database at .*loop init"):
        Store(tmp_path / "nope.db")


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "loop.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(
        SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 5}, this loop knows up to"
    ):
        Store(tmp_path / "loop.db")


def test_atomic_rolls_back_everything(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        with pytest.raises(RuntimeError, match="boom"):
            with store.atomic() as db:
                db["skipped"].insert({"path": "/a", "reason": "x"})
                with store.atomic():
                    db["skipped"].insert({"path": "/b", "reason": "x"})
                raise RuntimeError("boom")
        assert store.db["skipped"].count == 0


def test_skipped_is_one_row_per_path(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        store.record_skipped("/a.png", "empty", "first")
        store.record_skipped("/a.png", "unreadable", "second")
        rows = list(store.db["skipped"].rows)
        assert [(r["path"], r["reason"], r["message"]) for r in rows] == [
            ("/a.png", "unreadable", "second")
        ]
        store.clear_skipped("/a.png")
        assert store.db["skipped"].count == 0


def test_meta_columns_keep_types(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        store.ensure_meta_columns(["Instrument ID", "mean"])
        assert set(store.meta_columns()) == {"instrument_id", "mean"}
        store.db["images"].insert({"root": "/r", "path": "a", "sha256": "x", "meta_mean": 6.5})
        assert store.db.execute("SELECT typeof(meta_mean) FROM images").fetchone()[0] == "real"


def test_count_by_unknown_column(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        with pytest.raises(KeyError, match="nope"):
            store.count_by("nope")


def test_helpers():
    assert meta_column(" Instrument ID ") == "meta_instrument_id"
    assert meta_column("%%") == "meta_unnamed"
    assert dumps({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_a_whole_consensus_with_a_stale_known_mask_is_repaired(tmp_path):
    """Migration 15: before 2026-12-07 a whole consensus written over a partial label kept its
    known mask; on open, a label whose provenance names no region is known everywhere again,
    and a real partial label keeps its own."""
    with Store(tmp_path / "loop.db", create=True) as store:
        store.db["images"].insert({"id": 1, "root": "r", "path": "a", "sha256": "a"})
        store.db["images"].insert({"id": 2, "root": "r", "path": "b", "sha256": "b"})
        for image_id, provenance in ((1, {"agreement": 0.9}), (2, {"regions": [4]})):
            store.db["labels"].insert(
                {
                    "image_id": image_id,
                    "source": "consensus",
                    "kind": "mask",
                    "known_path": f"k{image_id}.tif",
                    "known_fraction": 0.2,
                    "provenance": dumps(provenance),
                }  # fmt: skip
            )
        store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    with Store(tmp_path / "loop.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        rows = {r["image_id"]: r for r in store.db["labels"].rows}
        assert (rows[1]["known_path"], rows[1]["known_fraction"]) == (None, None)
        assert (rows[2]["known_path"], rows[2]["known_fraction"]) == ("k2.tif", 0.2)
