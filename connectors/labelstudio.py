"""Label Studio as the loop's annotation tool: projects, tasks, predictions, annotations,
annotator accounts. The only module that talks to Label Studio's REST API.

It calls the API with httpx rather than through ``label_studio_sdk``'s client, so that every
request shares one retry and error policy; the SDK (its brush codec) is the reference the
tests and ``make bench`` check our RLE codec against.

Every request goes through one retry and error policy (:mod:`connectors.ls_http`): transport
errors, timeouts and 5xx are retried, then raised as :class:`~loop.errors.ToolUnreachable`;
4xx become :class:`~loop.errors.ToolRejected`. Tokens are sent in headers only and never
appear in messages.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import numpy as np

from connectors.ls_boxes import results_to_boxes
from connectors.ls_http import RestClient
from connectors.ls_results import (
    KEY_FIELD,
    label_config,
    label_values,
    results_to_class,
    results_to_objects,
    same_config,
    task_payload,
    task_state,
)
from loop.annotate.push import LEGACY_MEDIA_DIR, MEDIA_DIR, PUBLIC_DIR
from loop.errors import ToolRejected
from loop.types import LabelSpec, ToolTask, ToolTaskState


class LabelStudio(RestClient):
    """A Label Studio server seen through one account's API token.

    Parameters
    ----------
    url, token, retries, backoff, timeout
        As :class:`connectors.ls_http.RestClient` (the server, the account's API token, the
        retry policy).
    study_root : path, optional
        The study folder (display images are written under it).
    serve_local : bool
        The server runs on this machine with ``STUDY/labelstudio/public`` as its local-files
        document root (the embedded server): tasks point at local files, and a local-files
        storage is added to each project. Otherwise (a remote server, which cannot read our
        disk) each task embeds its display PNG as a data URI.
    """

    name = "labelstudio"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        study_root: Path | None = None,
        serve_local: bool = False,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ):
        super().__init__(url, token, retries=retries, backoff=backoff, timeout=timeout)
        self.study_root = Path(study_root).resolve() if study_root else None
        self.serve_local = serve_local and self.study_root is not None
        self.labels = LabelSpec()
        """The objects' labels of the last project ensured (pre-annotations are drawn with it)."""

    # --- account ---------------------------------------------------------------------------

    def whoami(self) -> dict:
        return self._json("GET", "/api/current-user/whoami", what="say who the token belongs to")

    def invite_token(self) -> str:
        return self._json("GET", "/api/invite", what="give the organization's invite link")["token"]

    # --- projects --------------------------------------------------------------------------

    def ensure_project(
        self,
        *,
        title: str,
        control: str,
        classes: Sequence[str],
        overlap: int,
        existing: str | None,
        labels: LabelSpec | None = None,
        description: str = "",
    ) -> str:
        """The study's project: the recorded one, else one with the same title, else a new one.
        Its label config (the objects' names and colours; label values it already has are
        kept, so that annotations made with them stay valid), overlap, title, description and
        instructions, and local-files storage are brought up to date."""
        self.labels = labels or LabelSpec()
        settings = {
            "title": title,
            "description": description,
            "expert_instruction": description,
            "show_instruction": bool(description),
            "maximum_annotations": overlap,
            "show_overlap_first": True,
            "show_collab_predictions": True,
            "show_skip_button": True,
            "enable_empty_annotation": True,
            "sampling": "Sequential sampling",
        }
        project_id = existing
        if project_id is None:
            listing = self._json(
                "GET",
                "/api/projects",
                what="list projects",
                params={"title": title, "page_size": 100},
            )
            matches = [p for p in listing.get("results", []) if p.get("title") == title]
            project_id = str(matches[0]["id"]) if matches else None
        if project_id is None:
            config = label_config(control, classes, labels=self.labels)
            project = self._json(
                "POST",
                "/api/projects",
                what="create a project",
                json={**settings, "label_config": config},
            )
            project_id = str(project["id"])
        else:
            current = self._json("GET", f"/api/projects/{project_id}", what="read the project")
            config = label_config(
                control, classes, labels=self.labels, keep=label_values(current.get("label_config"))
            )
            if not same_config(current.get("label_config"), config):
                # sent only when changed: Label Studio re-validates every annotation then, and
                # one region of another tool would block every later push
                settings["label_config"] = config
            changed = {k: v for k, v in settings.items() if current.get(k) != v}
            if changed:
                try:
                    self._json(
                        "PATCH",
                        f"/api/projects/{project_id}",
                        what="update the project",
                        json=changed,
                    )
                except ToolRejected as exc:
                    if "label_config" not in changed or "incompatible" not in str(exc):
                        raise
                    raise ToolRejected(
                        f"Label Studio refuses the study's label config for project "
                        f"{project_id}: annotations made there do not fit it (e.g. a polygon "
                        "where brush masks are expected; `loop pull` stores them as malformed "
                        "with their task). Delete those regions in Label Studio, or keep the "
                        f"project's labels as they are ({exc})"
                    ) from exc
        if self.serve_local:
            self.move_legacy_media()
            self._ensure_storage(project_id)
        return project_id

    def move_legacy_media(self) -> None:
        """Once, for a study made when the whole study folder was the local-files root: move
        its display images under the new root, point every task of every project at them, and
        drop the old storages (run by ``loop labelstudio start`` and by every push). The
        legacy folder goes last, so a run stopped half way does the rest next time."""
        if not self.serve_local:
            return
        legacy = self.study_root / LEGACY_MEDIA_DIR
        if not legacy.is_dir():
            return
        media = self.study_root / MEDIA_DIR
        media.mkdir(parents=True, exist_ok=True)
        for path in legacy.iterdir():
            if path.is_file() and not (media / path.name).exists():
                os.replace(path, media / path.name)
        old = f"/data/local-files/?d={LEGACY_MEDIA_DIR.as_posix()}/"
        new = f"/data/local-files/?d={MEDIA_DIR.relative_to(PUBLIC_DIR).as_posix()}/"
        listing = self._json(
            "GET", "/api/projects", what="list projects", params={"page_size": 1000}
        )
        for project in listing.get("results", []):
            for page in self._pages(str(project["id"]), 500, "task_only"):
                for task in page:
                    data = task.get("data") or {}
                    image = data.get("image")
                    if isinstance(image, str) and image.startswith(old):
                        self._json(
                            "PATCH",
                            f"/api/tasks/{task['id']}",
                            what="point a task at its moved image",
                            json={"data": {**data, "image": new + image[len(old) :]}},
                        )
            storages = self._json(
                "GET",
                "/api/storages/localfiles",
                what="list local storages",
                params={"project": project["id"]},
            )
            for storage in storages:
                if Path(storage.get("path", "")) == legacy:
                    self._call(
                        "DELETE",
                        f"/api/storages/localfiles/{storage['id']}",
                        what="remove the old local-files storage",
                        missing_ok=True,
                    )
        shutil.rmtree(legacy)

    def _ensure_storage(self, project_id: str) -> None:
        storages = self._json(
            "GET",
            "/api/storages/localfiles",
            what="list local storages",
            params={"project": project_id},
        )
        media = self.study_root / MEDIA_DIR
        if not any(Path(s.get("path", "")) == media for s in storages):
            media.mkdir(parents=True, exist_ok=True)
            self._json(
                "POST",
                "/api/storages/localfiles",
                what="add a local-files storage",
                json={
                    "project": int(project_id),
                    "path": str(media),
                    "title": "loop media",
                    "use_blob_urls": False,
                    "regex_filter": r"^$",
                },
            )

    def media_url(self, relative_path: str) -> str:
        if self.serve_local:  # relative to the document root, which holds display images only
            served = Path(relative_path).relative_to(PUBLIC_DIR).as_posix()
            return f"/data/local-files/?d={served}"
        data = (self.study_root / relative_path).read_bytes()
        return "data:image/png;base64," + base64.b64encode(data).decode()

    # --- tasks -----------------------------------------------------------------------------

    def create_tasks(self, project: str, tasks: Sequence[ToolTask]) -> list[str]:
        start = time.perf_counter()
        body = [task_payload(t, self.labels) for t in tasks]
        self.seconds["encode"] += time.perf_counter() - start
        response = self._json(
            "POST",
            f"/api/projects/{project}/import",
            what="import tasks",
            json=body,
            params={"return_task_ids": "true"},
        )
        ids = response.get("task_ids")
        if not ids or len(ids) != len(tasks):
            raise ToolRejected(
                f"Label Studio imported {response.get('task_count')} of {len(tasks)} tasks"
            )
        return [str(i) for i in ids]

    def _pages(
        self, project: str, page_size: int, fields: str, query: dict | None = None
    ) -> Iterator[list[dict]]:
        page = 1
        params = {"project": project, "page_size": page_size, "fields": fields}
        if query is not None:
            params["query"] = json.dumps(query)
        while True:
            response = self._call(
                "GET", "/api/tasks", what="list tasks", params={**params, "page": page}
            )
            body = response.json()
            tasks = body.get("tasks", [])
            if tasks:
                yield tasks
            # stop by the total: past the last page Label Studio answers 404 "Invalid page"
            if not tasks or page * page_size >= body.get("total", 0):
                return
            page += 1

    def find_tasks(self, project: str, keys: set[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for page in self._pages(project, 500, "task_only"):
            for task in page:
                key = (task.get("data") or {}).get(KEY_FIELD)
                if key in keys and key not in found:
                    found[key] = str(task["id"])
        return found

    def clock(self) -> datetime:
        """The server's time now (its ``Date`` header, to the second), as a UTC datetime."""
        response = self._call("GET", "/api/current-user/whoami", what="read the server's clock")
        stamp = response.headers.get("date")
        if not stamp:
            raise ToolRejected(
                f"Label Studio at {self.url} sent no Date header; pull everything (`--full`)"
            )
        return parsedate_to_datetime(stamp).astimezone(timezone.utc)

    def iter_tasks(
        self, project: str, page_size: int = 100, *, updated_after: datetime | None = None
    ) -> Iterator[list[ToolTaskState]]:
        query = None
        if updated_after is not None:  # the Data Manager's filter, as its UI sends it
            value = updated_after.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            item = {
                "filter": "filter:tasks:updated_at",
                "operator": "greater",
                "type": "Datetime",
                "value": value,
            }
            query = {"filters": {"conjunction": "and", "items": [item]}}
        for page in self._pages(project, page_size, "all", query):
            yield [task_state(task) for task in page]

    def get_task(self, external_id: str) -> ToolTaskState | None:
        """One task with its annotations (``None`` when the tool has no such task)."""
        task = self._call("GET", f"/api/tasks/{external_id}", what="get a task", missing_ok=True)
        return None if task is None else task_state(task.json())

    def to_objects(self, result: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
        start = time.perf_counter()
        try:
            return results_to_objects(result, shape)
        finally:
            self.seconds["decode"] += time.perf_counter() - start

    def to_class(self, result: list) -> str | None:
        return results_to_class(result)

    def to_boxes(self, result: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
        return results_to_boxes(result, shape)

    # --- annotating (as this account) --------------------------------------------------------

    def next_task(self, project: str) -> dict | None:
        """The next task Label Studio's queue gives this account (``None`` when done)."""
        response = self._call(
            "GET", f"/api/projects/{project}/next", what="give the next task", missing_ok=True
        )
        return None if response is None else response.json()

    def annotate(
        self, task_id: str, result: list, *, lead_time: float | None = None, cancelled: bool = False
    ) -> str:
        body = {"result": result, "was_cancelled": cancelled}
        if lead_time is not None:
            body["lead_time"] = lead_time
        return str(
            self._json(
                "POST", f"/api/tasks/{task_id}/annotations/", what="save an annotation", json=body
            )["id"]
        )
