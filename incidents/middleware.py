"""Request middleware of the incident register: account expiry, the auditors' read log, and
form posts that are not UTF-8."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from incidents.accounts import account_refusal, is_auditor
from incidents.api.problems import is_api_path
from incidents.models import ReadLogEntry

#: URL kwargs that name the object a route shows, in the order they are looked for.
_OBJECT_KWARGS = ("object_id", "pk", "number", "incident_pk")


class AccountExpiryMiddleware:
    """Ends the session of an account that has expired since it logged in (or an auditor
    without an expiry date) and sends the user to the login page with the reason (an API
    request gets 401 with the reason). API token users are refused by
    ``incidents.api.authentication.ExpiringTokenAuthentication``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            reason = account_refusal(user)
            if reason is not None:
                logout(request)
                if request.path.startswith("/api/"):
                    return JsonResponse(
                        {"detail": reason}, status=401, headers={"WWW-Authenticate": "Session"}
                    )
                messages.error(request, reason)
                return redirect("login")
        return self.get_response(request)


#: Route names (their words, ``-`` or ``_``) that name what a route shows under an incident.
_SINGLETONS_UNDER_AN_INCIDENT = ("post_mortem", "drill", "evidence_pack")


def _what_was_read(request: HttpRequest) -> tuple[str, str, str]:
    """``(route name, object type, object id)`` of the route that answered ``request``.

    The audit site's record pages name their model and id; a notice is ``incident/number``;
    an incident's post-mortem, drill record and evidence pack are their own types, with the
    incident's id; other routes take their type from the route's name (``clock-detail`` is a
    ``clock``) and the id from its arguments; lists have no id.
    """
    match = request.resolver_match
    if match is None:
        return "", "", ""
    route = match.view_name or ""
    kwargs: dict[str, Any] = match.kwargs
    name = (match.url_name or "").replace("-", "_")
    if match.namespace == "audit" and "object_id" in kwargs:
        # The audit site's change pages: <app>_<model>_change.
        parts = name.split("_")
        return route, parts[1] if len(parts) > 2 else "", str(kwargs["object_id"])
    if "file_id" in kwargs:
        # An evidence file (its record or its bytes), under its incident.
        return route, "evidence_file", str(kwargs["file_id"])
    incident = kwargs.get("incident_pk", kwargs.get("pk") if "number" in kwargs else None)
    if "number" in kwargs:
        return route, "notice", f"{incident}/{kwargs['number']}"
    for singleton in _SINGLETONS_UNDER_AN_INCIDENT:
        if singleton in name:
            return route, singleton, str(kwargs.get("incident_pk", kwargs.get("pk", "")))
    object_type = name.removesuffix("_detail").removesuffix("_list").removeprefix("incident_") or "incident"
    for key in ("pk", "incident_pk"):
        if key in kwargs:
            return route, object_type if key == "pk" else "incident", str(kwargs[key])
    return route, object_type if name else "", ""


class AuditorReadLogMiddleware:
    """Records every successful read (GET or HEAD answered 2xx) by an auditor, page or API, as
    one ``ReadLogEntry``: who, what, when. Static files and the login pages are not records."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.method in ("GET", "HEAD")
            and 200 <= response.status_code < 300
            and request.resolver_match is not None
            and request.resolver_match.url_name not in ("login", "logout")
            and is_auditor(getattr(request, "user", None))
        ):
            route, object_type, object_id = _what_was_read(request)
            user = request.user
            assert user.is_authenticated  # is_auditor() said so; narrows out AnonymousUser
            ReadLogEntry.objects.create(
                user=user,
                username=user.get_username(),
                route=route[:200],
                object_type=object_type[:64],
                object_id=object_id[:64],
                path=request.get_full_path()[:2000],
            )
        return response


#: Form bodies whose text Django would decode, replacing bytes that are not UTF-8 with U+FFFD.
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def _form_body_is_utf8(request: HttpRequest) -> bool:
    """Whether ``request``'s urlencoded body is UTF-8 throughout, raw and percent-decoded (a
    body that declares another charset is Django's to decode and counts as fine)."""
    charset = (request.content_params or {}).get("charset", "utf-8").lower().replace("_", "-")
    if charset not in ("utf-8", "utf8"):
        return True
    try:
        parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return True


class Utf8FormMiddleware:
    """Refuses a form post (``application/x-www-form-urlencoded``, any method with a body) that
    is not valid UTF-8, raw or percent-encoded, before any view or the CSRF check reads it:
    Django would store U+FFFD in place of the bad bytes, silently changing what was sent.
    Pages get 400 with a one-line text; nothing is stored. The API (``/api/``) is left alone: it
    reads JSON only and answers a form body 415 (a problem) whatever its bytes, and JSON that
    is not UTF-8 400. A body too large is left to Django."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and request.content_type == _FORM_CONTENT_TYPE
            and not is_api_path(request)
        ):
            try:
                valid = _form_body_is_utf8(request)
            except RequestDataTooBig:
                valid = True
            if not valid:
                return HttpResponse(
                    "The form was not sent as UTF-8; nothing was stored.",
                    status=400,
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
