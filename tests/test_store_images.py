"""Images by split and metadata (loop/store/images.py); `loop status` over them is in
test_study.py and test_cli.py."""

from loop.store import Store, images, meta_column


def test_counts_by_split_value_and_reason(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        store.ensure_meta_columns(["scope", "dose"])
        for i, (scope, dose, split) in enumerate(
            [("A", 1, "pool"), ("A", 2, "test"), ("B", 3, "pool")]
        ):
            store.db["images"].insert(
                {
                    "id": i + 1,
                    "root": "r",
                    "path": f"{i}",
                    "sha256": f"{i}",
                    "split": split,
                    meta_column("scope"): scope,
                    meta_column("dose"): dose,
                }
            )
        store.db["labels"].insert({"image_id": 2, "source": "truth", "kind": "mask"})
        assert images.truth_by_split(store) == {"test": 1}
        assert images.distinct_values(store, "scope") == (2, True)
        assert images.distinct_values(store, "dose") == (3, False)  # numbers: not groups
        assert images.by_value_and_split(store, "scope") == {
            "A": {"pool": 1, "test": 1},
            "B": {"pool": 1},
        }
        assert images.by_value_and_split(store, "nothing") is None
        store.record_skipped("x.png", "corrupt", "bad")
        assert images.skipped_by_reason(store) == {"corrupt": 1}
