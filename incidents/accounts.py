"""Who may sign in: accounts that expire (every auditor's must), and who counts as an auditor.

External auditors are given access for an engagement, not forever: an auditor account without
an expiry date, or past it, cannot log in (``ExpiringModelBackend``), and a session or API token
still open when the account expires is refused from then on
(``incidents.middleware.AccountExpiryMiddleware``, ``incidents.api.authentication``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from incidents.models import AccountExpiry

#: The group of external and internal auditors (a contract: created by a data migration).
AUDITOR_GROUP = "auditor"


def account_facts_annotations(user_id: str) -> dict[str, Any]:
    """Annotations for a query whose rows name a user by the field ``user_id`` (``"pk"`` for
    the user table itself, ``"user_id"`` for a row pointing at one): ``account_is_auditor``
    (bool) and ``account_expires_at`` (UTC instant or null). Give them, read from a row, to
    ``remember_account_facts`` and ``account_refusal`` and ``is_auditor`` ask nothing more."""
    return {
        "account_is_auditor": Exists(Group.objects.filter(user=OuterRef(user_id), name=AUDITOR_GROUP)),
        "account_expires_at": Subquery(
            AccountExpiry.objects.filter(user=OuterRef(user_id)).values("expires_at")[:1]
        ),
    }


def remember_account_facts(user: Any, *, is_auditor: Any, expires_at: datetime | None) -> None:
    """Keep ``user``'s account facts, as read through ``account_facts_annotations``, on the
    user object for the request (as ``_account_facts`` would after its own query)."""
    user._breachdesk_account_facts = (bool(is_auditor), expires_at)


def _account_facts(user: Any) -> tuple[bool, datetime | None]:
    """``(is an auditor, expires_at or None)`` of ``user`` in one query, cached on the user
    object for the request (the read log and the expiry check ask on every request; an API
    token's authentication reads them with the token: ``remember_account_facts``)."""
    cached = getattr(user, "_breachdesk_account_facts", None)
    if cached is None:
        row = (
            get_user_model()
            .objects.filter(pk=user.pk)
            .annotate(**account_facts_annotations("pk"))
            .values_list("account_is_auditor", "account_expires_at")  # type: ignore[misc]  # annotations
            .first()
        )
        cached = (bool(row[0]), row[1]) if row else (False, None)
        user._breachdesk_account_facts = cached
    return cached


def is_auditor(user: Any) -> bool:
    """Whether ``user`` is an active member of the ``auditor`` group."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return _account_facts(user)[0]


def account_refusal(user: Any, now: datetime | None = None) -> str | None:
    """Why ``user`` may not use the product now (one sentence), or ``None`` when it may.

    Refused: an account whose ``AccountExpiry.expires_at`` has passed, and an auditor account
    with no expiry date at all.
    """
    if not (user and user.is_authenticated):
        return None
    auditor, expiry = _account_facts(user)
    if expiry is not None and expiry <= (now or timezone.now()):
        return f"This account expired at {expiry:%Y-%m-%d %H:%M} UTC; ask an administrator to extend it."
    if expiry is None and auditor and not user.is_superuser:
        return (
            "Auditor accounts need an expiry date before they can be used; ask an administrator to set one."
        )
    return None


class ExpiringModelBackend(ModelBackend):
    """Django's username-and-password backend, refusing to log in an account that
    ``account_refusal`` refuses (expired, or an auditor without an expiry date). A session that
    is already open is ended by ``incidents.middleware.AccountExpiryMiddleware``, which says why."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and account_refusal(user) is not None:
            return None
        return user

    def get_user(self, user_id: Any) -> Any:
        """The session's user (``ModelBackend.get_user``: ``None`` when missing or inactive),
        read with its account facts (auditor, expiry) in the same query, so the expiry check
        and the read log that every page runs ask nothing more (one query fewer per page)."""
        user_model = get_user_model()
        try:
            user = user_model._default_manager.annotate(**account_facts_annotations("pk")).get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        facts: Any = user  # carries the two annotations
        remember_account_facts(user, is_auditor=facts.account_is_auditor, expires_at=facts.account_expires_at)
        return user if self.user_can_authenticate(user) else None


class ExpiryAwareAuthenticationForm(AuthenticationForm):
    """The login form, saying why a refused account is refused (it has expired, or an auditor
    has no expiry date) once the right password was given, instead of "did not match"."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            user = (
                get_user_model()
                ._default_manager.filter(
                    **{get_user_model().USERNAME_FIELD: self.cleaned_data.get("username")}
                )
                .first()
            )
            password = self.cleaned_data.get("password")
            if user is not None and password and user.is_active and user.check_password(password):
                reason = account_refusal(user)
                if reason is not None:
                    raise ValidationError(reason, code="account_refused") from None
            raise
