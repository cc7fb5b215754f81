"""Scenario playbooks: turning a scenario's template steps into an incident's response tasks.

Rule: each in-scope assessment creates, for its scenario's active template, the tasks whose step
the incident does not have yet. So the first in-scope assessment creates the scenario's tasks;
a later one with the same scenario creates nothing; one that changes the scenario adds the new
scenario's steps (the earlier tasks stay, done or not). Once per (incident, step), backed by the
unique constraint ``triage_responsetask_once_per_step``.
"""

from __future__ import annotations

from incidents.models import Incident
from triage.models import Assessment, PlaybookTemplate, ResponseTask


def response_tasks_create(*, incident: Incident, assessment: Assessment) -> list[ResponseTask]:
    """Create the response tasks of ``assessment``'s scenario that ``incident`` lacks.

    Each task copies its step's order, description and assignee role; the assignee is the
    incident's owner (``None`` when it has none); ``due_at`` is ``assessment.assessed_at`` plus
    the step's ``due_after`` (UTC arithmetic, hours of elapsed time). Returns the new tasks in
    step order (empty without a scenario or an active template). Must run inside the
    assessment's transaction, holding the incident's row lock.
    """
    if not assessment.scenario:
        return []
    template = (
        PlaybookTemplate.objects.filter(scenario=assessment.scenario, is_active=True)
        .prefetch_related("steps")
        .first()
    )
    if template is None:
        return []
    existing = set(
        ResponseTask.objects.filter(incident=incident, step__isnull=False).values_list("step_id", flat=True)
    )
    created = []
    for step in sorted(template.steps.all(), key=lambda step: (step.order, step.pk)):
        if step.pk in existing:
            continue
        created.append(
            ResponseTask.objects.create(
                incident=incident,
                step=step,
                assessment=assessment,
                scenario=template.scenario,
                order=step.order,
                description=step.description,
                assignee_role=step.assignee_role,
                assignee=incident.owner,
                created_at=assessment.assessed_at,
                due_at=assessment.assessed_at + step.due_after,
            )
        )
    return created
