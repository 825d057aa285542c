import os

import pytest

from connectors.labelstudio_server import LabelStudioServer, find_executable, free_port, healthy
from loop.errors import ServerStartFailed, ToolUnreachable


def test_executable_from_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("LOOP_LABEL_STUDIO", str(tmp_path / "nope"))
    with pytest.raises(ServerStartFailed, match="LOOP_LABEL_STUDIO=.* is not a file"):
        find_executable()


def test_a_server_that_dies_gives_the_log_tail(tmp_path):
    fake = tmp_path / "label-studio"
    fake.write_text(
        "#!/bin/sh\necho 'starting up'\necho 'admin token abc'\n"
        "echo 'boom: port busy' >&2\nexit 3\n"
    )
    os.chmod(fake, 0o755)
    server = LabelStudioServer(tmp_path / "ls", tmp_path / "public", executable=str(fake))
    with pytest.raises(
        ServerStartFailed, match=r"(?s)exited with code 3 while starting.*boom: port busy"
    ) as info:
        server.start(timeout=20)
    assert "token" not in str(info.value)  # the log tail never shows token lines
    assert server.info() is None
    assert oct(os.stat(server.log_file).st_mode & 0o777) == "0o600"


def test_a_server_that_never_gets_healthy_is_stopped(tmp_path):
    fake = tmp_path / "label-studio"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    os.chmod(fake, 0o755)
    server = LabelStudioServer(tmp_path / "ls", tmp_path / "public", executable=str(fake))
    with pytest.raises(ServerStartFailed, match="was not healthy at http://127.0.0.1:.* after 2 s"):
        server.start(timeout=2)
    assert server.info() is None


def test_require_when_not_running(tmp_path):
    server = LabelStudioServer(
        tmp_path / "study" / "labelstudio", tmp_path / "study" / "labelstudio" / "public"
    )
    with pytest.raises(ToolUnreachable, match="not running; start it with `loop labelstudio start"):
        server.require()
    assert server.stop() is False


def test_free_port_and_health_of_nothing():
    port = free_port()
    assert 1024 < port < 65536
    assert healthy(f"http://127.0.0.1:{port}", timeout=0.5) is False


def test_the_server_data_folder_is_private_even_in_old_studies(tmp_path):
    """Label Studio keeps every API token in plain text in its SQLite file: the data folder
    is 0700 and its files 0600, also when an older study left them 0755 / 0644."""
    fake = tmp_path / "label-studio"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "--data-dir" ]; do shift; done\n'
        'touch "$2/label_studio.sqlite3"; mkdir -p "$2/export"; touch "$2/export/new.json"\n'
        "exit 3\n"
    )
    os.chmod(fake, 0o755)
    data = tmp_path / "ls" / "data"
    (data / "upload").mkdir(parents=True)
    (data / "old.sqlite3").write_text("tokens")
    os.chmod(data, 0o755)
    os.chmod(data / "upload", 0o755)
    os.chmod(data / "old.sqlite3", 0o644)
    server = LabelStudioServer(tmp_path / "ls", tmp_path / "public", executable=str(fake))
    with pytest.raises(ServerStartFailed, match="exited with code 3"):
        server.start(timeout=20)

    def mode(path):
        return oct(os.stat(path).st_mode & 0o777)

    assert mode(data) == mode(data / "upload") == mode(data / "export") == "0o700"
    assert mode(data / "old.sqlite3") == "0o600"
    assert mode(data / "label_studio.sqlite3") == mode(data / "export" / "new.json") == "0o600"


def test_the_real_servers_token_database_is_private(ls_study):
    data = ls_study / "labelstudio" / "data"
    database = next(data.glob("*.sqlite3"))
    assert oct(os.stat(data).st_mode & 0o777) == "0o700"
    assert oct(os.stat(database).st_mode & 0o777) == "0o600"
