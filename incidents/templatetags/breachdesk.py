"""Template filters for Breachdesk pages: instants with their zone, durations, audit data.

Instants are stored in UTC; pages show them either in UTC (the audit trail) or in
``settings.DISPLAY_TIME_ZONE``, always with the zone named so nobody guesses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

register = template.Library()


def display_zone() -> ZoneInfo:
    """The zone pages show local times in (``settings.DISPLAY_TIME_ZONE``, default UTC)."""
    return ZoneInfo(settings.DISPLAY_TIME_ZONE)


@register.filter
def utc(value: datetime | None) -> str:
    """An aware instant as ``YYYY-MM-DD HH:MM:SS UTC``; ``""`` for ``None``."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def local(value: datetime | None) -> str:
    """An aware instant in the display time zone with its abbreviation and zone name, for
    example ``2025-03-30 14:05 CEST (Europe/Berlin)``; ``""`` for ``None``."""
    if value is None:
        return ""
    zone = display_zone()
    shown = value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    if zone.key in ("UTC", "Etc/UTC"):
        return shown
    return f"{shown} ({zone.key})"


@register.filter
def duration(value: timedelta | None) -> str:
    """A ``timedelta`` as days, hours and minutes (``2 d 3 h 5 min``); ``""`` for ``None``."""
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(part for part in parts if part) if (days or hours or minutes) else "0 min"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


@register.filter
def audit_items(data: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An audit event's ``data`` as a flat list of ``(label, text)`` pairs for display.

    ``{"changes": {"severity": [None, "high"]}}`` becomes ``[("severity", "— → high")]``;
    ``{"fields": {"title": "X"}}`` becomes ``[("title", "X")]``; other keys are shown as they
    are, nested values as compact JSON. Escaping is left to the template.
    """
    items: list[tuple[str, str]] = []
    for key, value in (data or {}).items():
        if key == "changes" and isinstance(value, dict):
            for name, change in value.items():
                if isinstance(change, list) and len(change) == 2:
                    items.append((name, f"{_text(change[0])} → {_text(change[1])}"))
                else:
                    items.append((name, _text(change)))
        elif key == "fields" and isinstance(value, dict):
            items.extend((name, _text(field_value)) for name, field_value in value.items())
        else:
            items.append((key, _text(value)))
    return items


@register.filter
def humanize(code: str) -> str:
    """A stored code (a verb, a field or a choice value) as words: ``affected_customer_added``
    becomes ``Affected customer added``."""
    words = str(code).replace("post_mortem", "post-mortem").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@register.filter
def may_use_audit_site(user: Any) -> bool:
    """Whether ``user`` may open the read-only auditor site ``/audit/`` (one query)."""
    from incidents.audit_site import audit_site

    return audit_site.user_may_audit(user)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """``mapping[key]``, or ``None`` when absent (``{{ labels|get_item:name }}``)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def datalist_options(choices: Any) -> SafeString:
    """``(value, label)`` pairs as ``<option value="value">label</option>`` elements, both
    escaped (``format_html_join``): one filter call instead of a loop of two variables per
    option, for the long suggestion lists of ``<datalist>``."""
    return format_html_join("", '<option value="{}">{}</option>', choices)


@register.filter
def key_value_items(pairs: Any) -> SafeString:
    """``(label, text)`` pairs as ``<li><span class="key">label</span>: text</li>`` elements,
    both escaped (``format_html_join``), for the audit trail's details of each event."""
    return format_html_join("", '<li><span class="key">{}</span>: {}</li>', pairs)
