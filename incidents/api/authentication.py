"""API authentication: expiring, revocable personal tokens (``Authorization: Token <key>``).

``ApiTokenAuthentication`` comes first in ``DEFAULT_AUTHENTICATION_CLASSES`` so that missing or
bad credentials answer 401 with ``WWW-Authenticate: Token realm="api"`` (DRF takes the header
from the first class); the browser session (``SessionAuthentication``, CSRF enforced on writes)
is accepted after it. ``Bearer`` is accepted as a synonym of ``Token``.
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, router
from django.db.models import Field, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from incidents.accounts import account_facts_annotations, account_refusal, remember_account_facts
from incidents.backends import permission_annotations, remember_permissions
from incidents.models import ApiToken
from incidents.statements import CompiledQuery

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


@functools.cache
def _token_annotation_sql(using: str) -> tuple[tuple[str, str, tuple[Any, ...], Field], ...]:
    """``(name, SQL, params, output field)`` of the annotations an ``ApiToken`` query reads
    with the token: the account facts (``account_facts_annotations``) and the permissions
    (``permission_annotations``) of the token's user, compiled once per database.

    Resolving and compiling those four subqueries took longer than the three queries they
    replace (3 ms of CPU); their SQL does not change, so they are compiled here once and
    given to each query as ``RawSQL``. The SQL names the outer row as ``"<table>"."user_id"``,
    the alias of an ``ApiToken`` query's own table."""
    expressions = {**account_facts_annotations("user_id"), **permission_annotations("user_id")}
    query = ApiToken.objects.annotate(**expressions).values(*expressions).query
    compiler = query.get_compiler(using=using)
    compiler.setup_query()
    compiled = []
    for name in expressions:
        annotation = query.annotations[name]
        sql, params = compiler.compile(annotation)
        compiled.append((name, sql, tuple(params), annotation.output_field))
    return tuple(compiled)


def _tokens_with_user_facts() -> QuerySet[ApiToken]:
    """``ApiToken`` rows with their user (``select_related``) and the user's account facts
    and permissions as annotations (``_token_annotation_sql``): one query."""
    using = router.db_for_read(ApiToken) or DEFAULT_DB_ALIAS
    annotations = {
        name: RawSQL(sql, params, output_field=field)  # noqa: S611 - compiled by the ORM; values are parameters
        for name, sql, params, field in _token_annotation_sql(using)
    }
    return ApiToken.objects.using(using).select_related("user").annotate(**annotations)


#: The token by its key's SHA-256, with its user, account facts and permissions: one SELECT,
#: compiled once per database (``incidents.statements``; the ORM compiling it was about 2 ms of
#: every API request's CPU).
_token_by_hash = CompiledQuery(
    lambda key_hash: _tokens_with_user_facts().filter(key_hash=key_hash).order_by("pk")[:1],
    names=("key_hash",),
)


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) for an ``ApiToken``.

    Errors (401): a malformed header, an unknown, expired or revoked key, an inactive user, an
    account that ``incidents.accounts.account_refusal`` refuses (expired).
    Sets ``request.auth`` to the ``ApiToken`` (the per-token throttle reads it).

    One query reads the token, its user, the account's expiry facts
    (``incidents.accounts.account_facts_annotations``) and the user's permissions
    (``incidents.backends.permission_annotations``), which are kept on the user object for
    this request only, as Django's backend keeps them after its own queries: the permission
    check and the account check of the same request then ask nothing more, and the next
    request reads them again (a permission revoked or an account expired is refused from the
    next request on, as before).
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
        found = _token_by_hash.run(
            using=router.db_for_read(ApiToken) or DEFAULT_DB_ALIAS, key_hash=ApiToken.hash_key(key)
        )
        token = found[0] if found else None
        now = timezone.now()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if now >= token.expires_at:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is inactive.")
        remember_account_facts(
            token.user,
            is_auditor=token.account_is_auditor,  # type: ignore[attr-defined]  # annotations
            expires_at=token.account_expires_at,  # type: ignore[attr-defined]
        )
        refusal = account_refusal(token.user, now)
        if refusal is not None:
            # An expired account (every auditor's has an expiry date): incidents.accounts.
            raise exceptions.AuthenticationFailed(refusal)
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        remember_permissions(
            token.user,
            user_names=token.user_permission_names,  # type: ignore[attr-defined]  # annotations
            group_names=token.group_permission_names,  # type: ignore[attr-defined]
        )
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
