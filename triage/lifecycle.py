"""What triage does at lifecycle moments: the hooks it registers in ``settings.LIFECYCLE_HOOKS``
(see ``incidents.lifecycle``)."""

from __future__ import annotations

from incidents.models import Incident
from triage.models import ResponseTask


def response_tasks_not_done(incident: Incident) -> list[str]:
    """``close``, ``guard``: ``response_tasks`` while any playbook task of the incident is not
    done."""
    if ResponseTask.objects.filter(incident=incident, done_at__isnull=True).exists():
        return ["response_tasks"]
    return []
