"""The dates of ``postmortems`` that raise reminders and fill "my work"
(``notifications.reminders.ReminderSource``, named in ``settings.REMINDER_SOURCES``):

- ``ACTION_ITEMS``: open action items' due dates, for their owners. Listed on "my work" only:
  their emails have their own rows and scan (``postmortems.reminders``), once due and once
  overdue, which predate the general reminders.
- ``TRAINING_EXPIRY``: the expiry of each person's latest completion of a mandatory course
  (``TrainingRecord.expires_at``), for the account with that email address: due reminder 30
  days before, overdue once it has lapsed. A new completion moves the latest record, so no
  reminder follows for the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower, Trim
from django.urls import reverse

from incidents.models import OPEN_STATES
from notifications.reminders import DueItem, ReminderSource
from postmortems.models import REMINDER_DUE_LEAD, ActionItem, TrainingRecord
from postmortems.training import TRAINED_GROUPS


def _action_items(*, due_before: datetime, owner_id: int | None) -> Iterable[DueItem]:
    """Open action items with an owner, due before ``due_before`` (aware)."""
    items = (
        ActionItem.objects.filter(
            status=ActionItem.Status.OPEN,
            owner__isnull=False,
            due_at__lt=due_before,
            post_mortem__incident__state__in=OPEN_STATES,
        )
        .select_related("owner", "post_mortem__incident")
        .order_by("due_at", "id")
    )
    if owner_id is not None:
        items = items.filter(owner_id=owner_id)
    for item in items:
        assert item.owner is not None and item.due_at is not None  # filtered above
        incident = item.post_mortem.incident
        yield DueItem(
            source=ACTION_ITEMS.name,
            object_id=item.pk,
            owner_id=item.owner.pk,
            recipient=item.owner.email or "",
            due_at=item.due_at,
            title=" ".join(item.description.split())[:200],
            path=reverse("postmortems:post_mortem", args=[incident.pk]),
            incident=incident,
        )


ACTION_ITEMS = ReminderSource(
    name="action_item", label="Action item", lead=REMINDER_DUE_LEAD, items=_action_items, emails=False
)


def _training_expiry(*, due_before: datetime, owner_id: int | None) -> Iterable[DueItem]:
    """Each response-team member's latest completion of each mandatory course that expires
    before ``due_before`` (aware), matched to the account by normalised email."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=TRAINED_GROUPS)
        .annotate(normalised_email=Lower(Trim("email")))
        .exclude(normalised_email="")
        .distinct()
    )
    if owner_id is not None:
        users = users.filter(pk=owner_id)
    by_email = {user.normalised_email: user for user in users}
    if not by_email:
        return
    newer = TrainingRecord.objects.filter(
        email=OuterRef("email"), course=OuterRef("course"), expires_at__gt=OuterRef("expires_at")
    )
    records = (
        TrainingRecord.objects.filter(
            course__is_mandatory=True, expires_at__lt=due_before, email__in=sorted(by_email)
        )
        .exclude(Exists(newer))
        .select_related("course")
        .order_by("expires_at", "id")
    )
    path = reverse("training:overdue")
    for record in records:
        user = by_email[record.email]
        yield DueItem(
            source=TRAINING_EXPIRY.name,
            object_id=record.pk,
            owner_id=user.pk,
            recipient=user.email,
            due_at=record.expires_at,
            title=f"Your completion of {record.course.code} ({record.course.name}) expires; "
            "take the course again.",
            path=path,
        )


TRAINING_EXPIRY = ReminderSource(
    name="training_expiry", label="Training expiry", lead=timedelta(days=30), items=_training_expiry
)
