"""Sign-in that resists attack (issue 8.3): who must pass a second factor, the session
timeouts, the security audit events, and the lock-out answer.

- **Lock-out** is django-axes' (settings ``AXES_*``): its backend refuses a locked-out
  username and address before any password is checked, on every path that calls
  ``django.contrib.auth.authenticate`` with the request (the login page, ``/admin/login/``,
  ``/audit/login/``). The API has no password path: it takes API tokens (256 random bits,
  ``incidents.api.authentication``), and a refused token is recorded here. ``lockout_response``
  is the answer: 429 with a page (or JSON under ``/api/`` and for XHR) saying when to try again.
- **Second factor** (django-otp): with ``TWO_FACTOR_REQUIRED``, a member of
  ``TWO_FACTOR_GROUPS`` (``incident_manager``, ``auditor``), or anyone who enrolled a device,
  must pass one after the password before any page answers (``SecondFactorMiddleware``); one
  without a device is sent to enrol first. A session opened through OpenID Connect counts as
  verified when ``OIDC_SATISFIES_TWO_FACTOR`` (the provider asked for it).
- **Timeouts**: ``SessionTimeoutMiddleware`` ends a session ``SESSION_IDLE_TIMEOUT`` seconds
  after its last request or ``SESSION_ABSOLUTE_TIMEOUT`` seconds after login.
- **Audit**: ``SecurityAuditEvent`` rows for logins, failures, lock-outs, logouts, second
  factors, expired sessions and permission denials (``security_event_record``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, get_user_model, logout
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_ipv46_address
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django_otp import user_has_device

from incidents.api.problems import problem_response
from incidents.models import SecurityAuditEvent
from incidents.report import client_ip as _forwarded_client_ip

logger = logging.getLogger("breachdesk.signin")

#: Session keys: when this session logged in, and when it last made a request (POSIX seconds).
SIGNED_IN_AT = "breachdesk_signed_in_at"
LAST_SEEN_AT = "breachdesk_last_seen_at"
#: Session key: whether this session's user must pass a second factor (decided once per login).
SECOND_FACTOR_OWED = "breachdesk_second_factor_owed"
#: The last-seen instant is written at most this often (seconds): a session write per request
#: would cost; the idle timeout is exact to within this.
LAST_SEEN_RESOLUTION = 60
#: ``HX-Trigger`` of requests that a page makes by itself (the board's rows refresh every
#: minute): they do not keep a session alive.
BACKGROUND_REFRESH_TRIGGERS = frozenset({"board-rows"})
#: The OpenID Connect backend's dotted path (``incidents.oidc``).
OIDC_BACKEND = "incidents.oidc.OidcBackend"

#: Routes a signed-in user who still owes a second factor may reach: the second-factor pages,
#: the WebAuthn ceremonies, logging in (as someone else) and out.
_OPEN_ROUTE_NAMES = frozenset(
    {
        "login",
        "logout",
        "two_factor_verify",
        "two_factor_setup",
        "oidc_authentication_init",
        "oidc_authentication_callback",
    }
)
_OPEN_NAMESPACES = frozenset({"otp_webauthn"})
_SITE_NAMESPACES = frozenset({"admin", "audit"})


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address (for the lock-out and the audit events): the header named by
    ``CLIENT_IP_HEADER`` when one is configured, else ``REMOTE_ADDR`` or, behind
    ``TRUSTED_PROXY_COUNT`` proxies, the ``X-Forwarded-For`` entry the nearest one saw
    (``incidents.report.client_ip``). ``None`` when unknown."""
    header = settings.CLIENT_IP_HEADER
    if header != "REMOTE_ADDR":
        value = (request.META.get(header) or "").split(",")[0].strip()
        if value:
            return value
    return _forwarded_client_ip(request)


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        validate_ipv46_address(value)
    except ValidationError:
        return None
    return value


def security_event_record(
    *,
    kind: str,
    request: HttpRequest | None = None,
    user: Any = None,
    username: str = "",
    detail: dict[str, Any] | None = None,
) -> SecurityAuditEvent | None:
    """Append one ``SecurityAuditEvent`` of ``kind`` (a ``SecurityAuditEvent.Kind``) now (UTC).

    ``user``: the account (an anonymous user counts as none); ``username``: the name given
    (defaults to the account's); the client's address and the path come from ``request``.
    ``detail``: JSON-ready facts, never a password or a code. Returns the row, or ``None`` when
    the database refused the write (logged: a login must not fail because its record could not
    be written; the database being down fails the login anyway).
    """
    account = user if user is not None and getattr(user, "is_authenticated", False) else None
    name = username or (account.get_username() if account is not None else "")
    try:
        return SecurityAuditEvent.objects.create(
            kind=kind,
            user=account,
            username=str(name)[:150],
            ip_address=_valid_ip(client_ip(request)) if request is not None else None,
            path=request.path[:2000] if request is not None else "",
            detail=detail or {},
        )
    except DatabaseError:
        logger.exception("Could not record the security event %s for %r.", kind, name)
        return None


# --- Who must pass a second factor ----------------------------------------------------------


def two_factor_required(user: Any) -> bool:
    """Whether ``user`` must pass a second factor to use a session: ``TWO_FACTOR_REQUIRED`` is
    on and the user is in one of ``TWO_FACTOR_GROUPS`` or has enrolled a confirmed device.
    Anonymous users: ``False``."""
    if not settings.TWO_FACTOR_REQUIRED or not (user and user.is_authenticated):
        return False
    if user.groups.filter(name__in=settings.TWO_FACTOR_GROUPS).exists():
        return True
    return bool(user_has_device(user, confirmed=True))


def session_second_factor_done(request: HttpRequest) -> bool:
    """Whether this session passed a second factor: a django-otp device verified it, or it
    was opened through OpenID Connect and ``OIDC_SATISFIES_TWO_FACTOR`` trusts the provider."""
    # OTPMiddleware gives request.user an is_verified() (absent where it did not run).
    is_verified = getattr(request.user, "is_verified", None)
    if is_verified is not None and is_verified():
        return True
    return bool(
        settings.OIDC_SATISFIES_TWO_FACTOR and request.session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND
    )


def _is_open_route(request: HttpRequest) -> bool:
    match = request.resolver_match
    if match is None:
        return False
    if match.namespace in _OPEN_NAMESPACES:
        return True
    if match.namespace in _SITE_NAMESPACES:
        return match.url_name in ("login", "logout")
    return match.namespace == "" and match.url_name in _OPEN_ROUTE_NAMES


class SecondFactorMiddleware:
    """Holds a signed-in user who owes a second factor (``two_factor_required``) on the
    second-factor pages until they pass one: a page request is sent to
    ``/accounts/two-factor/`` (or to ``/accounts/two-factor/setup/`` when the user has no
    device yet) with ``next``; a session request under ``/api/`` gets 403 (problem
    ``second_factor_required``). API token requests carry no session and are left to the API's
    authentication. Off when ``TWO_FACTOR_REQUIRED`` is off."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if not settings.TWO_FACTOR_REQUIRED:
            return None
        # request.user here is the session's user: an API token alone is anonymous at this
        # point (the API authenticates it later), so token clients pass; a session that owes a
        # second factor is held whatever headers come with it.
        if not request.user.is_authenticated or _is_open_route(request):
            return None
        if session_second_factor_done(request):
            return None
        # Whether this session owes a second factor is decided once (its first request after
        # login): the groups and devices are not read again on every request. A role given
        # during a session applies from the next login (at most SESSION_ABSOLUTE_TIMEOUT).
        owed = request.session.get(SECOND_FACTOR_OWED)
        if owed is None:
            owed = two_factor_required(request.user)
            request.session[SECOND_FACTOR_OWED] = owed
        if not owed:
            return None
        if request.path.startswith("/api/"):
            return problem_response(
                request,
                status_code=403,
                detail="Pass your second factor first: sign in on the web and enter your code.",
                code="second_factor_required",
            )
        has_device = user_has_device(request.user, confirmed=True)
        target = reverse("two_factor_verify" if has_device else "two_factor_setup")
        return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")


# --- Session timeouts ---------------------------------------------------------------------


class SessionTimeoutMiddleware:
    """Ends a signed-in session ``SESSION_IDLE_TIMEOUT`` seconds after its last request, or
    ``SESSION_ABSOLUTE_TIMEOUT`` seconds after it logged in, whichever comes first: the user is
    logged out (a ``session_expired`` event with ``reason`` ``idle`` or ``absolute``) and a page
    request is sent to the login page with the reason and ``next``; an API request gets 401.
    The board's own refreshes (``BACKGROUND_REFRESH_TRIGGERS``) do not count as activity; the
    last request is stored to the minute (``LAST_SEEN_RESOLUTION``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session:
            return self.get_response(request)
        now = timezone.now().timestamp()
        if SIGNED_IN_AT not in session:
            # A session opened before these timeouts existed: its limits count from now.
            session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = now
        signed_in_at = float(session[SIGNED_IN_AT])
        last_seen_at = float(session.get(LAST_SEEN_AT, signed_in_at))
        reason = None
        if now - signed_in_at > settings.SESSION_ABSOLUTE_TIMEOUT:
            reason = "absolute"
        elif now - last_seen_at > settings.SESSION_IDLE_TIMEOUT:
            reason = "idle"
        if reason is not None:
            return self._expire(
                request, reason, now - (signed_in_at if reason == "absolute" else last_seen_at)
            )
        background = request.headers.get("HX-Trigger") in BACKGROUND_REFRESH_TRIGGERS
        if not background and now - last_seen_at >= LAST_SEEN_RESOLUTION:
            session[LAST_SEEN_AT] = now
        return self.get_response(request)

    def _expire(self, request: HttpRequest, reason: str, seconds: float) -> HttpResponse:
        user = request.user
        security_event_record(
            kind=SecurityAuditEvent.Kind.SESSION_EXPIRED,
            request=request,
            user=user,
            detail={"reason": reason, "seconds": int(seconds)},
        )
        logout(request)
        message = (
            "Your session ended: you were signed in longer than the limit. Log in again."
            if reason == "absolute"
            else "Your session ended after a period without activity. Log in again."
        )
        if request.path.startswith("/api/"):
            return problem_response(request, status_code=401, detail=message, code="session_expired")
        messages.info(request, message)
        return redirect(f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}")


# --- Audit events -------------------------------------------------------------------------


class SecurityAuditMiddleware:
    """Records every 403 answer (a page, the admin, the API) as a ``permission_denied`` event
    (with the method, the status and the reason when one was given), and a 401 to an API
    request that carried an ``Authorization`` header as ``api_token_refused``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 403:
            reason = getattr(request, "_breachdesk_denied_reason", "") or _api_detail(response)
            security_event_record(
                kind=SecurityAuditEvent.Kind.PERMISSION_DENIED,
                request=request,
                user=getattr(request, "user", None),
                detail={"method": request.method, "status": 403, "reason": reason[:500]},
            )
        elif (
            response.status_code == 401
            and request.path.startswith("/api/")
            and "HTTP_AUTHORIZATION" in request.META
        ):
            security_event_record(
                kind=SecurityAuditEvent.Kind.API_TOKEN_REFUSED,
                request=request,
                detail={"method": request.method, "status": 401, "reason": _api_detail(response)[:500]},
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied):
            # HttpRequest has no such attribute: this middleware's own note for the response.
            request._breachdesk_denied_reason = str(exception)  # type: ignore[attr-defined]


def _api_detail(response: HttpResponse) -> str:
    """The ``detail`` of a DRF answer or of a problem (JSON) answer, else ``""``."""
    data = getattr(response, "data", None)
    if data is None and response.get("Content-Type", "").startswith("application/problem+json"):
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
    if isinstance(data, dict):
        return str(data.get("detail", ""))
    return ""


def _on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    backend = getattr(user, "backend", "") or ""
    method = "oidc" if backend == OIDC_BACKEND else "password"
    if request is not None and hasattr(request, "session"):
        now = timezone.now().timestamp()
        request.session[SIGNED_IN_AT] = now
        request.session[LAST_SEEN_AT] = now
        request.session.pop(SECOND_FACTOR_OWED, None)
    security_event_record(
        kind=SecurityAuditEvent.Kind.LOGIN, request=request, user=user, detail={"method": method}
    )


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username") or "")
    locked_out = bool(getattr(request, "axes_locked_out", False))
    user = get_user_model()._default_manager.filter(username=username).first() if username else None
    security_event_record(
        kind=SecurityAuditEvent.Kind.LOGIN_FAILED,
        request=request,
        user=user,
        username=username,
        detail={
            "method": getattr(request, "_breachdesk_signin_method", "password"),
            "locked_out": locked_out,
            **({"reason": reason} if (reason := getattr(request, "_breachdesk_oidc_failure", "")) else {}),
        },
    )


def _on_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        security_event_record(kind=SecurityAuditEvent.Kind.LOGOUT, request=request, user=user)


def _on_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    user = get_user_model()._default_manager.filter(username=username).first() if username else None
    security_event_record(
        kind=SecurityAuditEvent.Kind.LOCKED_OUT,
        request=request,
        user=user,
        username=username or "",
        detail={
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cool_off_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
    )


def connect_signal_receivers() -> None:
    """Connect the audit receivers to Django's and django-axes' signals (``IncidentsConfig.ready``)."""
    from axes.signals import user_locked_out

    user_logged_in.connect(_on_logged_in, dispatch_uid="breachdesk_signin_logged_in")
    user_login_failed.connect(_on_login_failed, dispatch_uid="breachdesk_signin_login_failed")
    user_logged_out.connect(_on_logged_out, dispatch_uid="breachdesk_signin_logged_out")
    user_locked_out.connect(_on_locked_out, dispatch_uid="breachdesk_signin_locked_out")


# --- The lock-out answer ------------------------------------------------------------------


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' ``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After`` (the cool-off, seconds),
    as the page ``registration/locked_out.html`` (any login page), or as an RFC 9457 problem
    (``locked_out``) under ``/api/`` and for XHR."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    message = (
        f"Too many failed logins for this account from your address: logins are refused for "
        f"{minutes} minutes. Each further attempt before then starts the wait again."
    )
    if request.path.startswith("/api/") or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        response: HttpResponse = problem_response(request, status_code=429, detail=message, code="locked_out")
    else:
        response = render(
            request,
            "registration/locked_out.html",
            {"message": message, "minutes": minutes},
            status=429,
        )
    response["Retry-After"] = str(seconds)
    return response
