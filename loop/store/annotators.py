"""The study's annotators: one row per account in the annotation tool (name, the tool's user
id, email, simulated-noise profile). Passwords and tokens never come here: they stay in the
study's 0600 credentials file."""

from __future__ import annotations

from dataclasses import dataclass

from loop.store.db import Store, utcnow


@dataclass(frozen=True)
class Annotator:
    name: str
    user_id: str
    email: str
    profile: str | None
    created: bool  # the account was made now, not found again


def annotators(store: Store) -> list[dict]:
    """The study's annotator accounts (name, tool, user id, email, noise profile)."""
    return list(store.db["annotators"].rows)


def save_annotator(
    store: Store,
    *,
    tool: str,
    name: str,
    user_id: str,
    email: str,
    profile: str | None,
    created: bool = False,
) -> Annotator:
    """Record an account, once per (tool, name); a ``profile`` of None keeps the stored one."""
    db = store.db
    existing = next(db["annotators"].rows_where("tool = ? AND name = ?", [tool, name]), None)
    row = {"external_id": user_id, "email": email}
    kept = existing["profile"] if profile is None and existing is not None else profile
    with store.atomic():
        if existing is not None:
            db["annotators"].update(existing["id"], {**row, "profile": kept})
        else:
            db["annotators"].insert(
                {**row, "name": name, "tool": tool, "profile": kept, "created_at": utcnow()}
            )
    return Annotator(name, user_id, email, kept, created)
