"""Celery tasks of the notification system. Thin: take ids, call one service, safe twice.

``scan_deadlines`` runs every minute on queue ``deadlines``; ``create_notice_deliveries`` and
``send_due_deliveries`` on queue ``notices``; ``send_contact_confirmations`` daily on
``default``. All are idempotent, so they acknowledge late and are re-delivered if a worker is
lost mid-task.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from config.celery import enqueue
from incidents.outbox import TASK_SEND_OUTGOING_EMAILS as TASK_SEND_INCIDENT_EMAILS
from notifications.confirmations import contacts_confirmation_round
from notifications.scanner import deadlines_scan
from notifications.sender import outbox_backlog_exceeds, outbox_send_due
from notifications.services import escalation_email, notice_deliveries_create


@shared_task(acks_late=True, reject_on_worker_lost=True)
def scan_deadlines() -> dict:
    """One scanner pass (``notifications.scanner.deadlines_scan``); wakes the sender when
    deliveries or other emails are due, ``incidents.tasks.send_outgoing_emails`` when
    ``incidents``' own outbox has rows due, and the webhook sender
    (``incidents.tasks.send_webhooks``) when webhook deliveries are. Returns the pass's counts."""
    report = deadlines_scan()
    for notice_id in report.notices_awaiting_deliveries:
        enqueue(create_notice_deliveries, notice_id)
    if report.deliveries_due:
        enqueue(send_due_deliveries)
    if report.incident_emails_due:
        enqueue(TASK_SEND_INCIDENT_EMAILS)
    if report.webhooks_due:
        enqueue("incidents.tasks.send_webhooks")
    return report.__dict__


@shared_task(acks_late=True, reject_on_worker_lost=True)
def create_notice_deliveries(notice_id: int) -> dict:
    """Create the deliveries of an approved notice from its committed approval
    (``notifications.services.notice_deliveries_create``): resumable, and safe to run in
    several workers at once. Returns the run's counts."""
    report = notice_deliveries_create(notice_id=notice_id)
    return report.__dict__


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_due_deliveries() -> dict:
    """Send every due outbox row, notice deliveries first (``notifications.sender.outbox_send_due``).

    While more than a chunk is due, it first wakes one more sender, so a ``notices`` worker
    with several processes (or several workers) sends one notice in parallel; claims skip rows
    another sender holds. A sender that finds nothing due ends at once, which bounds the chain.
    """
    if not send_due_deliveries.app.conf.task_always_eager and outbox_backlog_exceeds(
        settings.NOTICE_SEND_CHUNK_SIZE
    ):
        enqueue(send_due_deliveries)
    report = outbox_send_due()
    return {
        "sent": report.sent,
        "retried": report.retried,
        "failed": report.failed,
        "contacts_undeliverable": report.contacts_undeliverable,
    }


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_escalation(escalation_id: int) -> int:
    """Email one escalation to its recipients; returns how many received it."""
    return escalation_email(escalation_id=escalation_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_contact_confirmations() -> dict:
    """One confirmation round (``notifications.confirmations.contacts_confirmation_round``):
    mark customers whose links expired unanswered, ask up to ``CONTACT_CONFIRMATION_BATCH``
    customers that are due, and queue itself again while more are due. Beat runs it daily."""
    result = contacts_confirmation_round()
    if result.more_due:
        enqueue(send_contact_confirmations)
    return result.__dict__
