"""Labels that train (loop/store/labels.py): one per image and source, versioned."""

from loop.store import Store
from loop.store.labels import label_of, save_label


def test_a_label_is_versioned_in_place_and_labels_its_image(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        store.db["images"].insert({"id": 1, "root": "r", "path": "a", "sha256": "x", "name": "a"})
        label = {"kind": "class", "class": "b", "provenance": "p1"}
        assert save_label(store, 1, source="consensus", label=label)
        assert store.image(1)["split"] == "labeled"
        assert not save_label(store, 1, source="consensus", label=label)  # as is: kept
        # only the keys compared decide: a new provenance with compare=("class",) is kept
        moved = {**label, "provenance": "p2"}
        assert not save_label(store, 1, source="consensus", label=moved, compare=("class",))
        assert save_label(store, 1, source="consensus", label=moved)
        row = label_of(store, 1, "consensus")
        assert (row["version"], row["provenance"]) == (2, "p2")
        assert label_of(store, 1, "adjudicated") is None
        assert store.db["labels"].count == 1


def test_labels_made_by_people_are_counted_by_source(tmp_path):
    from loop.store.labels import made_by_people

    with Store(tmp_path / "loop.db", create=True) as store:
        for i, source in enumerate(("truth", "consensus", "adjudicated", "consensus")):
            store.db["images"].insert({"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}"})
            store.db["labels"].insert({"image_id": i, "source": source, "kind": "mask"})
        assert made_by_people(store) == {"adjudicated": 1, "consensus": 2}


def test_images_with_a_source_and_those_labeled_by_people(tmp_path):
    from loop.store.labels import images_with, people_labeled

    with Store(tmp_path / "loop.db", create=True) as store:
        for i, source in enumerate(("truth", "consensus", "adjudicated")):
            store.db["images"].insert({"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}"})
            store.db["labels"].insert({"image_id": i, "source": source, "kind": "mask"})
        assert images_with(store, "truth") == {0} and people_labeled(store) == {1, 2}


def test_labels_from_sources(tmp_path):
    from loop.store.labels import labels_from

    with Store(tmp_path / "loop.db", create=True) as store:
        store.db["images"].insert({"id": 1, "root": "r", "path": "a", "sha256": "x"})
        for source in ("truth", "consensus"):
            store.db["labels"].insert({"image_id": 1, "source": source, "kind": "mask"})
        assert [r["source"] for r in labels_from(store, ["consensus"])] == ["consensus"]
        assert len(labels_from(store, ("truth", "consensus"))) == 2


def test_truth_only_keeps_ground_truth_and_moves_images(tmp_path):
    from loop.store.db import backup
    from loop.store.labels import truth_only

    with Store(tmp_path / "loop.db", create=True) as store:
        for i, split in ((1, "pool"), (2, "labeled")):
            store.db["images"].insert(
                {"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}", "split": split}
            )
        store.db["labels"].insert({"image_id": 1, "source": "truth", "kind": "mask"})
        store.db["labels"].insert({"image_id": 2, "source": "consensus", "kind": "mask"})
        backup(store, tmp_path / "copy.db")
        truth_only(store)
        assert store.count_by("split") == {"labeled": 1, "pool": 1}
        assert store.image(1)["split"] == "labeled" and store.db["labels"].count == 1
    with Store(tmp_path / "copy.db") as copy:  # the backup is the study before
        assert copy.db["labels"].count == 2
