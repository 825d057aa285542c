"""Start, stop and check a local Label Studio server for a study.

The server runs from its own environment (``.venv-labelstudio``: its numpy pin conflicts with
cellpose's), bound to 127.0.0.1 on a free port, with its SQLite database and files under
``STUDY/labelstudio/``. It is a managed subprocess: a pid file (``server.json``), a log file
(``server.log``, mode 0600 since Label Studio prints the admin token in it), wait-until-healthy
with a timeout and the log tail in the error. The admin account and API token are generated on
first start and kept in ``credentials.json`` (mode 0600).

Two defences keep an annotator's token from reaching those secrets (Label Studio's open
edition gives every member of the organization its owner's rights):

- the local-files document root is a folder of its own that holds only the display images
  (``STUDY/labelstudio/public``); the server refuses to start when the document root holds
  any of its secrets (a storage an annotator adds can serve every file under the root);
- the server runs with Django settings of ours (``connectors/ls_server``) that add
  :class:`loop_ls_guard.AnnotatorGuard`: only the loop's admin account may add storages,
  change the project, export, or touch another account's annotations.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from connectors.credentials import read_credentials, write_credentials
from loop.errors import ServerStartFailed, ToolUnreachable

EXECUTABLE_ENV = "LOOP_LABEL_STUDIO"
HOST = "127.0.0.1"
ADMIN_EMAIL = "loop-admin@localhost.local"
GUARD_DIR = Path(__file__).resolve().parent / "ls_server"
"""Label Studio settings with the annotator guard (run in the server's own environment)."""


def private(folder: Path) -> None:
    """Make ``folder`` readable by its owner only: the folder and those under it 0700, its
    files 0600 (checked on every start, so studies made before this check are fixed too)."""
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def find_executable() -> str:
    """``$LOOP_LABEL_STUDIO``, else the repository's ``.venv-labelstudio``, else PATH.

    Raises
    ------
    ServerStartFailed
        When none is found.
    """
    env = os.environ.get(EXECUTABLE_ENV)
    if env:
        if not Path(env).is_file():
            raise ServerStartFailed(f"{EXECUTABLE_ENV}={env} is not a file")
        return env
    repo_venv = Path(__file__).resolve().parents[1] / ".venv-labelstudio" / "bin" / "label-studio"
    if repo_venv.is_file():
        return str(repo_venv)
    on_path = shutil.which("label-studio")
    if on_path:
        return on_path
    raise ServerStartFailed(
        "no label-studio executable: run `make install` (it makes .venv-labelstudio), or set "
        f"{EXECUTABLE_ENV} to a label-studio 1.23 executable, or use an existing server with "
        "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when ``url/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int
    port: int
    data_dir: str
    log: str


class LabelStudioServer:
    """The embedded Label Studio of one study.

    Parameters
    ----------
    folder : path
        ``STUDY/labelstudio``: holds ``data/``, ``media/``, ``server.json``, ``server.log``
        and ``credentials.json``.
    document_root : path
        The folder Label Studio may serve local files from: display images only, never this
        ``folder`` or anything in it but display images.
    """

    def __init__(self, folder: Path, document_root: Path, *, executable: str | None = None):
        self.folder = Path(folder).resolve()
        self.document_root = Path(document_root).resolve()
        self.executable = executable
        self.state_file = self.folder / "server.json"
        self.log_file = self.folder / "server.log"
        self.credentials_file = self.folder / "credentials.json"

    def secrets(self) -> list[Path]:
        """What no web client may read: the credentials, the server's database folder, its
        log and state file."""
        return [self.credentials_file, self.folder / "data", self.log_file, self.state_file]

    def check_document_root(self) -> None:
        """Raises :class:`ServerStartFailed` when the document root holds a secret (or is a
        folder above them): any member could then read it through a local-files storage."""
        root = self.document_root
        for secret in self.secrets():
            if secret.resolve() == root or root in secret.resolve().parents:
                raise ServerStartFailed(
                    f"Label Studio's local-files root {root} holds {secret}: every annotator "
                    "could read it; serve a folder that holds display images only"
                )

    def info(self) -> ServerInfo | None:
        """The running server, or ``None`` (a stale pid file is removed)."""
        if not self.state_file.is_file():
            return None
        info = ServerInfo(**json.loads(self.state_file.read_text()))
        if not _alive(info.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return info

    def credentials(self) -> dict:
        return read_credentials(self.credentials_file)

    def _admin(self) -> dict:
        creds = self.credentials()
        if "admin" not in creds:
            creds["admin"] = {
                "email": ADMIN_EMAIL,
                "password": secrets.token_urlsafe(18),
                "token": secrets.token_hex(20),
            }
            write_credentials(self.credentials_file, creds)
        return creds["admin"]

    def start(self, *, timeout: float = 240.0, port: int | None = None) -> ServerInfo:
        """Start the server (or return the running one) and wait until it is healthy.

        Raises
        ------
        ServerStartFailed
            When the executable is missing, the process exits, or it is not healthy within
            ``timeout`` seconds; the message holds the tail of the log.
        """
        running = self.info()
        if running is not None and healthy(running.url):
            return running
        if running is not None:
            self.stop()
        self.check_document_root()
        executable = self.executable or find_executable()
        admin = self._admin()
        port = port or free_port()
        data_dir = self.folder / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        private(data_dir)  # its SQLite file holds every API token in plain text
        self.document_root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            # Label Studio reports its errors (tracebacks, paths, request data) to its
            # makers' Sentry by default: nothing of a study leaves the machine
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # credentials through the environment, not argv (argv is visible in `ps`)
            "LABEL_STUDIO_USERNAME": admin["email"],
            "LABEL_STUDIO_PASSWORD": admin["password"],
            "LABEL_STUDIO_USER_TOKEN": admin["token"],
            "PYTHONUNBUFFERED": "1",
            # our settings: Label Studio's own plus the annotator guard
            "DJANGO_SETTINGS_MODULE": "loop_ls_settings",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH")) if p
            ),
            "LOOP_LS_ADMIN_EMAIL": admin["email"],
        }
        for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
            env.pop(key, None)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.log_file, 0o600)
        command = [
            executable,
            "start",
            "--no-browser",
            "--internal-host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--enable-legacy-api-token",
        ]
        with os.fdopen(fd, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.folder,
                start_new_session=True,
                umask=0o077,  # what the server writes (its database, uploads) is 0600
            )
        url = f"http://{HOST}:{port}"
        info = ServerInfo(
            url=url, pid=process.pid, port=port, data_dir=str(data_dir), log=str(self.log_file)
        )
        self.state_file.write_text(json.dumps(info.__dict__))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise ServerStartFailed(
                    f"Label Studio exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if healthy(url):
                return info
            time.sleep(1.0)
        self.stop()
        raise ServerStartFailed(
            f"Label Studio was not healthy at {url} after {timeout:.0f} s; last lines of "
            f"{self.log_file}:\n{self.log_tail()}"
        )

    def stop(self, *, timeout: float = 20.0) -> bool:
        """Stop the server; True when one was running."""
        info = self.info()
        if info is None:
            return False
        try:
            os.killpg(info.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(info.pid):
            try:
                os.waitpid(info.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if _alive(info.pid):
            try:
                os.killpg(info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.state_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.is_file():
            return "(no log)"
        text = self.log_file.read_text(errors="replace").splitlines()
        tail = [line for line in text if "token" not in line.lower()][-lines:]
        return "\n".join(tail)

    def require(self) -> ServerInfo:
        """The running server, or :class:`ToolUnreachable` saying how to start it."""
        info = self.info()
        if info is None or not healthy(info.url):
            raise ToolUnreachable(
                f"the study's Label Studio is not running; start it with "
                f"`loop labelstudio start {self.folder.parent}`"
            )
        return info
