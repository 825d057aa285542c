"""The Label Studio client's fault handling, with the network faked (httpx.MockTransport).
The real server is exercised in test_annotation.py."""

import httpx
import pytest

from connectors.labelstudio import LabelStudio
from loop.errors import ToolRejected, ToolUnreachable

TOKEN = "s3cr3t-token-value"


def client(handler, **kwargs) -> LabelStudio:
    ls = LabelStudio("http://127.0.0.1:9", TOKEN, retries=2, backoff=0.001, **kwargs)
    ls.http = httpx.Client(base_url=ls.url, transport=httpx.MockTransport(handler))
    return ls


def test_import_count_mismatch():
    ls = client(lambda r: httpx.Response(201, json={"task_ids": [1], "task_count": 1}))
    from loop.types import ToolTask

    tasks = [
        ToolTask(key=i, image_id=i, name="a", image_url="/x", height=2, width=2) for i in (1, 2)
    ]
    with pytest.raises(ToolRejected, match="imported 1 of 2 tasks"):
        ls.create_tasks("1", tasks)


def test_paging_stops_at_the_total_without_asking_past_the_last_page():
    asked = []

    def handler(request):
        page = int(request.url.params["page"])
        asked.append(page)
        if page > 2:
            return httpx.Response(404, json={"detail": "Invalid page."})
        tasks = [{"id": 10 * page + i, "data": {"loop_task_id": 10 * page + i}} for i in range(2)]
        return httpx.Response(200, json={"tasks": tasks, "total": 4})

    pages = list(client(handler).iter_tasks("1", page_size=2))
    assert [len(p) for p in pages] == [2, 2] and asked == [1, 2]


def test_next_task_is_none_when_the_queue_is_empty_and_retries_when_down():
    assert client(lambda r: httpx.Response(404, json={"detail": "no more"})).next_task("1") is None

    def down(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(ToolUnreachable, match="did not give the next task after 3 attempts"):
        client(down).next_task("1")


def test_updated_after_is_sent_as_the_data_managers_filter():
    import json
    from datetime import datetime, timezone

    seen = []

    def handler(request):
        seen.append(json.loads(request.url.params["query"]))
        return httpx.Response(200, json={"tasks": [], "total": 0})

    since = datetime(2026, 12, 2, 13, 5, 7, 250000, tzinfo=timezone.utc)
    assert list(client(handler).iter_tasks("1", updated_after=since)) == []
    (item,) = seen[0]["filters"]["items"]
    assert item == {
        "filter": "filter:tasks:updated_at",
        "operator": "greater",
        "type": "Datetime",
        "value": "2026-12-02T13:05:07.250000Z",
    }


def test_clock_reads_the_date_header_and_needs_one():
    from datetime import datetime, timezone

    stamped = client(
        lambda r: httpx.Response(200, json={}, headers={"Date": "Wed, 02 Dec 2026 13:05:07 GMT"})
    )
    assert stamped.clock() == datetime(2026, 12, 2, 13, 5, 7, tzinfo=timezone.utc)
    with pytest.raises(ToolRejected, match="sent no Date header; pull everything"):
        client(lambda r: httpx.Response(200, json={})).clock()


def test_one_tasks_detail_names_its_annotators_by_id():
    """A task's detail gives ``completed_by`` as the user object, the list as an id."""
    body = {
        "id": 7,
        "data": {"loop_task_id": 3},
        "annotations": [{"id": 9, "completed_by": {"id": 4, "email": "a@b"}, "result": []}],
    }
    state = client(lambda r: httpx.Response(200, json=body)).get_task("7")
    assert (state.key, state.annotations[0].user_external_id) == (3, "4")
    assert client(lambda r: httpx.Response(404, json={})).get_task("7") is None
