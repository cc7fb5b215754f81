"""API throttles (DRF): per user and per token, rates from settings.

- ``UserThrottle`` (scope ``user``, ``API_THROTTLE_USER``): every request of one user, over all
  their tokens and sessions.
- ``TokenThrottle`` (scope ``token``, ``API_THROTTLE_TOKEN``): every request made with one API
  token, so one runaway script cannot use its owner's whole allowance.
- ``AlertSourceThrottle`` (scope ``alert_source``, ``API_THROTTLE_ALERT_SOURCE``): each alert
  source's posts to the intake.

A throttled request gets 429 with ``Retry-After``. The counters live in Django's cache
(``CACHE_URL``; with several server processes use a shared cache such as Redis). If the cache
is unreachable, the throttles let requests through and log it: a cache outage must not stop
breach intake.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.throttling import SimpleRateThrottle

from incidents.models import ApiToken

logger = logging.getLogger("breachdesk.throttle")


class _FailOpen(SimpleRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - a cache outage lets requests through
            logger.warning("Throttle cache unreachable; %s not applied.", self.scope, exc_info=True)
            return True


class UserThrottle(_FailOpen):
    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
        return None


class TokenThrottle(_FailOpen):
    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None


class AlertSourceThrottle(_FailOpen):
    scope = "alert_source"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        source = getattr(request, "alert_source", None)
        if source is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": source.pk}
