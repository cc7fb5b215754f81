"""API authentication that honours account expiry (``incidents.accounts``)."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from incidents.accounts import account_refusal


class ExpiringTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, refused (401) for an account that has expired or an
    auditor account without an expiry date."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        user, token = super().authenticate_credentials(key)
        reason = account_refusal(user)
        if reason is not None:
            raise AuthenticationFailed(reason)
        return user, token
