"""Reminders of playbook task due dates (``ResponseTask.due_at``) to each task's assignee: a
``notifications.reminders.ReminderSource`` named in ``settings.REMINDER_SOURCES``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.urls import reverse

from incidents.models import OPEN_STATES
from notifications.reminders import DueItem, ReminderSource
from triage.models import ResponseTask


def _response_tasks(*, due_before: datetime, owner_id: int | None) -> Iterable[DueItem]:
    """Playbook tasks not done, of open incidents, with an assignee, due before ``due_before``
    (aware), of ``owner_id`` (every assignee when ``None``)."""
    tasks = (
        ResponseTask.objects.filter(
            done_at__isnull=True,
            assignee__isnull=False,
            due_at__lt=due_before,
            incident__state__in=OPEN_STATES,
        )
        .select_related("incident", "assignee")
        .order_by("due_at", "id")
    )
    if owner_id is not None:
        tasks = tasks.filter(assignee_id=owner_id)
    for task in tasks:
        assignee = task.assignee
        assert assignee is not None  # filtered above
        yield DueItem(
            source=RESPONSE_TASKS.name,
            object_id=task.pk,
            owner_id=assignee.pk,
            recipient=assignee.email or "",
            due_at=task.due_at,
            title=" ".join(task.description.split())[:200],
            path=reverse("incidents:incident_detail", args=[task.incident_id]) + f"#task-{task.pk}",
            incident=task.incident,
        )


#: Playbook task due dates; due reminder 4 hours before (tasks are due within hours or days of
#: the assessment).
RESPONSE_TASKS = ReminderSource(
    name="response_task", label="Playbook task", lead=timedelta(hours=4), items=_response_tasks
)
