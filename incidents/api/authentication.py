"""API authentication: expiring, revocable personal tokens (``Authorization: Token <key>``).

``ApiTokenAuthentication`` comes first in ``DEFAULT_AUTHENTICATION_CLASSES`` so that missing or
bad credentials answer 401 with ``WWW-Authenticate: Token realm="api"`` (DRF takes the header
from the first class); the browser session (``SessionAuthentication``, CSRF enforced on writes)
is accepted after it. ``Bearer`` is accepted as a synonym of ``Token``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from incidents.accounts import account_refusal
from incidents.models import ApiToken

#: Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
KEY_PREFIX = "bd_"
#: ``last_used_at`` is written at most this often per token (a write per request would cost).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_create(*, user: Any, name: str, lifetime: timedelta) -> tuple[ApiToken, str]:
    """Create a token for ``user`` valid for ``lifetime``; return the row and the key.

    The key (``bd_`` + 43 URL-safe characters, 256 random bits) is returned only here: the
    database keeps its SHA-256. Raises ``ValueError`` for a lifetime outside 1 hour to 366 days.
    """
    if not timedelta(hours=1) <= lifetime <= timedelta(days=366):
        raise ValueError("A token's lifetime must be between 1 hour and 366 days.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[:10],
        key_hash=ApiToken.hash_key(key),
        created_at=now,
        expires_at=now + lifetime,
    )
    return token, key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke ``token`` from now on (idempotent: a revoked token keeps its first instant)."""
    if token.revoked_at is None:
        now = timezone.now()
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        token.revoked_at = now
    return token


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) for an ``ApiToken``.

    Errors (401): a malformed header, an unknown, expired or revoked key, an inactive user, an
    account that ``incidents.accounts.account_refusal`` refuses (expired).
    Sets ``request.auth`` to the ``ApiToken`` (the per-token throttle reads it).
    """

    keywords = (b"token", b"bearer")

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give 'Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        now = timezone.now()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if now >= token.expires_at:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is inactive.")
        refusal = account_refusal(token.user, now)
        if refusal is not None:
            # An expired account (every auditor's has an expiry date): incidents.accounts.
            raise exceptions.AuthenticationFailed(refusal)
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Token realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``ApiTokenAuthentication`` in the OpenAPI schema."""

    target_class = "incidents.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'An API token, as "Token <key>" (POST /api/tokens/ or manage.py create_api_token).',
        }
