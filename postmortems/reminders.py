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
2. Send: unsent rows whose next attempt is due are claimed with ``SELECT ... FOR UPDATE SKIP
   LOCKED`` and a conditional update that moves their next attempt past the claim, so two
   scanners never take the same row; each is emailed and marked sent, or its error recorded
   and retried with backoff (a refused address, 5xx, after 3 attempts is given up and kept
   with its error).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from incidents.selectors import RESTRICTED_BODY, RESTRICTED_SUBJECT, addresses_outside
from postmortems.models import REMINDER_DUE_LEAD, ActionItem, ActionItemReminder

logger = logging.getLogger("breachdesk.reminders")

#: How long a claimed reminder is held before another scanner may try it.
CLAIM = timedelta(minutes=5)
#: Attempts before a reminder is given up (its last error stays on the row).
MAX_ATTEMPTS = 8


@dataclass
class ReminderReport:
    """What one pass did: reminder rows recorded, emails sent, failures recorded."""

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


def _claim(now: datetime, limit: int = 50) -> list[ActionItemReminder]:
    with transaction.atomic():
        ids = list(
            ActionItemReminder.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True, next_attempt_at__lte=now, attempts__lt=MAX_ATTEMPTS)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        ActionItemReminder.objects.filter(id__in=ids, sent_at__isnull=True, next_attempt_at__lte=now).update(
            next_attempt_at=now + CLAIM, attempts=F("attempts") + 1
        )
    return list(
        ActionItemReminder.objects.filter(id__in=ids, sent_at__isnull=True)
        .select_related("action_item__post_mortem__incident")
        .order_by("id")
    )


def _message_domain() -> str:
    address = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">").strip()
    return address or "breachdesk.invalid"


def reminder_email(reminder: ActionItemReminder) -> EmailMessage:
    """The email of one reminder (subject marked ``[DRILL]`` for a drill's item); neutral, naming
    nothing, when the incident is restricted and the recipient is not its member."""
    item = reminder.action_item
    incident = item.post_mortem.incident
    when = "is overdue" if reminder.kind == ActionItemReminder.Kind.OVERDUE else "falls due"
    due = item.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if item.due_at else "—"
    link = settings.SITE_URL.rstrip("/") + reverse("postmortems:action_items")
    headers = {"Message-ID": f"<action-item-{item.pk}.{reminder.kind}@{_message_domain()}>"}
    if addresses_outside(incident, [reminder.recipient]):
        return EmailMessage(
            subject=incident.email_subject(RESTRICTED_SUBJECT),
            body=f"{RESTRICTED_BODY}\nYour action items: {link}\n",
            to=[reminder.recipient],
            headers=headers,
        )
    return EmailMessage(
        subject=incident.email_subject(f"[Breachdesk] Action item {when}: {incident.reference}"),
        body=(
            f"Your action item from the post-mortem of {incident.reference} {when}.\n\n"
            f"{item.description}\n\nDue: {due}\n\nMark it done, or ask an incident manager to accept "
            f"its risk: {link}\n"
        ),
        to=[reminder.recipient],
        headers={"Message-ID": f"<action-item-{item.pk}.{reminder.kind}@{_message_domain()}>"},
    )


def action_item_reminders_scan(*, now: datetime | None = None) -> ReminderReport:
    """One pass at ``now`` (aware; default the current instant): record, then send (see the
    module docstring). Safe to run twice and in two processes at once."""
    now = now or timezone.now()
    report = ReminderReport(recorded=_record_due(now))
    while claimed := _claim(now):
        for reminder in claimed:
            try:
                reminder_email(reminder).send()
            except Exception as error:  # noqa: BLE001 - recorded on the row and retried
                backoff = timedelta(seconds=min(60 * 2**reminder.attempts, 3600))
                ActionItemReminder.objects.filter(pk=reminder.pk).update(
                    last_error=f"{type(error).__name__}: {error}"[:2000], next_attempt_at=now + backoff
                )
                logger.warning("Reminder %s failed; retrying later.", reminder.pk, exc_info=True)
                report.failed += 1
                continue
            ActionItemReminder.objects.filter(pk=reminder.pk).update(sent_at=timezone.now(), last_error="")
            report.sent += 1
        if len(claimed) < 50:
            break
    return report
