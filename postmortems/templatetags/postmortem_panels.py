"""The post-mortem panel of the incident page: ``{% load postmortem_panels %}`` then
``{% postmortem_panel incident request.user %}``.

Shows, to whom may see them: the post-mortem's status with a link to its page (incident
managers and auditors), the number of open action items, and for a drill its record. Nothing
for a responder but the drill (the post-mortem is confidential).
"""

from __future__ import annotations

from typing import Any

from django import template

from incidents.models import Incident
from postmortems.models import ActionItem, Drill, PostMortem

register = template.Library()


@register.inclusion_tag("postmortems/_panel.html")
def postmortem_panel(incident: Incident, user: Any) -> dict[str, Any]:
    """The panel's context for ``incident`` as ``user`` may see it (two queries at most)."""
    context: dict[str, Any] = {"incident": incident, "visible": False}
    if user.has_perm("postmortems.view_postmortem"):
        post_mortem = PostMortem.objects.filter(incident=incident).first()
        context["post_mortem"] = post_mortem
        if post_mortem is not None:
            context["open_items"] = post_mortem.action_items.filter(status=ActionItem.Status.OPEN).count()
        context["visible"] = post_mortem is not None
    if incident.is_drill and user.has_perm("postmortems.view_drill"):
        context["drill"] = Drill.objects.filter(incident=incident).first()
        context["show_drill"] = True
        context["visible"] = True
    return context
