"""Rounds and the arms' labeled sets (loop/store/rounds.py); rounds run through them in
test_rounds.py."""

import json

from loop.store import Store, rounds


def test_a_round_is_started_once_and_updated_in_place(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        row = rounds.start_round(store, "main", 0, strategy="random", seed=1)
        again = rounds.start_round(store, "main", 0, strategy="other", seed=2)
        assert again["id"] == row["id"] and again["strategy"] == "random"
        row = rounds.update_round(store, row["id"], {"status": "done", "batch": "[3, 4]"})
        assert row["status"] == "done" and rounds.round_row(store, "main", 1) is None
        rounds.start_round(store, "main", 1, strategy="random", seed=1)
        rounds.update_round(store, rounds.round_row(store, "main", 1)["id"], {"batch": "[5]"})
        assert rounds.batches(store, "main") == {3, 4, 5}
        assert rounds.batches(store, "main", up_to=0) == {3, 4}


def test_arm_images_are_added_once_and_counted_per_round(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        for i in (1, 2, 3):
            store.db["images"].insert({"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}"})
        assert not rounds.has_arm(store, "main") and rounds.initial_images(store) == []
        assert rounds.add_arm_images(store, "main", [1, 2], usable_from=0) == 2
        assert rounds.add_arm_images(store, "main", [2], usable_from=0) == 2  # idempotent
        assert rounds.add_arm_images(store, "main", [3], usable_from=1) == 1
        assert rounds.add_arm_images(store, "main", [], usable_from=1) == 1
        assert rounds.arm_images(store, "main") == [1, 2, 3]
        assert rounds.arm_images(store, "main", before=0) == [1, 2]
        assert rounds.has_arm(store, "main") and rounds.initial_images(store) == [1, 2]
        assert rounds.annotations_of_image(store, 1) == 0
        assert rounds.lead_seconds(store, [1, 2]) is None


def test_the_initial_images_are_counted_once(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        for i in (1, 2):
            store.db["images"].insert({"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}"})
        rounds.add_arm_images(store, "a", [1, 2], usable_from=0)
        rounds.add_arm_images(store, "b", [1, 2], usable_from=0)
        assert rounds.initial_count(store) == 2


def test_the_regions_an_arm_chose_by_image_before_a_round(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        for number, regions in enumerate(([[7, 0, 0, 8, 8], [7, 0, 8, 8, 8]], [[9, 8, 8, 8, 8]])):
            row = rounds.start_round(store, "a", number, strategy="random@region", seed=0)
            rounds.update_round(store, row["id"], {"regions": json.dumps(regions)})
        other = rounds.start_round(store, "b", 0, strategy="random@region", seed=0)
        rounds.update_round(store, other["id"], {"regions": json.dumps([[7, 8, 8, 8, 8]])})
        chosen = {7: [[0, 0, 8, 8], [0, 8, 8, 8]], 9: [[8, 8, 8, 8]]}
        assert rounds.arm_regions(store, "a") == chosen
        assert rounds.arm_regions(store, "a", before=1) == {7: [[0, 0, 8, 8], [0, 8, 8, 8]]}
        assert rounds.arm_regions(store, "a", before=0) == {}
        assert rounds.arm_regions(store, "b") == {7: [[8, 8, 8, 8]]}


def test_the_images_an_arm_pushed_whole(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        for i in (1, 2, 3):
            store.db["images"].insert({"id": i, "root": "r", "path": f"{i}", "sha256": f"{i}"})
        for image_id, arm, purpose in ((1, "a", "annotate"), (2, "a", "region"),
                                       (3, "a", "tile"), (2, "b", "annotate")):  # fmt: skip
            store.db["tasks"].insert({"image_id": image_id, "arm": arm, "purpose": purpose})
        assert rounds.whole_task_images(store, "a") == {1, 3}
        assert rounds.whole_task_images(store, "b") == {2}
        assert rounds.whole_task_images(store, "c") == set()
