"""What an annotator's account may do in the study's embedded Label Studio.

Label Studio's open edition gives every member of the organization the rights of its owner:
any annotator's token can add a storage (and read every file under the local-files root
through it), change the project's label config, delete tasks, edit or delete another
annotator's annotations, save an annotation in another annotator's name, export everything,
or read the invite link and sign up accounts of its own. The loop's consensus trusts that an
annotation is its author's own work, so the embedded server runs with this guard: a Django
middleware, loaded by :mod:`loop_ls_settings`, that lets the loop's admin account (named by
``LOOP_LS_ADMIN_EMAIL``) do anything and every other account only what annotating needs.

This file runs inside Label Studio's own environment (``.venv-labelstudio``), not the loop's:
it imports Django lazily and the loop not at all. :func:`refusal` is the whole rule and is a
plain function of the request, so the loop's tests check it without Django.
"""

from __future__ import annotations

import json
import os
import re

ADMIN_ENV = "LOOP_LS_ADMIN_EMAIL"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Read by nobody but the admin: storage paths, webhooks (they call out), exports of every
# annotation, and the invite link (a token that signs up new accounts).
ADMIN_ONLY = (
    re.compile(r"^/api/storages(/|$)"),
    re.compile(r"^/api/webhooks(/|$)"),
    re.compile(r"^/api/projects/\d+/exports?(/|$)"),
    re.compile(r"^/api/invite(/|$)"),
)

ANNOTATOR_ACTIONS = frozenset({"next_task"})
"""Data Manager actions an annotator may run (the label stream asks for its next task so)."""
DM_ACTIONS = re.compile(r"^/api/dm/actions/?$")

# The writes annotating needs, with the object whose owner must be the caller (or None).
ANNOTATOR_WRITES = (
    (re.compile(r"^/api/tasks/\d+/annotations/?$"), {"POST"}, None),
    (re.compile(r"^/api/annotations/(\d+)/?$"), {"PATCH", "PUT", "DELETE"}, "annotation"),
    (re.compile(r"^/api/annotations/(\d+)/convert-to-draft/?$"), {"POST"}, "annotation"),
    (re.compile(r"^/api/annotations/(\d+)/drafts/?$"), {"POST"}, "annotation"),
    (re.compile(r"^/api/tasks/\d+/drafts/?$"), {"POST"}, None),
    (re.compile(r"^/api/drafts/(\d+)/?$"), {"PATCH", "PUT", "DELETE"}, "draft"),
    (re.compile(r"^/api/dm/views/?$"), {"POST"}, None),
    (re.compile(r"^/api/dm/views/(\d+)/?$"), {"PATCH", "PUT", "DELETE"}, "view"),
    (re.compile(r"^/api/dm/views/reset/?$"), {"DELETE", "POST"}, None),
    (re.compile(r"^/api/current-user(/|$)"), {"POST", "PATCH", "PUT", "DELETE"}, None),
    (re.compile(r"^/api/users/(\d+)/?$"), {"PATCH", "PUT"}, "user"),
    (re.compile(r"^/api/token(/|$)"), {"POST", "DELETE"}, None),
)


def refusal(
    method: str,
    path: str,
    *,
    is_admin: bool,
    owns,
    body=bytes,
    user_id=None,
    served=None,
    action=None,
):
    """Why a request is refused, or ``None`` when it may go on.

    Parameters
    ----------
    method, path : str
        The HTTP method and the URL's path.
    is_admin : bool
        The caller is the loop's admin account.
    owns : callable
        ``owns(kind, pk) -> bool``: the caller owns object ``pk`` of ``kind`` (``annotation``,
        ``draft``, ``view``, ``user``).
    body : callable
        ``body() -> bytes``: the request's body, read only for a write that may go on (a JSON
        object naming ``completed_by`` is checked).
    user_id : int
        The caller's user id.
    served : str, optional
        The ``d`` parameter of a local-files request: a path relative to the served folder.
    action : str, optional
        The ``id`` parameter of a Data Manager action.
    """
    if served is not None and path.startswith("/data/local-files"):
        parts = served.replace("\\", "/").split("/")
        if served.startswith(("/", "~")) or ".." in parts:
            return "local files are named relative to the served folder, inside it"
    if is_admin:
        return None
    method = method.upper()
    if any(p.match(path) for p in ADMIN_ONLY):
        return "only the study's admin account may use this endpoint"
    if method in SAFE_METHODS or not path.startswith("/api/"):
        return None
    if DM_ACTIONS.match(path) and method == "POST" and action in ANNOTATOR_ACTIONS:
        return None
    for pattern, methods, owned in ANNOTATOR_WRITES:
        match = pattern.match(path)
        if match is None or method not in methods:
            continue
        if owned is not None and not owns(owned, int(match.group(1))):
            return f"this {owned} belongs to another account"
        author = _completed_by(body())
        if author is not None and author != user_id:
            return "an annotation is saved in its author's own name only"
        return None
    return "annotators may only annotate: this change is the study admin's"


def _completed_by(body: bytes):
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or "completed_by" not in data:
        return None
    value = data["completed_by"]
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # not an id: never the caller's


class AnnotatorGuard:
    """Django middleware: :func:`refusal` for every request, 403 when it refuses."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.admin_email = (os.environ.get(ADMIN_ENV) or "").lower()

    def __call__(self, request):
        user = self._user(request)
        is_admin = False
        if user is not None:
            is_admin = bool(self.admin_email) and user.email.lower() == self.admin_email
            why = refusal(
                request.method,
                request.path_info,
                is_admin=is_admin,
                owns=lambda kind, pk: _owns(user, kind, pk),
                body=lambda: request.body,
                user_id=user.id,
                served=request.GET.get("d"),
                action=request.GET.get("id"),
            )
            if why is not None:
                from django.http import JsonResponse

                return JsonResponse({"detail": f"refused by the loop's guard: {why}"}, status=403)
        response = self.get_response(request)
        if response.status_code >= 500 and not is_admin:
            # Label Studio's error body carries the exception and its paths: the admin's alone
            from django.http import JsonResponse

            return JsonResponse({"detail": "server error"}, status=response.status_code)
        return response

    @staticmethod
    def _user(request):
        """The account of a session, a JWT (set by Label Studio's middleware before this one)
        or a legacy ``Token`` header; ``None`` when anonymous (Label Studio refuses it)."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        kind, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if kind.lower() != "token" or not key.strip():
            return None
        from rest_framework.authtoken.models import Token

        token = Token.objects.select_related("user").filter(key=key.strip()).first()
        return None if token is None else token.user


def _owns(user, kind: str, pk: int) -> bool:
    if kind == "user":
        return pk == user.id
    if kind == "annotation":
        from tasks.models import Annotation

        return Annotation.objects.filter(pk=pk, completed_by_id=user.id).exists()
    if kind == "draft":
        from tasks.models import AnnotationDraft

        return AnnotationDraft.objects.filter(pk=pk, user_id=user.id).exists()
    if kind == "view":
        from data_manager.models import View

        return View.objects.filter(pk=pk, user_id=user.id).exists()
    return False
