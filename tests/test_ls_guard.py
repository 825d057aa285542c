"""The embedded Label Studio's guard (connectors/ls_server): the rule as a function, and the
attacks of an annotator's token played against the real server."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import need_label_studio, one_dsb_study

from connectors.ls_server.loop_ls_guard import refusal
from loop.annotate.push import push, select_for_push
from loop.cli.wiring import add_annotators, connect, connect_as, server_of
from loop.errors import ServerStartFailed, ToolRejected
from loop.study import open_study


def nobody_owns(kind, pk):
    return False


def body(data):
    return lambda: json.dumps(data).encode()


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/storages/localfiles"),
        ("GET", "/api/storages/localfiles"),
        ("POST", "/api/storages/localfiles/1/sync"),
        ("POST", "/api/storages/s3"),
        ("GET", "/api/invite"),
        ("POST", "/api/invite/reset-token"),
        ("GET", "/api/projects/1/export"),
        ("POST", "/api/projects/1/exports"),
        ("POST", "/api/webhooks/"),
        ("POST", "/api/ml"),
        ("POST", "/api/projects"),
        ("PATCH", "/api/projects/1"),
        ("DELETE", "/api/projects/1"),
        ("POST", "/api/projects/1/import"),
        ("DELETE", "/api/projects/1/tasks"),
        ("PATCH", "/api/tasks/5"),
        ("DELETE", "/api/tasks/5"),
        ("POST", "/api/dm/actions"),
        ("POST", "/api/predictions"),
        ("PATCH", "/api/annotations/7"),
        ("DELETE", "/api/annotations/7"),
        ("PATCH", "/api/drafts/3"),
        ("PATCH", "/api/users/2"),
        ("POST", "/api/users"),
    ],
)
def test_an_annotator_may_not(method, path):
    why = refusal(method, path, is_admin=False, owns=nobody_owns, body=bytes, user_id=1)
    assert why is not None
    # the admin may
    assert refusal(method, path, is_admin=True, owns=nobody_owns, body=bytes, user_id=1) is None


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/projects/1/next"),
        ("GET", "/api/tasks/5"),
        ("GET", "/data/local-files/"),
        ("POST", "/api/tasks/5/annotations/"),
        ("PATCH", "/api/annotations/7"),
        ("DELETE", "/api/annotations/7/"),
        ("POST", "/api/tasks/5/drafts"),
        ("PATCH", "/api/drafts/3"),
        ("POST", "/api/dm/views"),
        ("PATCH", "/api/dm/views/4"),
        ("PATCH", "/api/users/1"),
        ("POST", "/user/login/"),
    ],
)
def test_an_annotator_may_annotate_own_work(method, path):
    def owns(kind, pk):
        return kind == "user" and pk == 1 or kind != "user"

    assert refusal(method, path, is_admin=False, owns=owns, body=bytes, user_id=1) is None


def test_the_label_stream_may_ask_for_the_next_task_and_nothing_else_of_the_data_manager():
    def ask(action):
        path = "/api/dm/actions"
        return refusal("POST", path, is_admin=False, owns=nobody_owns, action=action)

    assert ask("next_task") is None
    for action in ("delete_tasks", "delete_tasks_annotations", "predictions_to_annotations", None):
        assert ask(action) is not None


def test_an_annotation_is_saved_in_its_authors_name_only():
    path = "/api/tasks/5/annotations/"
    for named in (2, "2", {"id": 2}, "someone"):
        why = refusal(
            "POST",
            path,
            is_admin=False,
            owns=nobody_owns,
            body=body({"completed_by": named}),
            user_id=1,
        )
        assert "own name" in why
    for named in (1, {"id": 1}):
        got = refusal(
            "POST",
            path,
            is_admin=False,
            owns=nobody_owns,
            body=body({"completed_by": named}),
            user_id=1,
        )
        assert got is None
    # not JSON (the server answers for it) is not a reason to refuse
    assert (
        refusal("POST", path, is_admin=False, owns=nobody_owns, body=lambda: b"\xff", user_id=1)
        is None
    )


def test_a_body_is_read_only_for_a_write_that_may_go_on():
    def explode():
        raise AssertionError("read")

    assert refusal(
        "POST", "/api/projects/1/import", is_admin=False, owns=nobody_owns, body=explode, user_id=1
    )
    assert (
        refusal("GET", "/api/tasks/1", is_admin=False, owns=nobody_owns, body=explode, user_id=1)
        is None
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A one-image study with its own embedded Label Studio (started for this module)."""
    need_label_studio()
    tmp = tmp_path_factory.mktemp("guard")
    folder = one_dsb_study(tmp / "study", 'task = "segmentation"\n', tmp / "data")
    with open_study(folder) as study:
        server = server_of(study)
        server.start(timeout=300)
    yield folder
    server.stop()


def refused(response):
    assert response.status_code in (400, 403, 404), (str(response.request.url), response.text[:300])


@pytest.mark.slow
def test_an_annotators_token_reaches_no_secret_and_changes_nothing_but_its_own_work(guarded):
    """The attack of the hardening issue, and its relatives, against the real server: an
    annotator adds a local-files storage over the study's Label Studio folder and reads the
    credentials and the server's database; changes the project; forges or deletes another
    annotator's work; reads the invite link. Every step must fail, while annotating works."""
    with open_study(guarded) as study:
        admin = connect(study)
        folder = study.path.resolve() / "labelstudio"
        add_annotators(study, admin, ["mallory", "victim"])
        mallory, victim = (connect_as(study, n, admin) for n in ("mallory", "victim"))
        push(study, admin, select_for_push(study, split="pool"), overlap=2)
        task = next(study.store.db["tasks"].rows)
    task_id, project = task["external_id"], int(task["project"])
    raw = httpx.Client(base_url=mallory.url, headers={"Authorization": f"Token {mallory._token}"})
    try:
        theirs = victim.annotate(task_id, [], lead_time=1.0)
        victim_id, me = victim.whoami()["id"], mallory.whoami()["id"]

        # 1. the attack of the issue: a storage over the study's Label Studio folder, then the
        # secrets through the local-files view
        for path in (folder, folder / "public", folder / "public" / "media", study.path):
            body = {"project": project, "path": str(path)}
            refused(raw.post("/api/storages/localfiles", json=body))
        refused(raw.get("/api/storages/localfiles", params={"project": project}))
        storages = admin._json(
            "GET", "/api/storages/localfiles", what="list", params={"project": project}
        )
        assert [s["path"] for s in storages] == [str(folder / "public" / "media")]
        for secret in ("credentials.json", "data/label_studio.sqlite3", "server.log"):
            for d in (
                f"labelstudio/{secret}",
                f"../{secret}",
                f"../../{secret}",
                str(folder / secret),
            ):
                response = raw.get("/data/local-files/", params={"d": d})
                refused(response)
                assert b"token" not in response.content.lower()

        # 2. the document root holds display images only, so even the admin (whom the guard
        # lets add storages) cannot serve a secret: Label Studio refuses a storage outside it
        for path in (folder, study.path, folder / "public"):
            with pytest.raises(ToolRejected, match="subdirectory|cannot be the same"):
                admin._json(
                    "POST",
                    "/api/storages/localfiles",
                    what="add a storage",
                    json={"project": project, "path": str(path)},
                )

        # 3. the project, its tasks, other accounts' work, the organization
        refused(raw.patch(f"/api/projects/{project}", json={"maximum_annotations": 1}))
        refused(raw.post("/api/projects", json={"title": "mine"}))
        refused(raw.delete(f"/api/tasks/{task_id}"))
        refused(raw.patch(f"/api/tasks/{task_id}", json={"data": {"image": "x"}}))
        refused(raw.post(f"/api/projects/{project}/import", json=[{"data": {"image": "x"}}]))
        forged = {"result": [], "completed_by": victim_id}
        refused(raw.post(f"/api/tasks/{task_id}/annotations/", json=forged))
        refused(raw.patch(f"/api/annotations/{theirs}", json={"result": [], "lead_time": 99}))
        refused(raw.delete(f"/api/annotations/{theirs}"))
        refused(raw.get("/api/invite"))
        refused(raw.post("/api/invite/reset-token"))
        refused(raw.get(f"/api/projects/{project}/export"))
        refused(raw.post("/api/webhooks/", json={"project": project, "url": "http://127.0.0.1:9/"}))
        refused(raw.post("/api/ml", json={"project": project, "url": "http://127.0.0.1:9/"}))
        refused(raw.patch(f"/api/users/{victim_id}", json={"first_name": "pwned"}))
        refused(raw.post("/api/dm/actions", params={"id": "delete_tasks", "project": project}))
        kept = admin._json("GET", f"/api/annotations/{theirs}", what="read an annotation")
        assert (kept["completed_by"], kept["lead_time"]) == (victim_id, 1.0)
        settings = admin._json("GET", f"/api/projects/{project}", what="read the project")
        assert settings["maximum_annotations"] == 2 and settings["title"] != "mine"
        assert admin.get_task(task_id) is not None

        # 4. annotating still works: the image, one's own annotation, editing it
        image = admin._json("GET", f"/api/tasks/{task_id}", what="read a task")["data"]["image"]
        assert image.startswith("/data/local-files/?d=media/")
        shown = raw.get(image)
        assert shown.status_code == 200 and shown.content[:4] == b"\x89PNG"
        mine = mallory.annotate(task_id, [], lead_time=1.0)
        assert raw.patch(f"/api/annotations/{mine}", json={"lead_time": 2.0}).status_code == 200
        assert admin._json("GET", f"/api/annotations/{mine}", what="read")["completed_by"] == me
    finally:
        raw.close()
        for tool in (mallory, victim, admin):
            tool.close()


def test_a_document_root_that_holds_a_secret_is_refused(tmp_path):
    from connectors.labelstudio_server import LabelStudioServer

    for root in (tmp_path, tmp_path / "ls", tmp_path / "ls" / "data"):
        server = LabelStudioServer(tmp_path / "ls", root, executable="/bin/false")
        with pytest.raises(ServerStartFailed, match="every annotator could read it"):
            server.start(timeout=1)


@pytest.mark.parametrize(
    "d", ["../credentials.json", "/etc/passwd", "media/../../x", "~/x", "..\\x"]
)
def test_a_local_file_outside_the_served_folder_is_refused_to_everyone(d):
    for is_admin in (False, True):
        why = refusal("GET", "/data/local-files/", is_admin=is_admin, owns=nobody_owns, served=d)
        assert "inside it" in why
    assert (
        refusal("GET", "/data/local-files/", is_admin=False, owns=nobody_owns, served="media/a.png")
        is None
    )


@pytest.mark.slow
def test_a_study_from_before_the_root_moved_has_its_images_and_tasks_moved_once(guarded):
    """A study made when the study folder was the local-files root: display images in
    ``labelstudio/media``, tasks pointing there. ``loop labelstudio start`` (and a push) move
    the images under the new root and point the tasks at them; nothing is lost or doubled."""
    from typer.testing import CliRunner

    from loop.cli import app

    with open_study(guarded) as study:
        admin = connect(study)
        push(study, admin, select_for_push(study, split="pool"), overlap=2)
        project = next(study.store.db["tasks"].rows)["project"]
        shown = next((study.path / "labelstudio" / "public" / "media").glob("*.png"))
        legacy = study.path / "labelstudio" / "media"
        legacy.mkdir()
        (legacy / "old.png").write_bytes(shown.read_bytes())
        (legacy / shown.name).write_bytes(shown.read_bytes())  # already moved: kept once
        old = admin._json(
            "POST",
            f"/api/projects/{project}/import",
            what="import",
            json=[{"data": {"image": "/data/local-files/?d=labelstudio/media/old.png"}}],
            params={"return_task_ids": "true"},
        )["task_ids"][0]
        before = admin._json("GET", f"/api/projects/{project}", what="read")["task_number"]
    result = CliRunner().invoke(app, ["labelstudio", "start", str(guarded)])
    assert result.exit_code == 0, result.output
    assert not legacy.exists()
    assert (study.path / "labelstudio" / "public" / "media" / "old.png").is_file()
    task = admin._json("GET", f"/api/tasks/{old}", what="read a task")
    assert task["data"]["image"] == "/data/local-files/?d=media/old.png"
    served = admin._call("GET", task["data"]["image"], what="read the image")
    assert served.content[:4] == b"\x89PNG"
    assert admin._json("GET", f"/api/projects/{project}", what="read")["task_number"] == before
    admin.move_legacy_media()  # nothing left to do: a no-op
    admin.close()
