"""The HTTP layer of the Label Studio client: one retry and error policy for every request.

Every request goes through :meth:`RestClient._call`: connection errors and 5xx are retried
with exponential backoff, then raised as :class:`~loop.errors.ToolUnreachable` saying what to
check; a server that takes the request and does not answer within the timeout is not asked
again (it is hung or overloaded, and a repeated POST could be done twice): one wait of
``timeout`` seconds, then the error; 4xx become :class:`~loop.errors.ToolRejected`. A legacy
API token is sent as ``Token``; a personal access token (a JWT refresh token) is exchanged
for an access token, refreshed once when it expires. Tokens are sent in headers only and never
appear in messages or in ``repr``.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx

from loop.errors import ToolRejected, ToolUnreachable


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


class RestClient:
    """Requests to a Label Studio server with one account's API token.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:8080``.
    token : str
        A legacy API token, or a personal access token (a JWT refresh token).
    retries, backoff, timeout : int, float, float
        Attempts after the first, first wait (doubled each time), seconds a request may wait
        for the server's answer (connecting: at most 10 s).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ):
        self.url = url.rstrip("/")
        self._token = token
        self.retries, self.backoff = retries, backoff
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )
        self._access: str | None = None
        self.seconds: Counter[str] = Counter()
        """Time spent per phase (``http``, ``encode``, ``decode``), for benchmarks and rounds."""

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict:
        if not _is_jwt(self._token):
            return {"Authorization": f"Token {self._token}"}
        if self._access is None:
            response = self.http.post("/api/token/refresh", json={"refresh": self._token})
            if response.status_code != 200:
                raise ToolRejected(
                    f"Label Studio at {self.url} refused the personal access token "
                    f"(HTTP {response.status_code}); create a new one in Account & Settings"
                )
            self._access = response.json()["access"]
        return {"Authorization": f"Bearer {self._access}"}

    def _call(
        self, method: str, path: str, *, what: str, missing_ok: bool = False, **kwargs
    ) -> httpx.Response | None:
        """One request with retries on transport errors and 5xx (``None`` for a 404 when
        ``missing_ok``)."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            start = time.perf_counter()
            try:
                response = self.http.request(method, path, headers=self._headers(), **kwargs)
            except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
                self.seconds["http"] += time.perf_counter() - start
                raise ToolUnreachable(
                    f"Label Studio at {self.url} took the request to {what} but did not answer "
                    f"within {self.timeout:g} s: it is hung or overloaded; "
                    "restart it (`loop labelstudio stop STUDY`, then `start`; its log is "
                    "STUDY/labelstudio/server.log) and run the command again"
                ) from exc
            except httpx.TransportError as exc:
                self.seconds["http"] += time.perf_counter() - start
                last = f"{type(exc).__name__}: {exc}"
                continue
            self.seconds["http"] += time.perf_counter() - start
            if response.status_code == 401 and self._access is not None:
                self._access = None  # expired access token: refresh once and retry
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code >= 400:
                detail = response.text[:300].replace(self._token, "***")
                raise ToolRejected(
                    f"Label Studio refused to {what} (HTTP {response.status_code}): {detail}"
                )
            return response
        raise ToolUnreachable(
            f"Label Studio at {self.url} did not {what} after {self.retries + 1} attempts "
            f"({last}); check that the server runs (`loop labelstudio start STUDY`, its log is "
            "STUDY/labelstudio/server.log) or that LABEL_STUDIO_URL is right"
        )

    def _json(self, method: str, path: str, *, what: str, **kwargs):
        return self._call(method, path, what=what, **kwargs).json()
