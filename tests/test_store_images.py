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


def test_images_are_added_versioned_and_split(tmp_path):
    from loop.store import labels

    with Store(tmp_path / "loop.db", create=True) as store:
        first = images.add_image(store, {"root": "r", "path": "a", "sha256": "1"}, now="t0")
        second = images.add_image(store, {"root": "r", "path": "b", "sha256": "2"}, now="t0")
        images.update_image(store, store.image(first), {"sha256": "3"}, now="t1")
        assert (store.image(first)["version"], store.image(first)["sha256"]) == (2, "3")
        images.set_splits(store, {first: "test", second: "pool"}, params={"seed": 0}, counts={})
        assert store.count_by("split") == {"pool": 1, "test": 1}
        assert store.db["splits"].count == 1
        assert images.has_column(store, "sha256") and not images.has_column(store, "nope")
        labels.add_truth(store, first, {"kind": "class", "class": "b"}, now="t0")
        assert labels.truth_classes(store) == {first: "b"}
        labels.update_label(store, labels.label_of(store, first, "truth"), {"class": "c"}, now="t2")
        assert labels.label_of(store, first, "truth")["version"] == 2
        assert images.people_work(store) == (0, 0)


def test_images_in_splits_with_a_column_and_whether_split(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        assert not images.has_split(store)
        first = images.add_image(store, {"root": "r", "path": "a", "sha256": "1"}, now="t")
        images.set_splits(store, {first: "test"}, params={}, counts={})
        assert images.has_split(store)
        (row,) = images.images_in(store, ["test"], "path")
        assert (row["id"], row["grp"]) == (first, "a")
        assert images.images_in(store, ["pool"], "path") == []
