"""Request throttling on Django's cache (``CACHES["default"]``; ``CACHE_URL`` chooses it).

A fixed-window counter per key: ``cache.add`` starts a window's counter and ``cache.incr`` counts
atomically on the shared caches (Redis, Memcached) and within one process on the local-memory
default. Behind several web processes, set ``CACHE_URL=redis://...`` so the limits hold across
them. A window allows at most ``limit`` requests; at a window's edge a client may get up to
twice that in a short burst, which is enough against guessing and scraping.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def throttle_exceeded(scope: str, identity: str, *, limit: int, window_seconds: int = 3600) -> bool:
    """Count one request by ``identity`` in ``scope`` and return whether it is over ``limit``
    requests in the current window of ``window_seconds``.

    ``identity`` is hashed into the cache key (a token or an address never sits in the cache
    as such). A cache that is down lets the request through: throttling protects, it must not
    take the page down.
    """
    window = int(time.time() // window_seconds)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    key = f"throttle:{scope}:{digest}:{window}"
    try:
        cache.add(key, 0, timeout=window_seconds + 60)
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.set(key, 1, timeout=window_seconds + 60)
        count = 1
    except Exception:  # noqa: BLE001 - a cache outage must not turn the page into an error
        return False
    return count > limit


def client_address(request: HttpRequest) -> str:
    """The client's IP address: ``settings.CLIENT_IP_HEADER`` of the request (a header the
    reverse proxy sets to the client's address, overwriting what the client sent), else
    ``REMOTE_ADDR``. Only the first of several comma-separated addresses counts."""
    value = request.META.get(settings.CLIENT_IP_HEADER) or request.META.get("REMOTE_ADDR") or ""
    return value.split(",")[0].strip() or "unknown"
