"""Push, simulate and pull against a real Label Studio (one server per test session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi
from test_ingest import dump

from connectors.accounts import add_annotators, connect, connect_as, server_of
from connectors.labelstudio import web_login
from connectors.simulated import PROFILES, simulate
from loop.annotation import pull, push, select_for_push
from loop.errors import PushRefused, ToolRejected, ToolUnreachable
from loop.faults import CRASH_EXIT_CODE
from loop.images import read_mask
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

        # a second push and pull change nothing
        before = dump(study.store.path)
        again = push(study, tool, images, overlap=3)
        assert (again.created, again.already) == (0, 20)
        second = pull(study, tool)
        assert (second.new, second.updated, second.unchanged) == (0, 0, 60)
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


def _remote_env(ls_study):
    with open_study(ls_study) as study:
        server = server_of(study)
        return {
            "LABEL_STUDIO_URL": server.info().url,
            "LABEL_STUDIO_API_KEY": server.credentials()["admin"]["token"],
        }


def test_killed_push_resumes_with_one_task_per_image(ls_study, tmp_path, nuclei_folder):
    """Another study on the same server, as a remote one (LABEL_STUDIO_URL): images are sent
    as data URIs."""
    env = {**os.environ, **_remote_env(ls_study)}
    env.pop("LOOP_CRASH_AT", None)
    study_dir = tmp_path / "remote"
    with init_study(study_dir) as study:
        from loop.ingest import ingest

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
            pull(study, tool, page_size=10, progress=kill_after_first_page)
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
        report = pull(study, tool)
        assert report.new == study.store.db["annotations"].count - partial
        assert study.store.db["annotations"].count_where("status = 'current'") >= 60
        tool.close()
