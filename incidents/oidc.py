"""Single sign-on through OpenID Connect (issue 8.3), on mozilla-django-oidc: the
authorization code flow with PKCE and a nonce, the ID token's signature checked against the
provider's keys (``OIDC_OP_JWKS_ENDPOINT``), its audience against ``OIDC_RP_CLIENT_ID`` and, when
``OIDC_OP_ISSUER`` is set, its issuer.

On only when ``settings.OIDC_ENABLED`` (``OIDC_RP_CLIENT_ID`` set; ``config/settings.py`` then
requires the provider's endpoints): the routes ``/oidc/authenticate/`` and ``/oidc/callback/``
answer 404 otherwise, and ``OidcBackend`` is in ``AUTHENTICATION_BACKENDS`` only then.

Accounts: matched by e-mail address (case-insensitive; a provider saying
``email_verified: false`` is refused), created on first sign-in when ``OIDC_CREATE_USER``
(username: the e-mail address, no usable password), never a superuser's (administrators sign
in with their password and second factor). Roles: at every sign-in the user's role groups
become exactly ``groups_from_claims`` of the claims (the ID token's, with the userinfo
endpoint's over them); a user none of whose ``OIDC_GROUPS_CLAIM`` values is in
``OIDC_GROUPS_MAPPING`` gets no role. Account expiry applies as to a password login (an auditor
needs an expiry date set in ``/admin/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from incidents.accounts import account_refusal
from incidents.roles import ROLE_GROUPS

logger = logging.getLogger("breachdesk.oidc")

#: The request attribute where a refused sign-in leaves its reason for the login page.
FAILURE_REASON = "_breachdesk_oidc_failure"


def groups_from_claims(claims: Mapping[str, Any]) -> set[str]:
    """The role groups (``responder``, ``incident_manager``, ``auditor``) that ``claims`` give:
    each value of the ``OIDC_GROUPS_CLAIM`` claim (a list of strings, or one string) looked up
    in ``OIDC_GROUPS_MAPPING`` (``{claim value: group name}``, exact and case-sensitive).
    Values not in the mapping are ignored; a missing or malformed claim gives no group."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list | tuple):
        values = [item for item in value if isinstance(item, str)]
    else:
        values = []
    mapping = settings.OIDC_GROUPS_MAPPING
    return {mapping[item] for item in values if item in mapping} & set(ROLE_GROUPS)


def user_roles_set(*, user: Any, roles: set[str]) -> dict[str, list[str]]:
    """Make ``user``'s role groups exactly ``roles`` (other groups are left alone); return
    ``{"added": [...], "removed": [...]}`` (sorted names)."""
    current = set(user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True))
    added, removed = sorted(roles - current), sorted(current - roles)
    if added:
        user.groups.add(*Group.objects.filter(name__in=added))
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    return {"added": added, "removed": removed}


def username_from_claims(email: str | None, claims: Mapping[str, Any] | None = None) -> str:
    """``OIDC_USERNAME_ALGO``: a new account's username is its e-mail address, lower-cased
    (Django's usernames take ``@``, ``.``, ``+``, ``-`` and ``_``; at most 150 characters)."""
    return (email or "").strip().lower()[:150]


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with Breachdesk's rules (see the module docstring).
    ``authenticate`` returns ``None`` (never raises) when the provider cannot be reached or
    its answer is refused, leaving the reason on the request for the login page."""

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        # Only the callback's answer from the provider is ours to check (a password login's
        # request never is, whatever its query string says).
        if request is None or request.path != reverse("oidc_authentication_callback"):
            return None
        try:
            user = super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, jwt.PyJWTError, KeyError, ValueError) as exc:
            logger.warning("Single sign-on refused: %s", exc)
            setattr(request, FAILURE_REASON, "The identity provider's answer could not be verified.")
            return None
        if user is None:
            return None
        refusal = account_refusal(user)
        if refusal is not None or not user.is_active:
            setattr(request, FAILURE_REASON, refusal or "This account is inactive.")
            return None
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token is not meant for this client (aud).")
        if settings.OIDC_OP_ISSUER and payload.get("iss") != settings.OIDC_OP_ISSUER:
            raise SuspiciousOperation("The ID token comes from another issuer (iss).")
        if "exp" not in payload:
            raise SuspiciousOperation("The ID token has no expiry (exp).")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims with the userinfo endpoint's over them (groups may be in either);
        the two must name the same subject (OpenID Connect Core 1.0, section 5.3.2)."""
        info = super().get_userinfo(access_token, id_token, payload)
        if info.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer names another subject (sub).")
        return {**payload, **info}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("email")) and claims.get("email_verified") is not False

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        email = claims.get("email")
        users = self.UserModel.objects.filter(email__iexact=email)
        if users.filter(is_superuser=True).exists():
            raise SuspiciousOperation("Administrator accounts sign in with their password.")
        return users

    def create_user(self, claims: dict[str, Any]) -> Any:
        try:
            with transaction.atomic():
                user = self.UserModel.objects.create_user(
                    self.get_username(claims),
                    email=claims["email"],
                    first_name=str(claims.get("given_name", ""))[:150],
                    last_name=str(claims.get("family_name", ""))[:150],
                )
                user.set_unusable_password()
                user.save(update_fields=["password"])
                user_roles_set(user=user, roles=groups_from_claims(claims))
        except IntegrityError:
            raise SuspiciousOperation("Another account already has this username.") from None
        return get_user_model().objects.get(pk=user.pk)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        with transaction.atomic():
            user.first_name = str(claims.get("given_name", user.first_name))[:150]
            user.last_name = str(claims.get("family_name", user.last_name))[:150]
            user.save(update_fields=["first_name", "last_name"])
            user_roles_set(user=user, roles=groups_from_claims(claims))
        return get_user_model().objects.get(pk=user.pk)


class OidcAuthenticationRequest(OIDCAuthenticationRequestView):
    """``GET /oidc/authenticate/`` (``oidc_authentication_init``): redirect to the provider's
    authorization endpoint (state, nonce and PKCE challenge kept in the session); 404 when
    single sign-on is not configured."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        return super().dispatch(request, *args, **kwargs)


class OidcCallback(OIDCAuthenticationCallbackView):
    """``GET /oidc/callback/`` (``oidc_authentication_callback``): the provider's answer; the
    code is exchanged, the ID token verified, the account matched or created, its roles set, and
    the user logged in (then ``next``). A refusal goes back to the login page saying why (and is
    a ``login_failed`` event); an unknown ``state`` is 400. 404 when not configured."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        # Read by the login_failed receiver (incidents.signin): HttpRequest has no such attribute.
        request._breachdesk_signin_method = "oidc"  # type: ignore[attr-defined]
        return super().dispatch(request, *args, **kwargs)

    @property
    def failure_url(self) -> str:
        return reverse("login")

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, FAILURE_REASON, "")
        messages.error(self.request, f"Single sign-on did not sign you in. {reason}".strip())
        return HttpResponseRedirect(self.failure_url)
