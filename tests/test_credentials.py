import os
import stat

import pytest

from connectors.credentials import env_server, read_credentials, write_credentials
from loop.errors import CredentialsError


def test_written_0600_and_read_back(tmp_path):
    path = tmp_path / "ls" / "credentials.json"
    write_credentials(path, {"admin": {"token": "secret"}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == {"admin": {"token": "secret"}}
    assert read_credentials(tmp_path / "none.json") == {}


def test_world_readable_file_is_refused(tmp_path):
    path = tmp_path / "credentials.json"
    write_credentials(path, {})
    os.chmod(path, 0o644)
    with pytest.raises(
        CredentialsError, match=r"readable by other users \(mode 644\); run `chmod 600"
    ):
        read_credentials(path)


def test_invalid_json(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text("{")
    os.chmod(path, 0o600)
    with pytest.raises(CredentialsError, match="is not valid JSON"):
        read_credentials(path)


def test_env_server(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert env_server() is None
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9/")
    with pytest.raises(CredentialsError, match="set LABEL_STUDIO_API_KEY too"):
        env_server()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k")
    assert env_server() == ("http://127.0.0.1:9", "k")
