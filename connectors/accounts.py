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
from connectors.labelstudio import LabelStudio, account_token, sign_up, web_login
from connectors.labelstudio_server import LabelStudioServer
from loop.errors import CredentialsError, ToolRejected
from loop.faults import crash_points
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
        db = study.store.db
        existing = next(
            db["annotators"].rows_where("tool = ? AND name = ?", [admin.name, name]), None
        )
        row = {"external_id": known["user_id"], "email": known["email"]}
        # keep the profile given before when none is given now
        kept = existing["profile"] if profile is None and existing is not None else profile
        with study.store.atomic():
            if existing is not None:
                db["annotators"].update(existing["id"], {**row, "profile": kept})
            else:
                db["annotators"].insert(
                    {
                        **row,
                        "name": name,
                        "tool": admin.name,
                        "profile": kept,
                        "created_at": utcnow(),
                    }
                )
        out.append(Annotator(name, known["user_id"], known["email"], kept, created))
    return out


def _can_log_in(url: str, known: dict) -> bool:
    try:
        web_login(url, known["email"], known["password"]).close()
    except ToolRejected:
        return False
    return True
