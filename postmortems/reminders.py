"""Reminders to action items' owners: once when an item falls due, once when it is overdue.

Run every minute by Celery beat (``postmortems.tasks.scan_action_item_reminders``, queue
``deadlines``), after the pattern of the deadline scanner: every reminder is a row before it is
an email, so a missed tick, a broker outage or two scanners at once lose nothing and send
nothing twice.

1. Record: each open action item with an owner who has an email address gets one ``due``
   reminder row once less than ``REMINDER_DUE_LEAD`` (24 hours) remains before ``due_at`` (not
   when it is already past: the overdue reminder then says it), and one ``overdue`` row once
   ``due_at`` has passed (``ActionItemReminder``, unique per item and
   kind: a second scanner's insert is ignored).
2. Hand over: unsent rows (no ``email`` yet) are claimed with ``SELECT ... FOR UPDATE SKIP
   LOCKED`` and, in the same transaction, each gets its email in the outbox
   (``notifications.emails.outgoing_email_queue``, kind ``action_item_reminder``, Message-ID
   ``<action-item-reminder.<reminder id>@domain>``) and ``sent_at`` (the hand-over instant).
   The outbox sender claims, sends, retries and records the email (issue 8: every email is an
   outbox row), so a broker outage or a killed worker delays a reminder and never sends it
   twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from notifications.emails import message_id, outgoing_email_queue_once
from notifications.models import OutgoingEmail
from postmortems.models import REMINDER_DUE_LEAD, ActionItem, ActionItemReminder

#: Reminders handed to the outbox per transaction.
CHUNK = 50


@dataclass
class ReminderReport:
    """What one pass did: reminder rows recorded, reminders handed to the outbox (``sent``;
    the outbox sender sends them), failures (always 0: failures are the outbox's to record,
    kept for the task's result shape)."""

    recorded: int = 0
    sent: int = 0
    failed: int = 0


def _record_due(now: datetime) -> int:
    """Step 1: insert the reminder rows that fall due at ``now``; returns how many it tried
    (a row another scanner inserted first is skipped by the unique constraint). Reads open
    items by due time (partial index ``postmortems_actionitem_open``)."""
    open_items = (
        ActionItem.objects.filter(status=ActionItem.Status.OPEN, due_at__isnull=False)
        .exclude(owner__isnull=True)
        .exclude(owner__email="")
    )
    rows = []
    windows = (
        # Falls due within a day, and not already overdue (then the overdue reminder says it).
        (ActionItemReminder.Kind.DUE, Q(due_at__lte=now + REMINDER_DUE_LEAD, due_at__gt=now)),
        (ActionItemReminder.Kind.OVERDUE, Q(due_at__lte=now)),
    )
    for kind, window in windows:
        already = ActionItemReminder.objects.filter(action_item=OuterRef("pk"), kind=kind)
        pending = open_items.filter(window).exclude(Exists(already)).values_list("pk", "owner__email")
        rows += [
            ActionItemReminder(
                action_item_id=pk, kind=kind, recipient=email, created_at=now, next_attempt_at=now
            )
            for pk, email in pending
        ]
    ActionItemReminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(rows)


def _hand_over(now: datetime, limit: int = CHUNK) -> int:
    """Step 2 for up to ``limit`` rows, in one transaction; returns how many were handed over."""
    with transaction.atomic():
        reminders = list(
            ActionItemReminder.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(sent_at__isnull=True, next_attempt_at__lte=now, email__isnull=True)
            .select_related("action_item__post_mortem__incident")
            .order_by("next_attempt_at", "id")[:limit]
        )
        for reminder in reminders:
            reminder.email = outgoing_email_queue_once(
                kind=OutgoingEmail.Kind.ACTION_ITEM_REMINDER,
                address=reminder.recipient,
                language="en",
                context=reminder_context(reminder),
                message_key=str(reminder.pk),
                incident=reminder.action_item.post_mortem.incident,
            ) or OutgoingEmail.objects.get(
                message_id=message_id(
                    kind=OutgoingEmail.Kind.ACTION_ITEM_REMINDER, message_key=str(reminder.pk)
                )
            )
            reminder.sent_at = now
            reminder.last_error = ""
            reminder.save(update_fields=["email", "sent_at", "last_error"])
    return len(reminders)


def reminder_context(reminder: ActionItemReminder) -> dict[str, str]:
    """What the ``action_item_reminder`` templates show of one reminder."""
    item = reminder.action_item
    incident = item.post_mortem.incident
    return {
        "reference": incident.reference or "",
        "when": "is overdue" if reminder.kind == ActionItemReminder.Kind.OVERDUE else "falls due",
        "due": item.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if item.due_at else "—",
        "description": item.description,
        "link": settings.SITE_URL.rstrip("/") + reverse("postmortems:action_items"),
    }


def action_item_reminders_scan(*, now: datetime | None = None) -> ReminderReport:
    """One pass at ``now`` (aware; default the current instant): record, then hand the emails
    over to the outbox (see the module docstring). Safe to run twice and in two processes at
    once. ``ReminderReport.sent`` counts the reminders handed over (the outbox sends them)."""
    now = now or timezone.now()
    report = ReminderReport(recorded=_record_due(now))
    while handed := _hand_over(now):
        report.sent += handed
        if handed < CHUNK:
            break
    return report
