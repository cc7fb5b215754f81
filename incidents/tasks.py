"""Celery tasks of the incident register. Thin: take ids, re-fetch, do one thing, safe twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, WorkerHeartbeat
from incidents.selectors import RESTRICTED_BODY, RESTRICTED_SUBJECT, addresses_outside


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_declaration_alert(incident_id: int) -> int:
    """Email the incident managers and the owner that ``incident_id`` was declared.

    Returns the number of recipients (0 when there is nobody with an address). For a restricted
    incident, recipients who are not its members get ``RESTRICTED_SUBJECT`` and a body that
    names nothing (``incidents.selectors.addresses_outside``). Running it twice
    sends twice; it is queued once, on commit of the declaration.
    """
    incident = Incident.objects.select_related("owner").get(pk=incident_id)
    users = get_user_model().objects.filter(groups__name="incident_manager", is_active=True)
    recipients = {user.email for user in users if user.email}
    if incident.owner and incident.owner.email:
        recipients.add(incident.owner.email)
    if not recipients:
        return 0
    outside = addresses_outside(incident, recipients)
    if outside:
        send_mail(
            subject=incident.email_subject(RESTRICTED_SUBJECT),
            message=RESTRICTED_BODY,
            from_email=None,
            recipient_list=sorted(outside),
        )
    members = recipients - outside
    if not members:
        return len(recipients)
    link = settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk])
    declared = incident.declared_at.strftime("%Y-%m-%d %H:%M UTC") if incident.declared_at else ""
    send_mail(
        subject=incident.email_subject(f"[Breachdesk] Personal data breach declared: {incident.reference}"),
        message=(
            f"{incident.reference} was declared a personal data breach at {declared}.\n"
            f"Title: {incident.title}\n"
            f"Affected customers: {incident.affected_customers.count()}\n"
            f"Customers must be notified within their notification window.\n\n{link}\n"
        ),
        from_email=None,
        recipient_list=sorted(members),
    )
    return len(recipients)


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
