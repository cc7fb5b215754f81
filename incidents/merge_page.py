"""The incident page's "Duplicates" card: the merge form, likely duplicates of a new
incident, and the links between a merged duplicate and its survivor
(``templates/incidents/_merge.html``; the route is ``incidents.merge_views``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest

from incidents.merging import MERGEABLE_STATES, duplicate_suggestions
from incidents.models import MERGE_PERMISSION, Incident
from incidents.selectors import incidents_visible_to


class MergeForm(forms.Form):
    """Merge this incident into another (``merging.incident_merge``)."""

    into = forms.CharField(
        max_length=30,
        label="Surviving incident",
        help_text="Its reference (BD-…) or id. This incident is closed as merged into it.",
    )


def merge_context(request: HttpRequest, incident: Incident) -> dict[str, Any]:
    """What the card needs: ``can_merge`` (the user may merge and this incident is still
    detected or triaged), ``duplicate_suggestions`` (for a detected or triaged incident),
    ``merged_duplicates`` (incidents merged into this one) and the form."""
    mergeable = incident.state in MERGEABLE_STATES
    return {
        "can_merge": mergeable and request.user.has_perm(MERGE_PERMISSION),
        # visible=: the incidents this user may see (need to know).
        "duplicate_suggestions": duplicate_suggestions(incident, visible=incidents_visible_to(request.user))
        if mergeable
        else [],
        "merged_duplicates": list(
            incident.merged_duplicates.order_by("merged_at", "id").only(
                "id", "reference", "title", "merged_at"
            )
        ),
        "merged_into": incident.merged_into if incident.merged_into_id else None,
        "merge_form": MergeForm(prefix="merge"),
    }
