"""Template filters of the dashboard pages (``{% load dashboard_tags %}``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.utils import timezone

from dashboard.board import BoardRow
from incidents.models import Incident, IncidentState
from incidents.reversing import url_maker
from incidents.templatetags.breachdesk import local, utc
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


@dataclass(frozen=True)
class BoardLine:
    """A board row's cells as text, computed once per row in Python (``board_lines``): the
    board's fifty rows spent most of its rendering time in filters and ``{% url %}``. Plain
    text, escaped by the template like any variable."""

    row: BoardRow
    urgency: str
    due_iso: str
    due_utc: str
    due_local: str
    time_left: str
    detail_url: str
    state: str
    severity: str
    scenario: str
    owner: str
    recorded_utc: str


def _label(choices: dict[str, str], value: str | None) -> str:
    """``value``'s label (``get_FOO_display``): the value itself when not a choice, ``""`` for
    ``None``."""
    return str(choices.get(value, value)) if value is not None else ""


@register.filter
def board_lines(rows: list[BoardRow], now: datetime) -> list[BoardLine]:
    """The board's rows (``dashboard.board.BoardRow``) with their cells' text at ``now``:
    urgency, the deadline in ISO 8601 (the countdown script's), in UTC and in the display time
    zone, the time left, the incident page's address, the state, severity, scenario and owner
    in words (``—`` when not set) and when it was recorded (UTC)."""
    detail_url = url_maker("incidents:incident_detail")
    # The fields' labels looked up in a dict (``get_FOO_display`` flattens the choices on every
    # call): the same text, as ``get_FOO_display`` too gives the stored value when not a choice.
    states = dict(IncidentState.choices)
    severities = dict(Incident.Severity.choices)
    scenarios = dict(Incident.Scenario.choices)
    lines = []
    for row in rows:
        incident = row.incident
        due_at = row.due_at
        owner = incident.owner.get_username() if incident.owner else ""
        lines.append(
            BoardLine(
                row=row,
                urgency=row.urgency(now),
                due_iso=timezone.localtime(due_at).isoformat() if due_at else "",
                due_utc=utc(due_at),
                due_local=local(due_at),
                time_left=time_left(due_at, now),
                detail_url=detail_url(incident.pk),
                state=_label(states, incident.state),
                severity=_label(severities, incident.severity) or "—",
                scenario=_label(scenarios, incident.scenario) or "—",
                owner=owner or "—",
                recorded_utc=utc(incident.created_at),
            )
        )
    return lines
