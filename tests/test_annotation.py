"""Push, simulate and pull against a real Label Studio (one server per test session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import one_dsb_study, remote_env
from scipy import ndimage as ndi
from test_ingest import dump

from connectors.ls_web import web_login
from loop.annotate.preannotations import preannotation_of
from loop.annotate.pull import pull
from loop.annotate.push import push, select_for_push
from loop.cli.wiring import add_annotators, connect, connect_as, server_of, simulate
from loop.core.effort import edits, effort
from loop.core.images import read_mask
from loop.errors import PushRefused, ToolRejected, ToolUnreachable
from loop.faults import CRASH_EXIT_CODE
from loop.noise import PROFILES
from loop.reports.status import study_status
from loop.study import init_study, open_study
from loop.types import Prediction

pytestmark = pytest.mark.slow
PROFILE_OF = {"alice": "perfect", "bob": "average", "carol": "sloppy"}


def eroded_truth(study):
    """A stand-in model: the ground truth eroded by one pixel, as a pre-annotation."""

    def predict(image):
        truth = study.store.truth(image["id"])
        mask = read_mask(truth["mask_path"], (image["height"], image["width"]))
        return Prediction(
            mask=np.where(ndi.binary_erosion(mask > 0), mask, 0),
            score=0.5,
            model_version="eroded-truth",
        )

    return predict


def test_push_simulate_pull_round_trip(ls_study):
    with open_study(ls_study) as study:
        tool = connect(study)
        added = add_annotators(study, tool, list(PROFILE_OF))
        assert [a.name for a in added] == ["alice", "bob", "carol"]
        assert len({a.user_id for a in added}) == 3
        # idempotent: the same names again create nothing
        assert not any(a.created for a in add_annotators(study, tool, list(PROFILE_OF)))
        # a profile given once is kept, and stays with its own annotator
        add_annotators(study, tool, ["alice"], profile="perfect")
        again = add_annotators(study, tool, ["alice", "bob"])
        assert [a.profile for a in again] == ["perfect", None]

        images = select_for_push(study, split="pool", limit=20)
        report = push(study, tool, images, overlap=3, predictions=eroded_truth(study))
        assert (report.created, report.already) == (20, 0)
        sim = simulate(study, tool, {n: PROFILES[p] for n, p in PROFILE_OF.items()}, seed=0)
        assert sim.annotated == {"alice": 20, "bob": 20, "carol": 20}

        first = pull(study, tool)
        assert (first.new, first.malformed, first.tasks_done) == (60, [], 20)
        rows = list(study.store.db["annotations"].rows)
        assert len(rows) == 60
        by_task = {}
        for row in rows:
            by_task.setdefault(row["task_id"], set()).add(row["annotator"])
        # Label Studio's queue gave every task to 3 distinct annotators
        assert all(names == set(PROFILE_OF) for names in by_task.values())
        # the noise-free annotator's masks are exactly the ground truth (up to relabelling)
        for row in (r for r in rows if r["annotator"] == "alice"):
            image = study.store.image(row["image_id"])
            truth = read_mask(
                study.store.truth(row["image_id"])["mask_path"], (image["height"], image["width"])
            )
            got = read_mask(study.path / row["mask_path"], truth.shape)
            assert np.array_equal(got > 0, truth > 0)
            assert got.max() == len(np.unique(truth)) - 1
            assert json.loads(row["result"])["result"][0]["type"] == "brushlabels"
        # lead times were recorded
        assert all(r["lead_time"] and r["lead_time"] > 0 for r in rows)
        # the pre-annotations are in Label Studio
        external = study.store.db["tasks"].get(rows[0]["task_id"])["external_id"]
        task = tool._json("GET", f"/api/tasks/{external}", what="get a task")
        assert task["predictions"][0]["model_version"] == "eroded-truth"
        # each annotation's edits of the pre-annotation it started from, and their effort
        for row in rows:
            pre = preannotation_of(study, row["task_id"])
            mine = read_mask(study.path / row["mask_path"], pre.shape)
            assert json.loads(row["edits"]) == edits(pre, mine).as_dict()
            assert row["effort"] == pytest.approx(effort(edits(pre, mine)))
        # the perfect annotator keeps most of the model's objects (it only redraws remnants
        # of tiny objects that the erosion all but removed)
        alices = [json.loads(r["edits"]) for r in rows if r["annotator"] == "alice"]
        kept = sum(e["accepted"] + e["corrected"] for e in alices)
        pre_objects = sum(
            len(np.unique(preannotation_of(study, r["task_id"]))) - 1
            for r in rows
            if r["annotator"] == "alice"
        )
        assert kept >= 0.8 * pre_objects
        spent = study_status(study).annotation["effort"]
        assert set(spent) == set(PROFILE_OF) and all(e["annotations"] == 20 for e in spent.values())
        assert spent["carol"]["effort"] != spent["alice"]["effort"]

        # a second push and pull change nothing
        before = dump(study.store.path)
        again = push(study, tool, images, overlap=3)
        assert (again.created, again.already) == (0, 20)
        second = pull(study, tool)  # incremental: the tasks updated since the first began
        assert (second.new, second.updated, second.deleted, second.full) == (0, 0, 0, False)
        assert second.unchanged == second.tasks_seen * 3 <= 60
        third = pull(study, tool, full=True)
        assert (third.new, third.updated, third.unchanged, third.full) == (0, 0, 60, True)
        assert dump(study.store.path) == before
        tool.close()


def test_annotators_are_real_accounts_that_log_in(ls_study):
    with open_study(ls_study) as study:
        tool = connect(study)
        add_annotators(study, tool, ["dora"])
        creds = server_of(study).credentials()["annotators"]["dora"]
        session = web_login(tool.url, creds["email"], creds["password"])
        assert session.get("/api/current-user/whoami").json()["email"] == creds["email"]
        # the image of a task is served to the annotator
        task = next(iter(study.store.db["tasks"].rows), None)
        if task is not None:
            data = session.get(f"/api/tasks/{task['external_id']}").json()["data"]
            image = session.get(data["image"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        session.close()
        with pytest.raises(ToolRejected, match="did not accept the login"):
            web_login(tool.url, creds["email"], "wrong-password")
        tool.close()


def test_updated_and_deleted_annotations_are_versioned(ls_study):
    with open_study(ls_study) as study:
        tool = connect(study)
        add_annotators(study, tool, ["erin"])
        erin = connect_as(study, "erin", tool)
        images = select_for_push(study, split="pool", limit=22)[20:]
        push(study, tool, images, overlap=1)
        first = next(erin.next_task(p["project"]) for p in study.store.db["tool_projects"].rows)
        ann_id = erin.annotate(str(first["id"]), [], lead_time=1.0)
        pull(study, tool)
        row = next(study.store.db["annotations"].rows_where("annotator = 'erin'"))
        assert row["n_objects"] == 0 and row["version"] == 1
        # erin redraws: one object
        image = study.store.image(row["image_id"])
        mask = np.zeros((image["height"], image["width"]), np.int32)
        mask[5:15, 5:15] = 1
        from connectors.ls_results import mask_to_results

        erin._json(
            "PATCH",
            f"/api/annotations/{ann_id}",
            what="update",
            json={"result": mask_to_results(mask)},
        )
        report = pull(study, tool)
        assert report.updated == 1
        row = next(study.store.db["annotations"].rows_where("annotator = 'erin'"))
        assert (row["n_objects"], row["version"], row["status"]) == (1, 2, "current")
        assert study.store.db["annotation_versions"].count_where("annotator = 'erin'") == 1
        # erin deletes it
        erin._call("DELETE", f"/api/annotations/{ann_id}", what="delete")
        report = pull(study, tool)
        assert report.deleted == 1
        row = next(study.store.db["annotations"].rows_where("annotator = 'erin'"))
        assert (row["status"], row["version"]) == ("deleted", 3)
        assert study.store.db["annotation_versions"].count_where("annotator = 'erin'") == 2
        erin.close()
        tool.close()


def test_tiles_only_for_segmentation_annotation(cls_study, ls_study):
    from loop.core.tiles import Tiling

    with pytest.raises(PushRefused, match="--tile: only segmentation images are annotated"):
        push(cls_study, None, [], tiling=Tiling())
    with open_study(ls_study) as study:
        with pytest.raises(PushRefused, match="a review shows the whole image"):
            push(study, None, [], purpose="adjudicate", tiling=Tiling())


def test_test_images_are_never_pushed(ls_study):
    with open_study(ls_study) as study:
        test_image = study.store.images("split = 'test'")[0]
        with pytest.raises(
            PushRefused, match=r"cannot be annotated: .*\(test\); test images are held out"
        ):
            select_for_push(study, image_ids=[test_image["id"]])
        with pytest.raises(PushRefused, match="only pool or labeled images"):
            select_for_push(study, split="test")
        with pytest.raises(PushRefused, match="no image with id 99999"):
            select_for_push(study, image_ids=[99999])


def test_killed_push_resumes_with_one_task_per_image(ls_study, tmp_path, nuclei_folder):
    """Another study on the same server, as a remote one (LABEL_STUDIO_URL): images are sent
    as data URIs."""
    env = {**os.environ, **remote_env(ls_study)}
    env.pop("LOOP_CRASH_AT", None)
    study_dir = tmp_path / "remote"
    with init_study(study_dir) as study:
        from loop.data.ingest import ingest

        ingest(study, nuclei_folder / "images", masks=nuclei_folder / "masks")

    def loop_cli(*args, crash=None):
        e = {**env, **({"LOOP_CRASH_AT": crash} if crash else {})}
        return subprocess.run(
            [sys.executable, "-m", "loop.cli", *map(str, args)],
            env=e,
            capture_output=True,
            text=True,
        )

    killed = loop_cli("push", study_dir, "--limit", "6", "--overlap", "2", crash="push.created")
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    with open_study(study_dir) as study:
        assert study.store.db["tasks"].count_where("status = 'pending'") == 6
    resumed = loop_cli("push", study_dir, "--limit", "6", "--overlap", "2", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {
        "project": json.loads(resumed.stdout)["project"],
        "created": 0,
        "adopted": 6,
        "already_pushed": 6,
        "tasks": 6,
        "tiled_images": 0,
    }
    with open_study(study_dir) as study:
        project = next(study.store.db["tool_projects"].rows)["project"]
        tool = connect_as_admin_remote(study, env)
        in_tool = [t for page in tool.iter_tasks(project) for t in page]
        assert len(in_tool) == 6 and len({t.key for t in in_tool}) == 6
        data = tool._json("GET", f"/api/tasks/{in_tool[0].external_id}", what="get a task")["data"]
        assert data["image"].startswith("data:image/png;base64,")
        tool.close()


def connect_as_admin_remote(study, env):
    from connectors.labelstudio import LabelStudio

    return LabelStudio(env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"], study_root=study.path)


def test_no_token_or_password_in_the_store_or_log(ls_study):
    with open_study(ls_study) as study:
        creds = server_of(study).credentials()
        secrets = [creds["admin"]["token"], creds["admin"]["password"]]
        for person in creds.get("annotators", {}).values():
            secrets += [person["token"], person["password"]]
        study.store.db.execute("PRAGMA wal_checkpoint(FULL)")
    blob = b"".join(p.read_bytes() for p in ls_study.glob("loop.db*"))
    assert len(secrets) >= 4 and not any(s.encode() in blob for s in secrets)
    assert "token" not in (ls_study / "loop.toml").read_text().lower()


def test_killed_account_creation_resumes(ls_study):
    """Killed right after the sign-up: the re-run finds the account (the password was saved
    first) instead of failing on an email already in use."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")
    }
    cmd = [sys.executable, "-m", "loop.cli", "annotators", "add", str(ls_study), "frank"]
    killed = subprocess.run(
        cmd, env={**env, "LOOP_CRASH_AT": "annotators.signed_up"}, capture_output=True, text=True
    )
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    with open_study(ls_study) as study:
        assert server_of(study).credentials()["annotators"]["frank"]["signed_up"] is False
    env.pop("LOOP_CRASH_AT", None)
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with open_study(ls_study) as study:
        creds = server_of(study).credentials()["annotators"]["frank"]
        assert creds["signed_up"] is True and creds["token"]
        session = web_login(connect(study).url, creds["email"], creds["password"])
        assert session.get("/api/current-user/whoami").json()["email"] == creds["email"]
        session.close()
        assert study.store.db["annotators"].count_where("name = 'frank'") == 1


def test_server_killed_mid_pull_then_restart_finishes(ls_study):
    """Runs last in this module: it stops and restarts the session's server."""
    with open_study(ls_study) as study:
        server = server_of(study)
        tool = connect(study, retries=2, backoff=0.2)
        with study.store.atomic() as db:  # as if never pulled
            db.execute("DELETE FROM annotation_versions")
            db.execute("DELETE FROM annotations")
        before_tasks = dump(study.store.path)["tasks"]

        def kill_after_first_page(done, total):
            if done >= 10:
                server.stop()

        with pytest.raises(
            ToolUnreachable, match=r"did not list tasks after 3 attempts .*loop labelstudio start"
        ):
            pull(study, tool, page_size=10, full=True, progress=kill_after_first_page)
        partial = study.store.db["annotations"].count
        assert 0 < partial < 60  # whole tasks of the first page only
        per_task = study.store.db.execute(
            "SELECT task_id, count(*) FROM annotations GROUP BY task_id"
        ).fetchall()
        assert all(n in (1, 3) for _, n in per_task)  # no task half-written
        assert dump(study.store.path)["tasks"] == before_tasks
        tool.close()

        server.start(timeout=300)
        tool = connect(study)
        report = pull(study, tool, full=True)
        assert report.new == study.store.db["annotations"].count - partial
        assert study.store.db["annotations"].count_where("status = 'current'") >= 60
        tool.close()


def test_a_polygon_is_malformed_and_never_blocks_a_later_push(ls_study):
    with open_study(ls_study) as study:
        tool = connect(study)
        add_annotators(study, tool, ["pia"])
        pia = connect_as(study, "pia", tool)
        images = select_for_push(study, split="pool", limit=24)[22:]
        push(study, tool, images[:1], overlap=1)
        task = next(pia.next_task(p["project"]) for p in study.store.db["tool_projects"].rows)
        image = images[0]  # the only one pushed
        polygon = {
            "id": "poly1",
            "from_name": "label",
            "to_name": "image",
            "type": "polygonlabels",
            "original_width": image["width"],
            "original_height": image["height"],
            "value": {"points": [[10, 10], [30, 10], [20, 30]], "polygonlabels": ["Object"]},
        }
        pia.annotate(str(task["id"]), [polygon], lead_time=1.0)
        pulled = pull(study, tool)
        row = next(study.store.db["annotations"].rows_where("annotator = 'pia'"))
        assert row["status"] == "malformed" and row["n_objects"] is None
        assert any("is a polygonlabels region" in m for m in pulled.malformed)
        from loop.reports.status import study_status

        assert study_status(study).annotation["malformed"] == {"pia": 1}  # loop status says it
        # the same annotator saves a second annotation of the task, typed PolygonLabels: the
        # newest counts (malformed, not an empty mask), and the older one is said, not dropped
        first = row["external_id"]
        second = pia.annotate(str(task["id"]), [{**polygon, "type": "PolygonLabels"}])
        pulled = pull(study, tool)
        row = next(study.store.db["annotations"].rows_where("annotator = 'pia'"))
        assert (row["external_id"], row["status"]) == (second, "malformed")
        assert any("is a PolygonLabels region" in m for m in pulled.malformed)
        assert (
            len(pulled.superseded) == 1
            and f"pia made 2 annotations; the newest ({second}) "
            f"counts, the older ({first}) stay in the tool"
            in pulled.superseded[0]
        )
        # the label config is unchanged: a later push does not resend it, so it succeeds
        report = push(study, tool, images[1:], overlap=1)
        assert report.created == 1
        # a task made in Label Studio by hand is reported by pull, not silently passed over
        project = next(study.store.db["tool_projects"].rows)["project"]
        tool._json(
            "POST",
            f"/api/projects/{project}/import",
            what="import",
            json=[{"data": {"image": "/data/local-files/?d=elsewhere.png"}}],
        )
        pulled = pull(study, tool)
        assert pulled.unknown_tasks == 1 and pulled.unknown_accounts == []
        # an annotation by an account the study does not know (the owner's) is kept, and said
        task = next(study.store.db["tasks"].rows_where("image_id = ?", [images[1]["id"]]))
        tool.annotate(str(task["external_id"]), [], lead_time=1.0)
        pulled = pull(study, tool)
        assert len(pulled.unknown_accounts) == 1 and pulled.unknown_accounts[0].startswith("user")
        pia.close()
        tool.close()


def test_pull_asks_only_for_updated_tasks_and_adopts_duplicates(ls_study):
    import time

    from connectors.labelstudio import KEY_FIELD
    from loop.annotate.pull import CLOCK_MARGIN
    from loop.reports.status import study_status

    with open_study(ls_study) as study:
        tool = connect(study)
        add_annotators(study, tool, ["ida", "jay"])
        ida, jay = connect_as(study, "ida", tool), connect_as(study, "jay", tool)
        images = select_for_push(study, split="pool", limit=27)[24:]
        push(study, tool, images, overlap=2)
        tasks = [
            next(study.store.db["tasks"].rows_where("image_id = ?", [image["id"]]))
            for image in images
        ]
        ida.annotate(tasks[0]["external_id"], [], lead_time=1.0)
        assert pull(study, tool, full=True).full
        time.sleep(CLOCK_MARGIN.total_seconds() + 2)  # the tool's clock has seconds
        pull(study, tool)  # its clock is past ida's annotation
        ida.annotate(tasks[1]["external_id"], [], lead_time=1.0)
        report = pull(study, tool)
        assert (report.full, report.tasks_seen, report.new) == (False, 1, 1)
        # an edit and a deletion touch the task: the next pull sees them
        jay_id = jay.annotate(tasks[1]["external_id"], [], lead_time=1.0)
        report = pull(study, tool)
        assert (report.tasks_seen, report.new) == (1, 1)
        jay._call("DELETE", f"/api/annotations/{jay_id}", what="delete")
        report = pull(study, tool)
        assert (report.tasks_seen, report.new, report.deleted) == (1, 0, 1)

        # a duplicate of one of our tasks (its data carries our key) is adopted: its
        # annotations count as the task's, beside those of the task itself
        unknown_before = report.unknown_tasks
        project = tasks[2]["project"]
        data = {"image": "/data/local-files/?d=media/dup.png", KEY_FIELD: tasks[2]["id"]}
        dup = tool._json(
            "POST",
            f"/api/projects/{project}/import",
            what="import",
            json=[{"data": data}],
            params={"return_task_ids": "true"},
        )["task_ids"][0]
        ida.annotate(str(dup), [], lead_time=1.0)
        jay.annotate(tasks[2]["external_id"], [], lead_time=1.0)
        report = pull(study, tool)
        assert (report.adopted, report.new, report.unknown_tasks) == (1, 2, unknown_before)
        rows = study.store.db["annotations"].rows_where("task_id = ?", [tasks[2]["id"]])
        assert sorted((r["annotator"], r["status"]) for r in rows) == [
            ("ida", "current"),
            ("jay", "current"),
        ]
        assert study.store.db["tasks"].get(tasks[2]["id"])["status"] == "done"
        # read whole again: nothing changes, nothing is adopted twice
        again = pull(study, tool, full=True)
        assert (again.adopted, again.new, again.updated, again.deleted) == (0, 0, 0, 0)
        assert study.store.db["task_aliases"].count == 1
        assert study_status(study).annotation["unmapped_tasks"] == unknown_before
        ida.close()
        jay.close()
        tool.close()


def test_an_annotation_saved_by_someone_else_is_flagged_and_not_used(ls_study):
    """The Community edition lets any member update anyone's annotation in the Data Manager
    (on a lab's own server; the study's embedded server refuses it to annotators, but not to
    the admin): pull must not count such an edit as the author's drawing."""
    from connectors.ls_results import mask_to_results
    from loop.reports.status import study_status
    from loop.store.annotations import annotations_of_task

    with open_study(ls_study) as study:
        tool = connect(study)
        add_annotators(study, tool, ["ola", "pel"])
        ola, pel = connect_as(study, "ola", tool), connect_as(study, "pel", tool)
        (image,) = select_for_push(study, split="pool", limit=28)[27:]
        push(study, tool, [image], overlap=2)
        task = next(
            study.store.db["tasks"].rows_where(
                "image_id = ? AND purpose = 'annotate'", [image["id"]]
            )
        )
        truth = read_mask(
            study.store.truth(image["id"])["mask_path"], (image["height"], image["width"])
        )
        drawn = mask_to_results(truth, prefix="ola-")
        ola.annotate(str(task["external_id"]), drawn, lead_time=5.0)
        pull(study, tool)

        def olas():
            return next(study.store.db["annotations"].rows_where("annotator = 'ola'"))

        assert olas()["status"] == "current"
        # pel may not save ola's annotation; the admin's account may, with one object less
        path = f"/api/annotations/{olas()['external_id']}"
        with pytest.raises(ToolRejected, match="this annotation belongs to another account"):
            pel._json("PATCH", path, what="edit", json={"result": drawn[1:]})
        tool._json("PATCH", path, what="edit", json={"result": drawn[1:]})
        pulled = pull(study, tool)
        assert olas()["status"] == "edited" and olas()["mask_path"]  # kept, with its mask
        assert any("last saved by user" in line for line in pulled.edited)
        assert study_status(study).annotation["edited"] == {"ola": 1}
        assert "ola" not in {a["annotator"] for a in annotations_of_task(study.store, task["id"])}
        # ola saves it again (her drawing back): resolved, used again
        ola._json("PATCH", path, what="restore", json={"result": drawn})
        pulled = pull(study, tool)
        assert olas()["status"] == "current" and pulled.edited == []
        for client in (ola, pel, tool):
            client.close()


def test_several_kinds_of_object_from_label_studio_to_the_export(ls_study, tmp_path, monkeypatch):
    """``[labels] others``: the label config offers them, each annotator's relabelled objects
    come back with their class, agreement is given per class, the consensus takes each object's
    class by majority, and the export lists every object's class."""
    import csv

    from connectors.ls_results import label_values, mask_to_results
    from loop.annotate.consensus import agree
    from loop.reports.export import export

    for key, value in remote_env(ls_study).items():
        monkeypatch.setenv(key, value)
    toml = 'task = "segmentation"\n[labels]\nothers = ["mitotic figure"]\n'
    with open_study(one_dsb_study(tmp_path / "kinds", toml, tmp_path / "data")) as study:
        (image,) = study.store.images()
        tool = connect(study)
        add_annotators(study, tool, ["kai", "lux", "moe"])
        push(study, tool, [image], overlap=3)
        task = next(study.store.db["tasks"].rows)
        project = tool._json("GET", f"/api/projects/{task['project']}", what="read the project")
        assert label_values(project["label_config"]) == ["nucleus", "mitotic figure", "nucleus?"]
        truth = read_mask(
            study.store.truth(image["id"])["mask_path"], (image["height"], image["width"])
        )
        marked = {"kai": (0, 1), "lux": (0, 1), "moe": (0,)}
        for name, indices in marked.items():
            results = mask_to_results(truth, label="nucleus")
            for i in indices:
                results[i]["value"]["brushlabels"] = ["mitotic figure"]
            connect_as(study, name, tool).annotate(str(task["external_id"]), results)
        pull(study, tool)
        rows = {r["annotator"]: r for r in study.store.db["annotations"].rows}
        kinds = json.loads(rows["moe"]["object_classes"])
        assert kinds[0] == "mitotic figure" and set(kinds[1:]) == {"nucleus"}

        report = agree(study, min_agreement=0.0)
        per_class = report.overall["per_class"]
        # mitotic figures: kai|lux 1.0, each against moe's one of their two: F1 2/3
        assert per_class["nucleus"] < 1.0 and np.isclose(per_class["mitotic figure"], 7 / 9)
        consensus = next(study.store.db["labels"].rows_where("source = 'consensus'"))
        voted = json.loads(consensus["object_classes"])
        assert voted.count("mitotic figure") == 2 and len(voted) == len(np.unique(truth)) - 1

        out = export(study, tmp_path / "export")
        with open(out.objects, newline="") as handle:
            objects = list(csv.DictReader(handle))
        assert [o["class"] for o in objects].count("mitotic figure") == 2
        with open(out.provenance, newline="") as handle:
            (row,) = list(csv.DictReader(handle))
        assert "mitotic figure=2" in row["object_classes"]
        tool.close()


def test_pixel_classes_round_trip_exactly_through_label_studio(ls_remote, tmp_path, monkeypatch):
    """A semantic study on the session's server: the truth pre-painted one region per class,
    three simulated annotators, pulled back as class maps (the perfect one's exact to the
    pixel, class by class), agreement per class and a consensus by pixel majority."""
    import tifffile

    from loop.annotate.consensus import agree
    from loop.core.classmaps import with_unsure
    from loop.data.ingest import ingest
    from loop.data.split import split_study

    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)
    classes = ("background", "disc", "square")
    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    truths = {}
    rng = np.random.default_rng(0)
    for i in range(4):
        rows, cols = np.mgrid[:60, :80]
        classmap = np.zeros((60, 80), np.uint8)
        classmap[(rows - 20 - 3 * i) ** 2 + (cols - 25) ** 2 < 100] = 1
        classmap[35:50, 45 + i : 70] = 2
        image = (classmap * 80 + rng.normal(30, 5, classmap.shape)).clip(0, 255).astype(np.uint8)
        tifffile.imwrite(images / f"s{i}.tif", image)
        tifffile.imwrite(masks / f"s{i}.tif", classmap)
        truths[f"s{i}"] = classmap
    toml = tmp_path / "semantic.toml"
    toml.write_text(
        'task = "semantic"\n[labels]\nclasses = ["background", "disc", "square"]\n'
        "unsure_probability = 0.5\n"
        '[rounds]\nannotators = ["sem-alice", "sem-bob", "sem-carol"]\n'
    )
    profiles = {"sem-alice": "perfect", "sem-bob": "average", "sem-carol": "sloppy"}
    with init_study(tmp_path / "study", config=toml) as study:
        ingest(study, images, masks=masks)
        split_study(study, test=0, initial=0)
        tool = connect(study)
        add_annotators(study, tool, list(profiles))

        def truth_painted(image):  # the model doubts the left half of each disc
            truth = truths[image["name"]]
            probability = np.ones(truth.shape)
            probability[:, :25] = 0.3
            mask, names = with_unsure(truth, probability, classes, 0.5)
            return Prediction(mask=mask, labels=names, model_version="truth")

        pushed = push(
            study, tool, select_for_push(study, split="pool"), overlap=3, predictions=truth_painted
        )
        assert pushed.created == 4
        external = next(study.store.db["tasks"].rows)["external_id"]
        task = tool._json("GET", f"/api/tasks/{external}", what="get a task")
        painted = task["predictions"][0]["result"]
        assert sorted(r["value"]["brushlabels"][0] for r in painted) == ["disc", "disc?", "square"]
        project = tool._json("GET", f"/api/projects/{task['project']}", what="get the project")
        assert '<Label value="disc"' in project["label_config"]
        assert '<Label value="disc?" background="#ffb000"' in project["label_config"]
        assert '<Label value="background"' not in project["label_config"]  # left unpainted

        simulate(study, tool, {n: PROFILES[p] for n, p in profiles.items()}, seed=0)
        report = pull(study, tool)
        assert (report.new, report.malformed) == (12, [])
        for row in study.store.db["annotations"].rows:
            name = study.store.image(row["image_id"])["name"]
            got = read_mask(study.path / row["mask_path"], (60, 80))
            if row["annotator"] == "sem-alice":
                for k in range(3):
                    assert np.array_equal(got == k, truths[name] == k), (name, k)
                # the truth was pre-painted: kept as it was, each class area accepted
                assert json.loads(row["edits"]) == {
                    "accepted": 2, "corrected": 0, "deleted": 0, "drawn": 0, "split": 0,
                    "merged": 0,
                }  # fmt: skip
            assert set(np.unique(got)) <= {0, 1, 2}
        agreement = agree(study, min_agreement=0.0, against_truth=True)
        assert set(agreement.overall["per_class"]) == {"disc", "square"}
        assert agreement.against_truth["annotators"]["sem-alice"]["dice"] == 1.0
        assert agreement.against_truth["consensus"]["dice"] > 0.9
        # a reviewer would see each annotator's painting and their consensus, classes named
        from loop.annotate.adjudicate import _versions

        versions = _versions(study, agreement.tasks[0], "staple")
        assert [v.labels for v in versions] == [classes] * 4
        assert versions[-1].model_version == "consensus (staple)"
        assert set(np.unique(versions[-1].mask)) <= {0, 1, 2}
        consensus = [r for r in study.store.db["labels"].rows_where("source = 'consensus'")]
        assert len(consensus) == 4
        tool.close()


def test_a_region_painted_with_no_class_is_a_malformed_annotation(tmp_path):
    """Pull's reading of a semantic annotation (the tool faked: only its decoded regions
    matter here): a region named after no class of ``[labels] classes`` is malformed."""
    from loop.annotate.pull import _convert
    from loop.errors import MalformedAnnotation
    from loop.types import ToolAnnotation

    class Tool:
        def to_objects(self, result, shape):
            return np.array([[0, 1], [2, 2]]), ["nucleus", result]

    (tmp_path / "c.toml").write_text('task = "semantic"\n[labels]\nclasses = ["bg", "nucleus"]\n')
    with init_study(tmp_path / "s", config=tmp_path / "c.toml") as study:
        image, task = {"height": 2, "width": 2}, {"tile": None}

        def convert(name):
            return _convert(study, Tool(), task, image, ToolAnnotation("1", "2", "3", name))

        classes, klass, n, _ = convert("nucleus")
        assert classes.tolist() == [[0, 1], [1, 1]] and klass is None and n == 1
        with pytest.raises(MalformedAnnotation, match="painted as 'mito', which is no class"):
            convert("mito")
