"""The outbox of emails that are not customer notices (``OutgoingEmail``): today, the
confirmation of a customer report. Customer notices have their own outbox
(``notifications.sender``), with per-contact rendering and clocks.

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

import logging
import smtplib
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from incidents.addresses import header_text
from incidents.mail import SMTPUTF8Unavailable
from incidents.models import OutgoingEmail

logger = logging.getLogger("breachdesk.outbox")

CHUNK = 50


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
