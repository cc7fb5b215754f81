"""The outbox of the emails that ``incidents`` itself sends (``OutgoingEmail``): the
confirmation of a customer report, and the "personal data breach declared" alert to the incident
managers and the owner (``declaration_alerts_queue``, written in the declaring transaction).
Customer notices and the other staff emails have their own outbox (``notifications.sender``);
this app may not import it. The deadline scanner (``notifications.scanner``, every minute)
re-queues expired claims here too and wakes ``incidents.tasks.send_outgoing_emails`` when rows
are due, so a lost wake-up or a killed worker only delays an email.

Algorithm (``outgoing_emails_send_due``), as the notice sender's:

1. Return claims that expired (a killed worker) to ``pending``.
2. Claim up to ``limit`` due ``pending`` rows with one conditional UPDATE ("only if still
   pending"), stamping a claim token, ``claimed_until`` and ``attempts + 1``; two workers never
   claim the same row.
3. Send the claimed rows over one SMTP connection with their stored Message-IDs; record each
   result: ``sent``, a retry with backoff (temporary errors), or ``failed`` (5xx, or
   ``NOTICE_MAX_ATTEMPTS`` reached). Repeat until nothing is due.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import uuid
from datetime import UTC, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from config.celery import enqueue
from incidents.addresses import header_text
from incidents.mail import SMTPUTF8Unavailable
from incidents.models import Incident, OutgoingEmail
from incidents.selectors import RESTRICTED_BODY, RESTRICTED_SUBJECT, addresses_outside

logger = logging.getLogger("breachdesk.outbox")

CHUNK = 50

#: The sender's task, queued by name (``incidents.tasks`` imports this module, not the reverse).
TASK_SEND_OUTGOING_EMAILS = "incidents.tasks.send_outgoing_emails"

#: ``OutgoingEmail.kind`` of the declaration alert.
DECLARATION_ALERT = "declaration_alert"


def message_domain() -> str:
    """The domain that ends every Message-ID: ``DEFAULT_FROM_EMAIL``'s."""
    return settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "breachdesk.invalid"


def address_key(address: str) -> str:
    """A short deterministic key for one recipient address (case-insensitive): the same
    address always gives the same Message-ID for the same email, whatever else changed."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]


def declaration_alert_recipients(incident: Incident) -> list[str]:
    """The addresses told that ``incident`` was declared: every active incident manager with
    an address, and the owner; sorted, each once (case-insensitively)."""
    users = get_user_model().objects.filter(groups__name="incident_manager", is_active=True).exclude(email="")
    addresses = {user.email.strip().lower(): user.email.strip() for user in users}
    owner = incident.owner
    if owner is not None and owner.email:
        addresses.setdefault(owner.email.strip().lower(), owner.email.strip())
    return sorted(addresses.values(), key=str.lower)


def declaration_alerts_queue(*, incident: Incident) -> int:
    """Put one "personal data breach declared" email per recipient
    (``declaration_alert_recipients``) in the outbox; return how many rows are new.

    Runs inside the declaring transaction (the rows commit with the declaration or not at all)
    and wakes ``incidents.tasks.send_outgoing_emails`` after commit. Safe to call twice: the
    Message-ID ``<declaration-alert.<incident id>.<address key>@domain>`` is unique, so an
    address already queued is skipped.
    """
    recipients = declaration_alert_recipients(incident)
    if not recipients:
        return 0
    link = settings.SITE_URL.rstrip("/") + reverse("incidents:incident_detail", args=[incident.pk])
    declared = f"{incident.declared_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if incident.declared_at else ""
    subject = incident.email_subject(f"[Breachdesk] Personal data breach declared: {incident.reference}")
    body = (
        f"{incident.reference} was declared a personal data breach at {declared}.\n"
        f"Title: {' '.join(incident.title.split())}\n"
        f"Affected customers: {incident.affected_customers.count()}\n"
        f"Customers must be notified within their notification window.\n\n{link}\n"
    )
    domain = message_domain()
    # A restricted incident: recipients who are not its members get an email naming nothing.
    outside = addresses_outside(incident, recipients)
    neutral_subject = incident.email_subject(RESTRICTED_SUBJECT)
    created = 0
    for address in recipients:
        hidden = address in outside
        _email, new = OutgoingEmail.objects.get_or_create(
            message_id=f"<declaration-alert.{incident.pk}.{address_key(address)}@{domain}>",
            defaults={
                "kind": DECLARATION_ALERT,
                "incident": incident,
                "to_address": address,
                "language": "en",
                "subject": " ".join((neutral_subject if hidden else subject).split())[:300],
                "body_text": RESTRICTED_BODY if hidden else body,
            },
        )
        created += new
    if created:
        transaction.on_commit(lambda: enqueue(TASK_SEND_OUTGOING_EMAILS), robust=True)
    return created


def outgoing_emails_due_exist() -> bool:
    """Whether any ``OutgoingEmail`` is due now (one probe of ``incidents_outgoingemail_due``)."""
    return OutgoingEmail.objects.filter(
        status=OutgoingEmail.Status.PENDING, next_attempt_at__lte=timezone.now()
    ).exists()


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 600))


def _permanent(error: Exception) -> bool:
    if isinstance(error, SMTPUTF8Unavailable):  # about our relay: the same answer next time
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return isinstance(error, ValueError)


def _claim(limit: int) -> list[OutgoingEmail]:
    now = timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(
            OutgoingEmail.objects.select_for_update(skip_locked=True)
            .filter(status=OutgoingEmail.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        OutgoingEmail.objects.filter(id__in=ids, status=OutgoingEmail.Status.PENDING).update(
            status=OutgoingEmail.Status.SENDING,
            claim_token=token,
            claimed_until=now + timedelta(seconds=settings.NOTICE_CLAIM_SECONDS),
            attempts=F("attempts") + 1,
        )
    return list(
        OutgoingEmail.objects.filter(claim_token=token, status=OutgoingEmail.Status.SENDING).order_by("id")
    )


def outgoing_emails_requeue_expired() -> int:
    """Return rows whose claim expired to ``pending``; the number returned."""
    return OutgoingEmail.objects.filter(
        status=OutgoingEmail.Status.SENDING, claimed_until__lt=timezone.now()
    ).update(status=OutgoingEmail.Status.PENDING, claim_token="", next_attempt_at=timezone.now())


def outgoing_emails_send_due() -> dict[str, int]:
    """Send every due ``OutgoingEmail``; return counts ``{"sent", "retried", "failed"}``."""
    counts = {"sent": 0, "retried": 0, "failed": 0}
    outgoing_emails_requeue_expired()
    while True:
        claimed = _claim(CHUNK)
        if not claimed:
            return counts
        with mailers.default as connection:
            for email in claimed:
                message = EmailMessage(
                    subject=header_text(email.subject),
                    body=email.body_text,
                    to=[email.to_address],
                    headers={"Message-ID": email.message_id, "Content-Language": email.language},
                )
                mine = OutgoingEmail.objects.filter(pk=email.pk, claim_token=email.claim_token)
                try:
                    connection.send_messages([message])
                except Exception as error:  # noqa: BLE001 - every failure is recorded on the row
                    text = f"{type(error).__name__}: {error}"[:2000]
                    if _permanent(error) or email.attempts >= settings.NOTICE_MAX_ATTEMPTS:
                        mine.update(status=OutgoingEmail.Status.FAILED, last_error=text, claim_token="")
                        counts["failed"] += 1
                        logger.error("Email %s to %s failed for good: %s", email.pk, email.to_address, text)
                    else:
                        mine.update(
                            status=OutgoingEmail.Status.PENDING,
                            last_error=text,
                            claim_token="",
                            next_attempt_at=timezone.now() + _backoff(email.attempts),
                        )
                        counts["retried"] += 1
                    continue
                mine.update(status=OutgoingEmail.Status.SENT, sent_at=timezone.now(), claim_token="")
                counts["sent"] += 1
