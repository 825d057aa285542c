"""Annotator accounts in Label Studio, and connecting to it as the admin or an annotator.

Accounts are made through the organization's invite link and the web sign-up form, so each
has a password, can log in through the web form, and belongs to the organization (accounts
made with ``POST /api/users`` could not log in). Each annotator's email, password, user id and
API token go to the study's 0600 credentials file; the store's ``annotators`` table keeps only
the name, user id, email and noise profile.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from connectors.credentials import env_server, read_credentials, write_credentials
from connectors.labelstudio import LabelStudio, account_token, sign_up
from connectors.labelstudio_server import LabelStudioServer
from loop.errors import CredentialsError, ToolRejected
from loop.store import utcnow
from loop.study import Study

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def server_of(study: Study) -> LabelStudioServer:
    return LabelStudioServer(study.path / "labelstudio", study.path)


def connect(study: Study, *, retries: int = 4, backoff: float = 0.5) -> LabelStudio:
    """The admin connection: ``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY`` when set (a remote
    server), else the study's embedded server (which must be running)."""
    remote = env_server()
    if remote is not None:
        url, key = remote
        return LabelStudio(
            url, key, study_root=study.path, serve_local=False, retries=retries, backoff=backoff
        )
    server = server_of(study)
    info = server.require()
    admin = server.credentials().get("admin")
    if not admin:
        raise CredentialsError(f"no admin credentials in {server.credentials_file}")
    return LabelStudio(
        info.url,
        admin["token"],
        study_root=study.path,
        serve_local=True,
        retries=retries,
        backoff=backoff,
    )


def _credentials_file(study: Study):
    return server_of(study).credentials_file


def connect_as(study: Study, name: str, admin: LabelStudio) -> LabelStudio:
    """A connection as annotator ``name`` (with that account's own token)."""
    creds = read_credentials(_credentials_file(study)).get("annotators", {}).get(name)
    if creds is None:
        raise CredentialsError(
            f"no credentials for annotator {name!r}; add the account with "
            f"`loop annotators add {study.path} {name}`"
        )
    return LabelStudio(
        admin.url,
        creds["token"],
        study_root=study.path,
        serve_local=admin.serve_local,
        retries=admin.retries,
        backoff=admin.backoff,
    )


@dataclass(frozen=True)
class Annotator:
    name: str
    user_id: str
    email: str
    profile: str | None
    created: bool


def add_annotators(
    study: Study,
    admin: LabelStudio,
    names,
    *,
    domain: str = "loop.local",
    profile: str | None = None,
) -> list[Annotator]:
    """Create (or find again) one account per name; idempotent.

    Raises
    ------
    ToolRejected
        For an invalid name, or when the server refuses the sign-up.
    """
    path = _credentials_file(study)
    out = []
    for name in names:
        if not NAME.match(name):
            raise ToolRejected(f"annotator name {name!r}: use letters, digits, '.', '_' or '-'")
        creds = read_credentials(path)
        known = creds.setdefault("annotators", {}).get(name)
        created = known is None
        if known is None:
            email = f"{name.lower()}@{domain}"
            password = secrets.token_urlsafe(16)
            sign_up(admin.url, admin.invite_token(), email, password)
            known = {"email": email, "password": password}
            creds["annotators"][name] = known  # saved before anything else can fail
            write_credentials(path, creds)
        if "token" not in known:
            known["user_id"], known["token"] = account_token(
                admin.url, known["email"], known["password"]
            )
            write_credentials(path, creds)
        db = study.store.db
        row = {
            "name": name,
            "tool": admin.name,
            "external_id": known["user_id"],
            "email": known["email"],
            "created_at": utcnow(),
        }
        existing = list(db["annotators"].rows_where("tool = ? AND name = ?", [admin.name, name]))
        with study.store.atomic():
            if existing:
                update = {"external_id": known["user_id"], "email": known["email"]}
                if profile is not None:
                    update["profile"] = profile
                db["annotators"].update(existing[0]["id"], update)
            else:
                db["annotators"].insert({**row, "profile": profile})
        stored = next(db["annotators"].rows_where("tool = ? AND name = ?", [admin.name, name]))
        out.append(Annotator(name, known["user_id"], known["email"], stored["profile"], created))
    return out
