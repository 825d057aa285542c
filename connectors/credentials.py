"""Secrets of a study's annotation tool: a JSON file with 0600 permissions.

It lives in the study folder (``labelstudio/credentials.json``), never in the repository, the
config or the database, and tokens are never logged. ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY`` in the environment take precedence over the file (an existing server).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from loop.errors import CredentialsError

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"


def read_credentials(path: Path) -> dict:
    """The credentials file's content, ``{}`` when it does not exist.

    Raises
    ------
    CredentialsError
        When the file is readable by others than its owner, or is not valid JSON.
    """
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CredentialsError(
            f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{path} is not valid JSON ({exc.msg}); fix or delete it") from exc


def write_credentials(path: Path, data: dict) -> None:
    """Write atomically with mode 0600 (created so, never world-readable even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def env_server() -> tuple[str, str] | None:
    """``(url, api_key)`` of an existing server named in the environment, else ``None``."""
    url, key = os.environ.get(URL_ENV), os.environ.get(KEY_ENV)
    if url and key:
        return url.rstrip("/"), key
    if url or key:
        missing = KEY_ENV if url else URL_ENV
        raise CredentialsError(f"{URL_ENV} and {KEY_ENV} go together: set {missing} too")
    return None
