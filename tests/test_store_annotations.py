"""The annotation-tool queries (loop/store/annotations.py) on a store without a tool; pull's
use of them against a real Label Studio is in test_annotation.py."""

from datetime import datetime, timezone

from loop.store import Store
from loop.store import annotations as q
from loop.store.annotators import annotators


def _store(tmp_path):
    store = Store(tmp_path / "loop.db", create=True)
    db = store.db
    db["images"].insert({"id": 1, "root": "r", "path": "a.png", "sha256": "x", "name": "a"})
    db["tool_projects"].insert({"id": 1, "tool": "ls", "purpose": "annotate", "project": "7"})
    db["tasks"].insert(
        {
            "id": 1,
            "image_id": 1,
            "purpose": "annotate",
            "tool": "ls",
            "project": "7",
            "external_id": "70",
            "overlap": 2,
            "status": "open",
        }
    )
    return store


def _row(annotator, version=1, result="[]"):
    return {
        "task_id": 1,
        "image_id": 1,
        "annotator": annotator,
        "external_id": f"{annotator}-{version}",
        "result": result,
        "status": "current",
        "version": version,
    }


def test_annotations_are_versioned_deleted_and_set_the_tasks_status(tmp_path):
    with _store(tmp_path) as store:
        task = store.db["tasks"].get(1)
        got = q.write_annotations(
            store, task, [(None, _row("a")), (None, _row("b"))], {}, {"a", "b"}
        )
        assert got == (2, 0, 0, "done")
        current = q.current_annotations(store, 1)
        changed = (current["a"], _row("a", version=2, result="[1]"))
        task = store.db["tasks"].get(1)
        # a changed, b gone from the tool: one update, one deletion, the task open again
        assert q.write_annotations(store, task, [changed], current, {"a"}) == (0, 1, 1, "open")
        current = q.current_annotations(store, 1)
        assert (current["a"]["version"], current["b"]["status"]) == (2, "deleted")
        assert store.db["annotation_versions"].count == 2  # a's first version, b's last
        assert q.live_annotations(store, [1]) == [current["a"]]
        assert q.count_done(store, "ls") == 0 and q.count_mapped(store, "ls") == 1


def test_aliases_unmapped_and_the_pull_clock(tmp_path):
    with _store(tmp_path) as store:
        for _ in range(2):  # adopting twice keeps one alias
            q.add_alias(store, 1, tool="ls", project="7", external_id="71")
        assert q.aliases(store, "ls", "7") == {1: {"71"}}
        q.drop_alias(store, tool="ls", project="7", external_id="71")
        assert q.aliases(store, "ls", "7") == {}
        q.record_unmapped(store, 1, {"99", "98"})
        (project,) = q.tool_projects(store, "ls")
        assert q.unmapped_of(project) == {"98", "99"} and q.count_unmapped(store) == 2
        clock = datetime(2026, 12, 2, 13, 0, tzinfo=timezone.utc)
        q.record_pull(store, 1, clock=clock, whole=False)
        (project,) = q.tool_projects(store, "ls")
        assert datetime.fromisoformat(project["last_pull_at"]) == clock
        assert project["full_pull_at"] is None
        q.record_pull(store, 1, clock=clock, whole=True)
        assert q.tool_projects(store, "ls")[0]["full_pull_at"] == clock.isoformat()
        assert q.mapped_tasks(store, "ls", "7")["70"]["id"] == 1


def test_tasks_are_added_with_their_tiles_and_marked_created(tmp_path):
    with _store(tmp_path) as store:
        base = {"image_id": 1, "purpose": "annotate", "tool": "ls", "project": "8"}
        task_id = q.add_task(store, {**base, "status": "open"}, [(0, 0, 8, 8), (0, 8, 8, 8)])
        where = {"tool": "ls", "project": "8"}
        assert q.task_of(store, 1, **where, purpose="annotate") == task_id
        assert q.task_of(store, 1, **where, purpose="adjudicate") is None
        tiles = q.pending_tasks(store, "ls", "8")
        assert [t["tile"] for t in tiles] == ["[0, 0, 8, 8]", "[0, 8, 8, 8]"]
        q.mark_created(store, {tiles[0]["id"]: 81})
        assert [t["id"] for t in q.pending_tasks(store, "ls", "8")] == [tiles[1]["id"]]
        assert store.db["tasks"].get(tiles[0]["id"])["external_id"] == "81"


def test_a_replaced_project_is_read_whole_on_its_next_pull(tmp_path):
    with _store(tmp_path) as store:
        clock = datetime(2026, 12, 2, 13, 0, tzinfo=timezone.utc)
        q.record_pull(store, 1, clock=clock, whole=True)
        same = {"tool": "ls", "purpose": "annotate", "title": "t", "overlap": 3}
        q.save_project(store, project="7", **same)  # the same project: its clock stays
        assert q.project_of(store, "ls", "annotate")["last_pull_at"] == clock.isoformat()
        q.save_project(store, project="9", **same)  # made anew in the tool
        row = q.project_of(store, "ls", "annotate")
        assert (row["project"], row["overlap"], row["last_pull_at"]) == ("9", 3, None)
        q.save_project(store, project="5", **{**same, "purpose": "adjudicate"})
        assert q.project_of(store, "ls", "adjudicate")["title"] == "t"
        assert q.known_classes(store) == []


def test_the_annotation_summary_counts_what_waits_and_why(tmp_path):
    with _store(tmp_path) as store:
        task = store.db["tasks"].get(1)
        q.write_annotations(store, task, [(None, _row("a"))], {}, {"a"})
        store.db["tasks"].update(1, {"status": "done"})  # done in the tool, one valid of two
        store.db["annotations"].insert({**_row("b"), "status": "malformed"})
        summary = q.annotation_summary(store, min_annotations=2)
        assert summary["tasks"] == {"done": 1} and summary["too_few_annotations"] == 1
        assert summary["annotations"] == {"a": 1} and summary["malformed"] == {"b": 1}
        assert q.annotation_summary(store, min_annotations=1)["too_few_annotations"] == 0
        assert q.reviews(store) == (0, 0)


def test_annotations_by_task_image_and_account(tmp_path):
    with _store(tmp_path) as store:
        task = store.db["tasks"].get(1)
        store.db["tasks"].update(1, {"round": 2, "arm": "main"})
        q.write_annotations(store, task, [(None, _row("b")), (None, _row("a"))], {}, {"a", "b"})
        store.db["annotations"].insert({**_row("c"), "status": "skipped"})
        by_task = q.current_by_task(store)
        assert [r["annotator"] for r in by_task[1]] == ["a", "b"]
        assert by_task[1][0]["task_round"] == 2 and by_task[1][0]["task_overlap"] == 2
        assert q.current_by_task(store, round=1) == {}
        assert [r["annotator"] for r in q.annotations_of_task(store, 1)] == ["a", "b"]
        both = q.annotations_of_task(store, 1, ("current", "skipped"))
        assert [r["annotator"] for r in both] == ["a", "b", "c"]
        assert q.annotators_of_image(store, 1) == ["a", "b"]
        assert q.arms_of_tasks(store, [1]) == {1: "main"} and q.review_tasks(store) == []
        store.db["annotators"].insert({"name": "a", "tool": "ls", "external_id": "3"})
        assert q.has_account(store, "ls", "a") and not q.has_account(store, "ls", "z")
        assert q.annotator_names(store, "ls") == {"3": "a"}


def test_annotators_and_their_work(tmp_path):
    with _store(tmp_path) as store:
        store.db["annotators"].insert({"name": "a", "tool": "ls", "profile": "careful"})
        assert [r["profile"] for r in annotators(store)] == ["careful"]
        task = store.db["tasks"].get(1)
        q.write_annotations(store, task, [(None, {**_row("a"), "lead_time": 1800.0})], {}, {"a"})
        assert q.work_by_annotator(store) == {"a": (1, 0.5, None)}
