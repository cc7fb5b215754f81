"""The triage panel of the incident page: ``{% load triage_panels %}`` then
``{% triage_panel incident request.user %}``.

Shows the latest assessment (scope, ENISA severity with its breakdown and reasons, malicious and
its basis, the notification recommendation with reasons citing GDPR articles), earlier versions,
the stakeholder alerts raised and the playbook's response tasks with a "done" button, and links
to the triage form. Nothing is shown to a user without ``triage.view_assessment``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from incidents.models import Incident
from incidents.services import FINAL_STATES

register = template.Library()


@register.inclusion_tag("triage/_panel.html", takes_context=True)
def triage_panel(context: template.Context, incident: Incident, user: Any) -> dict[str, Any]:
    """The panel's context for ``incident`` as ``user`` may see it (four queries at most)."""
    if not (user and user.is_authenticated and user.has_perm("triage.view_assessment")):
        return {"visible": False}
    assessments = list(incident.assessments.select_related("assessed_by").order_by("-version"))
    is_final = incident.state in FINAL_STATES
    alerts = (
        list(
            incident.stakeholder_alerts.select_related("group")
            .prefetch_related("emails")
            .order_by("created_at", "id")
        )
        if user.has_perm("triage.view_stakeholderalert")
        else []
    )
    tasks = (
        list(incident.response_tasks.select_related("assignee", "done_by").order_by("due_at", "order", "id"))
        if user.has_perm("triage.view_responsetask")
        else []
    )
    return {
        "visible": True,
        "incident": incident,
        "latest": assessments[0] if assessments else None,
        "earlier": assessments[1:],
        "alerts": alerts,
        "tasks": tasks,
        "open_tasks": sum(1 for task in tasks if not task.is_done),
        "now": timezone.now(),
        "can_assess": user.has_perm("triage.add_assessment") and not is_final,
        "can_tick": user.has_perm("triage.change_responsetask") and not is_final,
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def band_label(value: str | None) -> str:
    """The label of an ENISA band value (``"very_high"`` -> ``"Very high"``); ``""`` if empty."""
    if not value:
        return ""
    try:
        return Incident.Severity(value).label
    except ValueError:
        return str(value)
