"""Annotator accounts in Label Studio, and connecting to it as the admin or an annotator.

Accounts are made through the organization's invite link and the web sign-up form, so each
has a password, can log in through the web form, and belongs to the organization (accounts
made with ``POST /api/users`` could not log in). Each annotator's email, password, user id and
API token go to the study's 0600 credentials file (``ROOT/labelstudio/credentials.json``).

These functions take the study's folder (``root``), never a study: what the loop records of an
account (name, user id, email, noise profile) is written by the loop
(:func:`loop.store.annotators.save_annotator`), not here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from connectors.credentials import env_server, read_credentials, write_credentials
from connectors.labelstudio import LabelStudio
from connectors.labelstudio_server import LabelStudioServer
from connectors.ls_web import account_token, sign_up, web_login
from loop.annotate.push import PUBLIC_DIR
from loop.errors import CredentialsError, ToolRejected
from loop.faults import crash_points

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def server_of(root: Path) -> LabelStudioServer:
    """The embedded server of the study in folder ``root``: its data in ``root/labelstudio``,
    serving local files from ``root/labelstudio/public`` (display images only)."""
    return LabelStudioServer(root / "labelstudio", root / PUBLIC_DIR)


def connect(root: Path, *, retries: int = 4, backoff: float = 0.5) -> LabelStudio:
    """The admin connection: ``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY`` when set (a remote
    server), else the embedded server of the study in ``root`` (which must be running)."""
    remote = env_server()
    if remote is not None:
        url, key = remote
        return LabelStudio(
            url, key, study_root=root, serve_local=False, retries=retries, backoff=backoff
        )
    return connect_local(root, retries=retries, backoff=backoff)


def connect_local(root: Path, *, retries: int = 4, backoff: float = 0.5) -> LabelStudio:
    """The admin connection to the embedded server of the study in ``root`` (running)."""
    server = server_of(root)
    info = server.require()
    admin = server.credentials().get("admin")
    if not admin:
        raise CredentialsError(f"no admin credentials in {server.credentials_file}")
    return LabelStudio(
        info.url,
        admin["token"],
        study_root=root,
        serve_local=True,
        retries=retries,
        backoff=backoff,
    )


def connect_as(root: Path, name: str, admin: LabelStudio) -> LabelStudio:
    """A connection as annotator ``name`` of the study in ``root`` (with that account's own
    token).

    Raises
    ------
    CredentialsError
        When the study's credentials file has no such annotator.
    """
    creds = read_credentials(server_of(root).credentials_file).get("annotators", {}).get(name)
    if creds is None:
        raise CredentialsError(
            f"no credentials for annotator {name!r}; add the account with "
            f"`loop annotators add {root} {name}`"
        )
    return LabelStudio(
        admin.url,
        creds["token"],
        study_root=root,
        serve_local=admin.serve_local,
        retries=admin.retries,
        backoff=admin.backoff,
    )


@dataclass(frozen=True)
class Account:
    """An annotator's account in the tool (its password and token stay in the credentials)."""

    name: str
    user_id: str
    email: str
    created: bool  # made by this call (not found again)


def ensure_accounts(
    root: Path, admin: LabelStudio, names, *, domain: str = "loop.local"
) -> list[Account]:
    """Create (or find again) one account per name for the study in ``root``; idempotent.

    Raises
    ------
    ToolRejected
        For an invalid name, or when the server refuses the sign-up.
    """
    path = server_of(root).credentials_file
    crash = crash_points()
    out = []
    for name in names:
        if not NAME.match(name):
            raise ToolRejected(f"annotator name {name!r}: use letters, digits, '.', '_' or '-'")
        creds = read_credentials(path)
        known = creds.setdefault("annotators", {}).get(name)
        created = known is None
        if known is None:
            # the password is saved before the account exists, so a run killed after the
            # sign-up still knows it; ``signed_up`` records that the sign-up went through
            known = {
                "email": f"{name.lower()}@{domain}",
                "password": secrets.token_urlsafe(16),
                "signed_up": False,
            }
            creds["annotators"][name] = known
            write_credentials(path, creds)
        if not known.get("signed_up", True):
            if created or not _can_log_in(admin.url, known):
                sign_up(admin.url, admin.invite_token(), known["email"], known["password"])
            crash.hit("annotators.signed_up")
            known["signed_up"] = True
            write_credentials(path, creds)
        if "token" not in known:
            known["user_id"], known["token"] = account_token(
                admin.url, known["email"], known["password"]
            )
            write_credentials(path, creds)
        out.append(Account(name, known["user_id"], known["email"], created))
    return out


def _can_log_in(url: str, known: dict) -> bool:
    try:
        web_login(url, known["email"], known["password"]).close()
    except ToolRejected:
        return False
    return True
