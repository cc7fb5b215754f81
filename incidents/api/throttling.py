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
    """A rate ``N/period`` kept as two counters in the cache, not as a list of instants.

    DRF's ``SimpleRateThrottle`` keeps every allowed request's instant of the last period in one
    cache entry, read, trimmed and written back on every request: its cost grows with the rate
    (at 200 alerts a second, 12,000 instants pickled twice per request, about 2 ms of CPU).
    Here a request is allowed when the requests counted in the current fixed window (the
    period, aligned to the epoch) plus the previous window's count weighted by the share of it
    still inside the last period stay under ``N`` (a sliding window estimated from two
    counters); an allowed request adds one to the current window's counter (``cache.add``,
    then ``cache.incr``, atomic in Redis); a refused one counts nothing, as in DRF. Like DRF's,
    the check and the count are two steps, so concurrent requests at the limit may pass it by
    a few. Retry-After (``wait``): seconds until the estimate falls under ``N`` again.
    If the cache is unreachable, the request goes through and it is logged.
    """

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return self._allow(request, view)
        except Exception:  # noqa: BLE001 - a cache outage lets requests through
            logger.warning("Throttle cache unreachable; %s not applied.", self.scope, exc_info=True)
            return True

    def _allow(self, request: Any, view: Any) -> bool:
        self._wait = 0.0
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        # Set by SimpleRateThrottle.__init__ from the rate ("N/period").
        limit, duration = int(self.num_requests), float(self.duration)  # type: ignore[attr-defined]
        window = int(now // duration)
        current_key, previous_key = f"{key}:{window}", f"{key}:{window - 1}"
        counts = self.cache.get_many([current_key, previous_key])
        current, previous = int(counts.get(current_key, 0)), int(counts.get(previous_key, 0))
        elapsed = now - window * duration
        weight = 1.0 - elapsed / duration  # the previous window's share still in the last period
        if current + previous * weight >= limit:
            self._wait = self._until_allowed(limit, current, previous, elapsed, duration)
            return False
        if not self.cache.add(current_key, 1, int(2 * duration) + 1):
            try:
                self.cache.incr(current_key)
            except ValueError:  # expired between add and incr
                self.cache.add(current_key, 1, int(2 * duration) + 1)
        return True

    @staticmethod
    def _until_allowed(limit: int, current: int, previous: int, elapsed: float, duration: float) -> float:
        """Seconds until ``current + previous * weight`` drops under ``limit``."""
        room = limit - current
        if room <= 0 or previous == 0:
            # Not before this window ends; then this window's count is the weighted one.
            return duration - elapsed
        # previous * (1 - e / duration) < room  <=>  e > duration * (1 - room / previous)
        return max(0.0, duration * (1 - room / previous) - elapsed)

    def wait(self) -> float | None:
        return max(1.0, self._wait)


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
