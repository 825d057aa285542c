"""The models table's queries (loop/store/models.py); training through them is in
test_learner.py."""

from loop.store import Store, models


def _model(**kw):
    base = {"task": "segmentation", "kind": "cellpose", "status": "accepted", "path": "m"}
    return {**base, **kw}


def test_latest_accepted_per_arm_and_alike_training(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        first = models.add(store, _model(label_sha256="a"))
        second = models.add(store, _model(label_sha256="b", parent_id=first, arm="x"))
        models.add(store, _model(label_sha256="c", status="rejected"))
        assert models.latest_accepted(store, "segmentation", "main")["id"] == first
        assert models.latest_accepted(store, "segmentation", "x")["id"] == second
        assert models.latest_accepted(store, "classification", "main") is None
        assert models.count(store) == 3 and models.model(store, 99) is None
        assert models.trained_alike(store, "cellpose", "b", first, 0)["id"] == second
        assert models.trained_alike(store, "cellpose", "b", None, 0) is None
        assert models.trained_alike(store, "cellpose", "a", None, first)["id"] == first


def test_an_evaluation_is_stored_once_per_model_and_split(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        model_id = models.add(store, _model())
        assert models.evaluation(store, model_id, "test") is None
        for value in ("{}", '{"ap50": 1}'):
            models.add_evaluation(store, {"model_id": model_id, "split": "test", "metrics": value})
        assert models.evaluation(store, model_id, "test")["metrics"] == '{"ap50": 1}'
        assert store.db["evaluations"].count == 1


def test_steps_of_models_are_summed(tmp_path):
    with Store(tmp_path / "loop.db", create=True) as store:
        ids = [models.add(store, _model(params=p)) for p in ('{"steps": 100}', "{}", None)]
        assert models.steps_of(store, ids) == 100 and models.steps_of(store, []) == 0
