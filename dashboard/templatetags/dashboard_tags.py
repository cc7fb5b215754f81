"""Template filters of the dashboard pages (``{% load dashboard_tags %}``)."""

from __future__ import annotations

from datetime import datetime

from django import template

from dashboard.board import BoardRow
from notifications.views import countdown

register = template.Library()


@register.filter
def urgency(row: BoardRow, now: datetime) -> str:
    """The board row's urgency at ``now`` (``BoardRow.urgency``)."""
    return row.urgency(now)


@register.filter
def time_left(due_at: datetime | None, now: datetime) -> str:
    """Time from ``now`` to ``due_at`` as the countdowns say it (``"71 h 05 min left"``,
    ``"overdue by 2 h 00 min"``); ``""`` for ``None``."""
    if due_at is None:
        return ""
    return countdown(due_at - now)


@register.filter
def hours(value: float | None) -> str:
    """Hours as ``"5.5 h"``; ``"—"`` for ``None``."""
    return "—" if value is None else f"{value:g} h"


@register.filter
def share(value: float | None) -> str:
    """A share 0..1 as a whole percentage; ``"—"`` for ``None``."""
    return "—" if value is None else f"{value * 100:.0f} %"
