"""Deadline arithmetic for notification clocks: exact elapsed time in UTC.

A clock's due time is its start plus its window, computed on UTC instants. Hours are never added
to a local wall-clock time: across a daylight-saving change that would give 71 or 73 real
hours. Weekends and public holidays do not move a deadline. Local time is for display only,
always shown with its zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

#: Escalation thresholds: (``Escalation.Threshold`` value, time left before ``due_at``), most
#: distant first (DESIGN.md section 3).
ESCALATION_THRESHOLDS: tuple[tuple[str, timedelta], ...] = (
    ("48h", timedelta(hours=48)),
    ("24h", timedelta(hours=24)),
    ("12h", timedelta(hours=12)),
    ("6h", timedelta(hours=6)),
    ("1h", timedelta(hours=1)),
)
OVERDUE = "overdue"


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got a naive datetime.")


def due_at(starts_at: datetime, window: timedelta) -> datetime:
    """The UTC instant ``window`` of elapsed time after ``starts_at``.

    ``starts_at``: aware datetime in any zone. Raises ``ValueError`` for a naive datetime or a
    window that is not positive. Example: 2027-03-28 00:30 Europe/Berlin (CET, 23:30 UTC the day
    before) plus 72 hours is 2027-03-30T23:30Z, although Berlin's clocks jump that night.
    """
    _require_aware(starts_at, "starts_at")
    if window <= timedelta(0):
        raise ValueError("A clock's window must be positive.")
    return starts_at.astimezone(UTC) + window


def customer_notice_window(customer_window_hours: int | None) -> timedelta:
    """The notification window for a customer: the shorter of its contractual window and the
    policy window ``NOTICE_WINDOW_HOURS`` (default 72 hours, our policy commitment to notify
    controllers; GDPR Art. 33(2) asks processors to do so "without undue delay")."""
    policy_hours = settings.NOTICE_WINDOW_HOURS
    hours = min(customer_window_hours or policy_hours, policy_hours)
    return timedelta(hours=hours)


def thresholds_passed(*, starts_at: datetime, due: datetime, now: datetime) -> list[str]:
    """The escalation thresholds a clock has reached at ``now``, most distant first.

    A threshold applies only when the clock's window is longer than it (a 24-hour window has no
    48-hour or 24-hour warning). ``overdue`` is reached once ``now`` is after ``due``; a clock
    met exactly at ``due`` is on time.
    """
    _require_aware(now, "now")
    window = due - starts_at
    passed = [name for name, left in ESCALATION_THRESHOLDS if left < window and now >= due - left]
    if now > due:
        passed.append(OVERDUE)
    return passed
