"""The need-to-know panel of the incident page: ``{% load restriction_panels %}`` then
``{% restriction_panel incident request.user %}``.

Everyone who sees the page learns whether the incident is restricted; incident managers
(``incidents.restrict_incident``) also see its members and get the form to restrict it, edit
its members or lift the restriction (``incidents.restriction_views``). One query, two when
restricted.
"""

from __future__ import annotations

from typing import Any

from django import template

from incidents.forms import RestrictionForm
from incidents.models import Incident, IncidentRestriction

register = template.Library()


@register.inclusion_tag("incidents/_restriction_panel.html", takes_context=True)
def restriction_panel(context: template.Context, incident: Incident, user: Any) -> dict[str, Any]:
    """The panel's context for ``incident`` as ``user`` may see it."""
    restriction = IncidentRestriction.objects.filter(incident=incident).first()
    may_restrict = bool(user and user.is_authenticated and user.has_perm("incidents.restrict_incident"))
    members: list[str] = []
    if restriction is not None and may_restrict:
        members = sorted(restriction.members.select_related("user").values_list("user__username", flat=True))
    initial = " ".join(members)
    return {
        "incident": incident,
        "restricted": restriction is not None,
        "restriction": restriction,
        "members": members,
        "may_restrict": may_restrict,
        "form": RestrictionForm(initial={"members": initial}, prefix="restriction"),
        "csrf_token": context.get("csrf_token"),
    }
