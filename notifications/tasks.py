"""Celery tasks of the notification system. Thin: take ids, call one service, safe twice.

``scan_deadlines`` runs every minute on queue ``deadlines``; ``create_notice_deliveries`` and
``send_due_deliveries`` on queue ``notices``. All are idempotent, so they acknowledge late and
are re-delivered if a worker is lost mid-task.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from config.celery import enqueue
from notifications.scanner import deadlines_scan
from notifications.sender import deliveries_backlog_exceeds, deliveries_send_due
from notifications.services import escalation_email, notice_deliveries_create


@shared_task(acks_late=True, reject_on_worker_lost=True)
def scan_deadlines() -> dict:
    """One scanner pass (``notifications.scanner.deadlines_scan``); wakes the sender when
    deliveries are due. Returns the pass's counts."""
    report = deadlines_scan()
    for notice_id in report.notices_awaiting_deliveries:
        enqueue(create_notice_deliveries, notice_id)
    if report.deliveries_due:
        enqueue(send_due_deliveries)
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
    """Send every due delivery (``notifications.sender.deliveries_send_due``).

    While more than a chunk is due, it first wakes one more sender, so a ``notices`` worker
    with several processes (or several workers) sends one notice in parallel; claims skip rows
    another sender holds. A sender that finds nothing due ends at once, which bounds the chain.
    """
    if not send_due_deliveries.app.conf.task_always_eager and deliveries_backlog_exceeds(
        settings.NOTICE_SEND_CHUNK_SIZE
    ):
        enqueue(send_due_deliveries)
    report = deliveries_send_due()
    return {"sent": report.sent, "retried": report.retried, "failed": report.failed}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_escalation(escalation_id: int) -> int:
    """Email one escalation to its recipients; returns how many received it."""
    return escalation_email(escalation_id=escalation_id)
