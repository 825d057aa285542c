"""The annotators table (loop/store/annotators.py): one row per (tool, name), no secrets."""

from loop.store import Store
from loop.store.annotators import annotators, save_annotator


def test_an_account_is_recorded_once_and_keeps_its_profile(tmp_path):
    store = Store(tmp_path / "loop.db", create=True)
    first = save_annotator(
        store, tool="ls", name="alice", user_id="3", email="a@x", profile="careful", created=True
    )
    assert (first.profile, first.created) == ("careful", True)
    again = save_annotator(store, tool="ls", name="alice", user_id="3", email="a@y", profile=None)
    assert again.profile == "careful"  # None keeps the stored one
    save_annotator(store, tool="ls", name="alice", user_id="3", email="a@y", profile="sloppy")
    save_annotator(store, tool="other", name="alice", user_id="9", email="a@z", profile=None)
    rows = sorted(annotators(store), key=lambda r: r["tool"])
    assert [(r["tool"], r["email"], r["profile"]) for r in rows] == [
        ("ls", "a@y", "sloppy"),
        ("other", "a@z", None),
    ]
    assert not {"token", "password"} & set(rows[0])
