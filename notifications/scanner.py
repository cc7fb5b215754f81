"""The deadline scanner: one pass answers "what is due now?" and acts on it.

Run every minute by Celery beat (queue ``deadlines``) and by ``manage.py check_deadlines``.
Everything it does is recorded in rows with unique constraints or conditional updates, so a
missed tick, a restart or two scanners at once are harmless.

1. Escalations: open clocks due within 48 hours (partial index
   ``notifications_clock_open_due``); each threshold reached (48, 24, 12, 6, 1 hours before due,
   and overdue) is recorded once per clock. When several are reached in one pass (the scanner
   was down), all are recorded and only the most urgent is emailed.
2. Automatic initial notices: at ``NOTICE_AUTO_SEND_LEAD_HOURS`` before due, any customer whose
   clock is open and who has nothing on its way gets the initial notice from the facts known so
   far (0 disables this).
3. Outbox rows (deliveries and other emails) whose claim expired (a killed worker) go back to
   ``pending``.
4. Approved notices whose deliveries are still to be created (the worker's message was lost,
   or it was killed) are listed, and ``tasks.scan_deadlines`` queues a worker for each; the
   worker resumes where the last one stopped.
5. Reminders on every date (``notifications.reminders``): playbook task due dates,
   withholding review dates and training expiry raise one reminder when due and one when
   overdue, each an outbox row.
6. If any outbox row is due, the sender is woken.
7. The same for the outbox of ``incidents`` (report confirmations, declaration alerts:
   ``incidents.outbox``): expired claims go back to ``pending``, and
   ``incidents.tasks.send_outgoing_emails`` is woken when rows are due.
8. Webhook deliveries (``incidents.webhook_sender``) whose claim expired go back to
   ``pending``, and if any is due, the webhook sender is woken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from incidents.outbox import outgoing_emails_due_exist, outgoing_emails_requeue_expired
from incidents.webhook_sender import webhook_deliveries_due_exists, webhook_deliveries_requeue_expired
from notifications import clocks
from notifications.models import Clock
from notifications.reminders import due_reminders_scan
from notifications.sender import outbox_due_exists, outbox_requeue_expired
from notifications.services import (
    escalation_raise,
    notice_issue_initial_automatically,
    notices_awaiting_deliveries,
    open_clock_filter,
)

LONGEST_THRESHOLD = max(left for _name, left in clocks.ESCALATION_THRESHOLDS)


@dataclass
class ScanReport:
    """What one pass did: escalations recorded, automatic notices issued, claims re-queued,
    date reminders raised, whether outbox rows were due (the sender was woken), whether
    ``incidents``' own outbox had rows due (its sender was woken), the approved notices whose
    deliveries are still to be created (a worker is queued for each), and the same for webhook
    deliveries (claims re-queued; whether any is due: the webhook sender is woken)."""

    escalations: int = 0
    automatic_notices: int = 0
    requeued: int = 0
    reminders: int = 0
    deliveries_due: bool = False
    incident_emails_due: bool = False
    notices_awaiting_deliveries: list[int] = field(default_factory=list)
    webhooks_requeued: int = 0
    webhooks_due: bool = False


def deadlines_scan(*, now: datetime | None = None) -> ScanReport:
    """One pass of the scanner at ``now`` (aware; default the current instant)."""
    now = now or timezone.now()
    report = ScanReport()
    report.escalations = _raise_escalations(now)
    report.automatic_notices = _issue_automatic_notices(now)
    report.requeued = outbox_requeue_expired(now=now) + outgoing_emails_requeue_expired()
    report.reminders = due_reminders_scan(now=now)
    report.notices_awaiting_deliveries = notices_awaiting_deliveries()
    report.deliveries_due = outbox_due_exists(now=now)
    report.incident_emails_due = outgoing_emails_due_exist()
    report.webhooks_requeued = webhook_deliveries_requeue_expired(now=now)
    report.webhooks_due = webhook_deliveries_due_exists(now=now)
    return report


def _raise_escalations(now: datetime) -> int:
    raised = 0
    due_soon = (
        Clock.objects.filter(open_clock_filter(now, LONGEST_THRESHOLD))
        .select_related("incident__owner", "customer")
        .prefetch_related("escalations")
        .order_by("due_at")
    )
    for clock in due_soon.iterator(chunk_size=500):
        recorded = {escalation.threshold for escalation in clock.escalations.all()}
        reached = [
            name
            for name in clocks.thresholds_passed(starts_at=clock.starts_at, due=clock.due_at, now=now)
            if name not in recorded
        ]
        for name in reached:
            most_urgent = name == reached[-1]
            escalation = escalation_raise(
                clock=clock,
                threshold=name,
                notify=most_urgent,
                now=now,
                detail="" if most_urgent else f"Superseded by {reached[-1]} in the same pass.",
            )
            raised += escalation is not None
    return raised


def _issue_automatic_notices(now: datetime) -> int:
    lead = settings.NOTICE_AUTO_SEND_LEAD_HOURS
    if lead <= 0:
        return 0
    # Each incident once, most urgent first. Deduplicated here: DISTINCT with the default
    # ordering gave one row per clock, and without it SQLite scans the whole table.
    incident_ids = dict.fromkeys(
        Clock.objects.filter(
            open_clock_filter(now, timedelta(hours=lead)), kind=Clock.Kind.CUSTOMER_NOTICE
        ).values_list("incident_id", flat=True)
    )
    issued = 0
    for incident_id in incident_ids:
        issued += notice_issue_initial_automatically(incident_id=incident_id, now=now) is not None
    return issued
