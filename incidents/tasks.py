"""Celery tasks of the incident register. Thin: take ids, re-fetch, do one thing, safe twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, WorkerHeartbeat
from incidents.outbox import declaration_alerts_queue


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_declaration_alert(incident_id: int) -> int:
    """Make sure the declaration alerts of ``incident_id`` are in the outbox; the number of
    rows added (0 when they already are).

    Kept for messages queued before issue 8 (the declaration now writes its alert rows itself,
    ``incidents.outbox.declaration_alerts_queue``): safe to run any number of times, it never
    sends anything twice.
    """
    with transaction.atomic():
        incident = Incident.objects.select_related("owner").get(pk=incident_id)
        return declaration_alerts_queue(incident=incident)


@shared_task
def record_worker_heartbeat() -> None:
    """Record that a worker with beat is alive (shown on the web pages)."""
    WorkerHeartbeat.objects.update_or_create(name="beat", defaults={"beat_at": timezone.now()})


@shared_task
def verify_audit_trail() -> int:
    """Verify every audit chain; log and return the number of breaks found (0: intact)."""
    import logging

    from incidents.audit import verify_chain
    from incidents.checkpoints import configured_file_checkpoints

    logger = logging.getLogger("breachdesk.audit")
    try:
        file_checkpoints = configured_file_checkpoints()
    except (OSError, ValueError) as error:
        logger.error("The audit checkpoint file was not used: %s", error)
        file_checkpoints = []
    breaks = verify_chain(extra_checkpoints=file_checkpoints)
    for chain_break in breaks:
        logger.error(
            "Audit chain break: %s %s sequence %s: %s",
            chain_break.chain,
            chain_break.subject_id,
            chain_break.sequence,
            chain_break.reason,
        )
    return len(breaks)


@shared_task
def checkpoint_audit_trail() -> int:
    """Write a signed checkpoint of every audit chain that grew (``incidents.checkpoints``);
    return how many were written. Run by beat every 15 minutes; safe twice."""
    from incidents.checkpoints import audit_checkpoints_write

    return len(audit_checkpoints_write())


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_outgoing_emails() -> dict[str, int]:
    """Send every due ``OutgoingEmail`` (``incidents.outbox``); queued on commit of a new one
    and run every minute by beat, so a lost wake-up only delays an email. Safe twice."""
    from incidents.outbox import outgoing_emails_send_due

    return outgoing_emails_send_due()


@shared_task
def purge_idempotency_records() -> int:
    """Delete ``Idempotency-Key`` answers older than ``IDEMPOTENCY_KEY_HOURS``; the number."""
    from datetime import timedelta

    from incidents.models import IdempotencyRecord

    oldest = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=oldest).delete()
    return deleted


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_webhooks() -> dict[str, int]:
    """Send every due webhook delivery (``incidents.webhook_sender.webhooks_send_due``); queued
    on commit of a new event or a redelivery, and by the deadline scanner every minute while any
    is due, so a lost wake-up only delays an event. Safe twice."""
    from incidents.webhook_sender import webhooks_send_due

    return webhooks_send_due().__dict__
