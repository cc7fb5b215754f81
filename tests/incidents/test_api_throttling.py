"""The API throttles (``incidents.api.throttling``) count in two cache counters per key: a
sliding window estimated from the current and the previous fixed window. What a client sees:
``N`` requests per period, then 429 with a Retry-After that says when one more fits; what the
cache holds: two integers, whatever the rate (DRF's own throttle kept every request's instant
of the last period, read and written back on each request)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import cache

from incidents.api.throttling import UserThrottle


@pytest.fixture
def clock(monkeypatch, settings):
    """A throttle whose rate is 10 a minute and whose clock the test sets (seconds)."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "10/minute"})
    cache.clear()
    now = SimpleNamespace(value=6_000_000.0)  # a whole number of minutes since the epoch
    yield now
    cache.clear()


def asks(clock, at: float, count: int = 1, user_id: int = 7) -> list[bool | float | None]:
    clock.value = 6_000_000.0 + at
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=user_id))
    answers: list[bool | float | None] = []
    for _ in range(count):
        throttle = UserThrottle()
        throttle.timer = lambda: clock.value
        allowed = throttle.allow_request(request, None)
        answers.append(allowed if allowed else throttle.wait())
    return answers


def test_it_allows_the_rate_then_says_when_one_more_fits(clock):
    assert asks(clock, at=0, count=10) == [True] * 10
    assert asks(clock, at=20) == [40.0]  # ten in this window: not before it ends, 40 s on
    # Next window, 15 s in: the last ten weigh three quarters (7.5), so three more fit; a
    # fourth waits until the old window's share is under 7: 18 s in (10 * (1 - 18/60) = 7).
    assert asks(clock, at=75, count=3) == [True] * 3
    assert asks(clock, at=75) == [pytest.approx(3.0)]
    assert asks(clock, at=78.5) == [True]
    assert asks(clock, at=78.5, user_id=8) == [True]  # another user counts on its own


def test_a_refused_request_counts_nothing(clock):
    asks(clock, at=0, count=10)
    assert asks(clock, at=30, count=50) == [30.0] * 50
    # Half-way through the next window only the ten allowed ones weigh (5): five more fit.
    assert asks(clock, at=90, count=6) == [True] * 5 + [pytest.approx(1.0)]


def test_the_cache_holds_two_counters_whatever_the_rate(clock, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "1000000/minute"})

    assert asks(clock, at=0, count=3000) == [True] * 3000
    assert asks(clock, at=61, count=2000) == [True] * 2000

    keys = [f"throttle_user_7:{window}" for window in (100_000, 100_001)]
    assert cache.get_many(keys) == {keys[0]: 3000, keys[1]: 2000}


@pytest.mark.redis
def test_the_counters_live_in_a_shared_redis_cache(clock, shared_redis_cache):
    assert asks(clock, at=0, count=11) == [True] * 10 + [60.0]
    assert shared_redis_cache.get("throttle_user_7:100000") == 10  # incremented in Redis
