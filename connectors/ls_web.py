"""Label Studio's web forms, as a person uses them: log in, sign up through the organization's
invite link, read an account's API token. Accounts made this way have a password and can log
in (accounts made with ``POST /api/users`` could not)."""

from __future__ import annotations

import re

import httpx

from loop.errors import ToolRejected, ToolUnreachable

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _form_session(url: str, path: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30.0, follow_redirects=False)
    try:
        page = client.get(path)
    except httpx.TransportError as exc:
        client.close()
        raise ToolUnreachable(
            f"Label Studio at {url} does not answer ({exc}); is it running?"
        ) from exc
    token = client.cookies.get("csrftoken")
    match = _CSRF.search(page.text)
    return client, (match.group(1) if match else token or "")


def web_login(url: str, email: str, password: str) -> httpx.Client:
    """Log in through the web login form, as a person does; returns the logged-in session.

    Raises
    ------
    ToolRejected
        When the form does not accept the email and password.
    """
    client, csrf = _form_session(url, "/user/login/")
    response = client.post(
        "/user/login/",
        data={"csrfmiddlewaretoken": csrf, "email": email, "password": password},
        headers={"Referer": f"{url}/user/login/"},
    )
    if response.status_code != 302:
        client.close()
        raise ToolRejected(
            f"Label Studio did not accept the login of {email} (HTTP {response.status_code})"
        )
    return client


def sign_up(url: str, invite_token: str, email: str, password: str) -> None:
    """Create an account through the organization's invite link (the web sign-up form), so the
    account has a password, can log in, and belongs to the organization.

    Raises
    ------
    ToolRejected
        When the form refuses (e.g. a weak password or an email already used).
    """
    path = f"/user/signup/?token={invite_token}"
    client, csrf = _form_session(url, path)
    try:
        response = client.post(
            path,
            data={
                "csrfmiddlewaretoken": csrf,
                "email": email,
                "password": password,
                "how_find_us": "loop",
            },
            headers={"Referer": f"{url}{path}"},
        )
    finally:
        client.close()
    if response.status_code != 302:
        errors = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', response.text)
        raise ToolRejected(
            f"Label Studio's sign-up form refused {email} (HTTP {response.status_code})"
            + (f": {'; '.join(e.strip() for e in errors[:3])}" if errors else "")
        )


def account_token(url: str, email: str, password: str) -> tuple[str, str]:
    """``(user id, API token)`` of an account, read after a web login."""
    client = web_login(url, email, password)
    try:
        who = client.get("/api/current-user/whoami").json()
        token = client.get("/api/current-user/token").json()["token"]
    finally:
        client.close()
    return str(who["id"]), token
