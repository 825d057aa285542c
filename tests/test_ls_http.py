"""The HTTP layer of the Label Studio client: retries, errors, tokens, with the network faked
(httpx.MockTransport)."""

import httpx
import pytest

from connectors.ls_http import RestClient
from loop.errors import ToolRejected, ToolUnreachable

TOKEN = "s3cr3t-token-value"


def client(handler) -> RestClient:
    rest = RestClient("http://127.0.0.1:9", TOKEN, retries=2, backoff=0.001)
    rest.http = httpx.Client(base_url=rest.url, transport=httpx.MockTransport(handler))
    return rest


def whoami(rest: RestClient) -> dict:
    return rest._json("GET", "/api/current-user/whoami", what="say who the token belongs to")


def test_5xx_is_retried_then_a_clear_error():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(500, text="oops")

    with pytest.raises(
        ToolUnreachable,
        match=r"did not list tasks after 3 attempts \(HTTP 500\); check that the server runs",
    ) as info:
        client(handler)._call("GET", "/api/tasks", what="list tasks")
    assert len(calls) == 3
    assert TOKEN not in str(info.value)
    assert calls[0].headers["Authorization"] == f"Token {TOKEN}"


def test_transport_error_then_success():
    state = {"n": 0}

    def handler(request):
        state["n"] += 1
        if state["n"] == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"id": 1})

    assert whoami(client(handler)) == {"id": 1}
    assert state["n"] == 2


def test_4xx_is_not_retried_and_hides_the_token():
    def handler(request):
        return httpx.Response(403, text=f"bad token {TOKEN}")

    with pytest.raises(
        ToolRejected,
        match=r"refused to say who the token belongs to \(HTTP 403\): bad token \*\*\*",
    ):
        whoami(client(handler))


def test_personal_access_token_is_exchanged_and_refreshed():
    seen = []
    jwt = "aaa.bbb.ccc"

    def handler(request):
        seen.append((request.url.path, request.headers.get("Authorization")))
        if request.url.path == "/api/token/refresh":
            return httpx.Response(200, json={"access": f"access{len(seen)}"})
        if len([s for s in seen if s[0] != "/api/token/refresh"]) == 1:
            return httpx.Response(401)
        return httpx.Response(200, json={"id": 7})

    ls = RestClient("http://127.0.0.1:9", jwt, retries=2, backoff=0.001)
    ls.http = httpx.Client(base_url=ls.url, transport=httpx.MockTransport(handler))
    assert whoami(ls) == {"id": 7}
    assert [s[0] for s in seen] == [
        "/api/token/refresh",
        "/api/current-user/whoami",
        "/api/token/refresh",
        "/api/current-user/whoami",
    ]
    assert seen[-1][1] == "Bearer access3"
    assert "aaa" not in repr(ls)


def test_refused_personal_access_token():
    ls = RestClient("http://127.0.0.1:9", "a.b.c", retries=0)
    ls.http = httpx.Client(
        base_url=ls.url, transport=httpx.MockTransport(lambda r: httpx.Response(401))
    )
    with pytest.raises(ToolRejected, match="refused the personal access token"):
        whoami(ls)


def test_a_server_that_takes_the_request_and_never_answers_is_waited_for_once():
    """A hung server (it accepts the connection, never answers): one bounded wait, then one
    clear error that says what was asked and what to do; the request is not sent again."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)  # held open, never answered

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    rest = RestClient(url, TOKEN, retries=4, backoff=0.01, timeout=1.5)
    start = time.monotonic()
    with pytest.raises(
        ToolUnreachable, match=r"took the request to list tasks but did not answer within 1.5 s"
    ) as info:
        rest._call("GET", "/api/tasks", what="list tasks")
    assert time.monotonic() - start < 5
    assert len(accepted) == 1 and TOKEN not in str(info.value)
    rest.close()
    listener.close()
    for conn in accepted:
        conn.close()
