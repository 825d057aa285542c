"""Pool scores and selections (loop/store/scores.py); scoring through them is in
test_learner.py."""

import numpy as np

from loop.store import Store, scores


def test_scores_are_replaced_per_model_and_image_and_keep_their_embedding(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        store.db["images"].insert({"id": 1, "root": "r", "path": "a", "sha256": "x", "name": "a"})
        store.db["models"].insert({"id": 5, "task": "segmentation", "path": "m"})
        vector = np.array([0.5, -1.25, 3.0], np.float32)
        scores.save_scores(store, 5, [(1, {"flip": 0.2}, vector)])
        scores.save_scores(store, 5, [(1, {"flip": 0.3}, vector)])  # again: replaced
        assert scores.measures_of(store, 5) == {1: {"flip": 0.3}}
        row = scores.scores_of(store, 5)[1]
        assert np.array_equal(scores.from_blob(row["embedding"]), vector)
        scores.update_measures(store, row["id"], {"flip": 0.3, "tta": 0.1})
        assert scores.measures_of(store, 5)[1]["tta"] == 0.1
        assert scores.scores_of(store, 6) == {}


def test_the_same_selection_is_recorded_once(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        row = {"model_id": None, "strategy": "random", "k": 2, "seed": 0}
        for ids in ("[1, 2]", "[1, 2]", "[2, 3]"):
            scores.record_selection(store, {**row, "image_ids": ids, "scores": "[null, null]"})
        assert store.db["selections"].count == 2


def test_choices_give_each_image_its_latest_selection(tmp_path):
    store = Store(tmp_path / "loop.db", create=True)
    row = {"model_id": None, "k": 2, "seed": 0}
    scores.record_selection(
        store, {**row, "strategy": "random", "image_ids": "[4, 7]", "scores": "[null, null]"}
    )
    scores.record_selection(
        store, {**row, "strategy": "flip", "image_ids": "[9, 4]", "scores": "[0.8, 0.5]"}
    )
    assert scores.choices(store) == {
        4: {"strategy": "flip", "rank": 2, "score": 0.5},
        7: {"strategy": "random", "rank": 2, "score": None},
        9: {"strategy": "flip", "rank": 1, "score": 0.8},
    }
