"""Template tags for the customer-notification panel on the incident page.

``{% load notification_panels %}{% notification_panel incident request.user %}`` renders the
"Customer notification" panel (``templates/notifications/_panel.html``): deadlines with
countdowns, notices, withheld details, alerts for customers without a deliverable contact and
for failed deliveries, and the forms the user may use. It fetches what it needs itself, in a
fixed number of queries (``notifications.views.notification_panel_context``).
"""

from __future__ import annotations

from typing import Any

from django import template

from incidents.models import Incident

register = template.Library()


@register.inclusion_tag("notifications/_panel.html")
def notification_panel(incident: Incident, user: Any) -> dict[str, Any]:
    """The panel's context for ``incident`` as ``user`` may see and use it. The page's CSRF
    token is passed on by Django's inclusion tags, so the panel's forms carry it."""
    from notifications.views import notification_panel_context

    return notification_panel_context(incident, user)
