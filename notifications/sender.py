"""The delivery sender: claims pending deliveries in small chunks and sends each chunk over one
SMTP connection, recording every result as it happens.

Algorithm (``deliveries_send_due``):

1. Pick up to ``NOTICE_SEND_CHUNK_SIZE`` pending deliveries whose next attempt is due, oldest
   first (partial index ``notifications_delivery_due``).
2. Claim them with one conditional UPDATE ("only if still pending"), stamping a fresh claim
   token, ``claimed_until = now + NOTICE_CLAIM_SECONDS`` and ``attempts + 1``. Two workers never
   claim the same row: the loser's UPDATE finds it no longer pending.
3. Open one SMTP connection and send each claimed delivery with its stored Message-ID,
   recording ``sent`` (relay accepted it), a retry with backoff (4xx, timeouts, dropped
   connections) or ``failed`` (5xx, or out of attempts) at once, row by row, conditional on the
   claim token. A killed worker therefore re-sends at most the messages in flight, with the
   same Message-ID, after the scanner returns its expired claims to ``pending``.
4. Meet the customers' clocks from the relay's acceptance time, and move incidents whose
   customers are all notified to ``notified``. Repeat from 1 until nothing is due.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.db.models import F
from django.utils import timezone

from notifications.models import Clock, Delivery, Escalation

logger = logging.getLogger("breachdesk.sender")


@dataclass
class SendReport:
    """What one ``deliveries_send_due`` run did (counts of deliveries)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    incidents: set[int] = field(default_factory=set)


class TemporaryFailure(Exception):
    """The relay or the network failed in a way worth retrying (4xx, timeout, disconnect)."""


class PermanentFailure(Exception):
    """The relay refused for good (5xx): retrying would not help."""


def retry_delay(attempts: int) -> timedelta:
    """Backoff after ``attempts`` tries: 15 s doubling per attempt, at most 10 minutes."""
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 600))


def classify(error: Exception) -> Exception:
    """A ``TemporaryFailure`` or ``PermanentFailure`` for an SMTP or network error."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        text = "; ".join(f"{code} {message!r}" for code, message in error.recipients.values())
        return PermanentFailure(text) if codes and min(codes) >= 500 else TemporaryFailure(text)
    if isinstance(error, smtplib.SMTPResponseException):
        text = f"{error.smtp_code} {error.smtp_error!r}"
        return PermanentFailure(text) if error.smtp_code >= 500 else TemporaryFailure(text)
    if isinstance(error, (smtplib.SMTPException, OSError)):
        return TemporaryFailure(f"{type(error).__name__}: {error}")
    if isinstance(error, ValueError):  # an address Django refuses to put in a header
        return PermanentFailure(f"{type(error).__name__}: {error}")
    return TemporaryFailure(f"{type(error).__name__}: {error}")


def _claim(now: datetime, limit: int) -> list[Delivery]:
    ids = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    if not ids:
        return []
    token = uuid.uuid4().hex
    Delivery.objects.filter(id__in=ids, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SENDING,
        claim_token=token,
        claimed_until=now + timedelta(seconds=settings.NOTICE_CLAIM_SECONDS),
        attempts=F("attempts") + 1,
    )
    return list(
        Delivery.objects.filter(claim_token=token, status=Delivery.Status.SENDING)
        .select_related("notice", "customer")
        .order_by("id")
    )


def _message(delivery: Delivery, connection) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=delivery.subject,
        body=delivery.body_text,
        to=[delivery.address],
        headers={"Message-ID": delivery.message_id, "Content-Language": delivery.language},
        connection=connection,
    )
    message.attach_alternative(delivery.body_html, "text/html")
    return message


def _record(delivery: Delivery, **values) -> bool:
    """Write a result only if our claim still holds (a slow worker must not overwrite the
    result of the worker that took over its expired claim)."""
    return bool(
        Delivery.objects.filter(
            pk=delivery.pk, claim_token=delivery.claim_token, status=Delivery.Status.SENDING
        ).update(claimed_until=None, **values)
    )


def _send_chunk(deliveries: list[Delivery], report: SendReport) -> None:
    connection = mailers.default
    try:
        connection.open()
    except Exception as error:  # noqa: BLE001 - the relay is unreachable: retry them all later
        failure = classify(error)
        for delivery in deliveries:
            _retry_or_fail(delivery, failure, report)
        return
    try:
        for delivery in deliveries:
            try:
                _message(delivery, connection).send()
            except Exception as error:  # noqa: BLE001 - recorded per delivery, others go on
                failure = classify(error)
                _retry_or_fail(delivery, failure, report)
                if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):
                    connection.close()
                    try:
                        connection.open()
                    except Exception as reopen_error:  # noqa: BLE001
                        rest = deliveries[deliveries.index(delivery) + 1 :]
                        for remaining in rest:
                            _retry_or_fail(remaining, classify(reopen_error), report)
                        return
                continue
            sent_at = timezone.now()
            if _record(delivery, status=Delivery.Status.SENT, sent_at=sent_at, last_error=""):
                report.sent += 1
                _meet_clock(delivery, sent_at, report)
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail; nothing to do
            logger.debug("SMTP close failed", exc_info=True)


def _retry_or_fail(delivery: Delivery, failure: Exception, report: SendReport) -> None:
    now = timezone.now()
    if isinstance(failure, PermanentFailure) or delivery.attempts >= settings.NOTICE_MAX_ATTEMPTS:
        if _record(delivery, status=Delivery.Status.FAILED, last_error=str(failure)[:2000]):
            report.failed += 1
            _escalate_if_customer_unreachable(delivery)
        return
    if _record(
        delivery,
        status=Delivery.Status.PENDING,
        last_error=str(failure)[:2000],
        next_attempt_at=now + retry_delay(delivery.attempts),
    ):
        report.retried += 1


def _meet_clock(delivery: Delivery, sent_at: datetime, report: SendReport) -> None:
    incident_id = delivery.notice.incident_id
    met = Clock.objects.filter(
        incident_id=incident_id,
        customer_id=delivery.customer_id,
        kind=Clock.Kind.CUSTOMER_NOTICE,
        met_at__isnull=True,
        waived_at__isnull=True,
    ).update(met_at=sent_at)
    if met:
        report.incidents.add(incident_id)


def _escalate_if_customer_unreachable(delivery: Delivery) -> None:
    """When every delivery of this notice to the customer has failed, raise one escalation."""
    from notifications.services import escalation_raise

    siblings = Delivery.objects.filter(notice_id=delivery.notice_id, customer_id=delivery.customer_id)
    if siblings.exclude(status=Delivery.Status.FAILED).exists():
        return
    clock = Clock.objects.filter(
        incident_id=delivery.notice.incident_id, customer_id=delivery.customer_id, kind=Clock.Kind.CUSTOMER_NOTICE
    ).first()
    if clock is not None and clock.is_open:
        escalation_raise(
            clock=clock,
            threshold=Escalation.Threshold.DELIVERY_FAILED,
            detail=f"Every delivery to {delivery.customer} failed; last error: {delivery.last_error or 'see deliveries'}",
        )


def deliveries_send_due(*, max_chunks: int | None = None) -> SendReport:
    """Send every delivery that is due, chunk by chunk (see the module docstring).

    Returns a ``SendReport``. Safe to run in several workers at once and to run twice.
    """
    from notifications.services import incident_settle_if_notified

    report = SendReport()
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        deliveries = _claim(timezone.now(), settings.NOTICE_SEND_CHUNK_SIZE)
        if not deliveries:
            break
        chunks += 1
        _send_chunk(deliveries, report)
    for incident_id in sorted(report.incidents):
        incident_settle_if_notified(incident_id=incident_id)
    return report


def deliveries_requeue_expired(*, now: datetime | None = None) -> int:
    """Return deliveries whose claim expired (a killed or stuck worker) to ``pending``, due at
    once; returns how many. The scanner calls this every minute."""
    now = now or timezone.now()
    return Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_until__lt=now).update(
        status=Delivery.Status.PENDING, claim_token="", claimed_until=None, next_attempt_at=now,
        last_error="Claim expired: the worker sending it stopped; re-queued.",
    )
