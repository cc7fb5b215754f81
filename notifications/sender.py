"""The delivery sender: claims pending deliveries in small chunks and sends each chunk over one
SMTP connection, recording the results chunk by chunk.

Algorithm (``deliveries_send_due``):

1. Pick up to ``NOTICE_SEND_CHUNK_SIZE`` pending deliveries whose next attempt is due, oldest
   first (partial index ``notifications_delivery_due``), skipping rows another worker is
   claiming at that moment (``SELECT ... FOR UPDATE SKIP LOCKED``).
2. Claim them with one conditional UPDATE ("only if still pending"), stamping a fresh claim
   token, ``claimed_until = now + NOTICE_CLAIM_SECONDS`` and ``attempts + 1``. Two workers never
   claim the same row.
3. Open one SMTP connection and send each claimed delivery with its stored Message-ID: the
   message built once per (customer, language) at creation (``NoticeMessage``) with this
   contact's headers in front (``notifications.messages.delivery_bytes``), handed to the relay
   as bytes; through a non-SMTP mail backend (console, file, memory), through Django's mail
   API. A refusal is recorded at once: a retry with backoff (4xx, timeouts, dropped connections) or
   ``failed`` (5xx, or out of attempts). Acceptances are recorded together when the chunk
   ends, in one transaction, each ``sent`` at its own acceptance instant, conditional on the
   claim token. A killed worker therefore re-sends at most one chunk (the messages in flight),
   with the same Message-IDs, after the scanner returns its expired claims to ``pending``.
4. In that transaction, meet the customers' clocks from the relay's first acceptance time;
   then move incidents whose customers are all notified to ``notified``. Repeat from 1 until
   nothing is due.
"""

from __future__ import annotations

import email.message
import email.policy
import hashlib
import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Value, When
from django.utils import timezone

from notifications.messages import address_header, delivery_bytes
from notifications.models import Clock, Delivery, Escalation, NoticeMessage, SentMessage
from notifications.services import escalation_raise, incident_settle_if_notified

logger = logging.getLogger("breachdesk.sender")


@dataclass
class SendReport:
    """What one ``deliveries_send_due`` run did (counts of deliveries)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    incidents: set[int] = field(default_factory=set)
    #: (incident id, customer id) pairs whose clock this run already met or found settled.
    parties_settled: set[tuple[int, int]] = field(default_factory=set, repr=False)


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
    token = uuid.uuid4().hex
    with transaction.atomic():
        # SKIP LOCKED: workers claiming at the same moment take different rows. Without it the
        # loser's UPDATE found its rows taken, claimed nothing and its worker stopped sending.
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENDING,
            claim_token=token,
            claimed_until=now + timedelta(seconds=settings.NOTICE_CLAIM_SECONDS),
            attempts=F("attempts") + 1,
        )
    claimed = list(
        Delivery.objects.filter(claim_token=token, status=Delivery.Status.SENDING)
        .select_related("notice", "customer")
        .defer("body_text", "body_html")
        .order_by("id")
    )
    # Each shared message once per chunk, not once per delivery.
    messages = NoticeMessage.objects.in_bulk({d.notice_message_id for d in claimed if d.notice_message_id})
    for delivery in claimed:
        if delivery.notice_message_id:
            delivery.notice_message = messages[delivery.notice_message_id]
    return claimed


def _headers(delivery: Delivery) -> dict[str, str]:
    headers = {"Message-ID": delivery.message_id, "Content-Language": delivery.language}
    if delivery.in_reply_to:
        headers["In-Reply-To"] = delivery.in_reply_to
    if delivery.references:
        headers["References"] = delivery.references
    return headers


class RecordedMessage(EmailMultiAlternatives):
    """An email that builds its MIME message once per policy, so the bytes recorded after
    sending (``raw``) are the bytes the backend handed to the relay."""

    def message(
        self, *, policy: email.policy.Policy | None = email.policy.default
    ) -> email.message.EmailMessage:
        built = getattr(self, "_built", None)
        if built is None or built[0] is not policy:
            self._built = (policy, super().message(policy=policy))
        return self._built[1]

    def raw(self) -> bytes:
        """The message as SMTP sends it (``email.policy.SMTP``: CRLF line ends)."""
        return self.message(policy=email.policy.SMTP).as_bytes()


def _message(delivery: Delivery, connection: BaseEmailBackend | None) -> RecordedMessage:
    """The delivery as a Django email (non-SMTP backends, unusual addresses, and deliveries
    created before messages were shared)."""
    shared = delivery.notice_message if delivery.notice_message_id else None
    text = (
        shared.body_text
        if shared
        else Delivery.objects.values_list("body_text", flat=True).get(pk=delivery.pk)
    )
    html = (
        shared.body_html
        if shared
        else Delivery.objects.values_list("body_html", flat=True).get(pk=delivery.pk)
    )
    message = RecordedMessage(
        subject=delivery.subject,
        body=text,
        to=[delivery.address],
        headers=_headers(delivery),
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    return message


class _Transport:
    """Sends deliveries over an open mail backend: as prebuilt bytes straight over the SMTP
    connection when the backend is Django's SMTP backend, else through Django's mail API.
    ``send`` returns the bytes handed to the relay (recorded as ``SentMessage``)."""

    def __init__(self, connection: BaseEmailBackend) -> None:
        self.connection = connection
        self.raw = isinstance(connection, SMTPBackend)
        self.envelope_from = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
        self.from_header = address_header("From", settings.DEFAULT_FROM_EMAIL)

    def send(self, delivery: Delivery) -> bytes:
        shared = delivery.notice_message if delivery.notice_message_id else None
        smtp = getattr(self.connection, "connection", None)
        if self.raw and shared is not None and smtp is not None:
            try:
                data = delivery_bytes(
                    from_header=self.from_header,
                    to_address=delivery.address,
                    message_id=delivery.message_id,
                    in_reply_to=delivery.in_reply_to,
                    references=delivery.references.split(),
                    language=delivery.language,
                    subject_header=shared.subject_header,
                    body=bytes(shared.mime),
                    date=timezone.now(),
                )
            except ValueError:
                data = None
            if data is not None:
                smtp.sendmail(self.envelope_from, [delivery.address], data)
                return data
        message = _message(delivery, self.connection)
        message.send()
        return message.raw()


def _record(delivery: Delivery, **values: Any) -> bool:
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
    accepted: list[tuple[Delivery, datetime, bytes]] = []
    transport = _Transport(connection)
    try:
        for delivery in deliveries:
            try:
                raw = transport.send(delivery)
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
            accepted.append((delivery, timezone.now(), raw))
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail; nothing to do
            logger.debug("SMTP close failed", exc_info=True)
        _record_sent(accepted, report)


def _record_sent(accepted: list[tuple[Delivery, datetime, bytes]], report: SendReport) -> None:
    """Record one chunk's acceptances in one transaction: each row still under our claim
    becomes ``sent`` at its own acceptance instant with the bytes sent (``SentMessage``), and
    each customer's clock is met at the first of them. (Row by row, two commits per message
    cost more than the SMTP exchange.)"""
    if not accepted:
        return
    sent_at = {delivery.pk: at for delivery, at, _raw in accepted}
    with transaction.atomic():
        held = set(
            Delivery.objects.select_for_update()
            .filter(pk__in=sent_at, claim_token=accepted[0][0].claim_token, status=Delivery.Status.SENDING)
            .values_list("pk", flat=True)
        )
        if not held:
            return
        Delivery.objects.filter(pk__in=held).update(
            status=Delivery.Status.SENT,
            last_error="",
            claimed_until=None,
            sent_at=Case(
                *(When(pk=pk, then=Value(sent_at[pk])) for pk in held), output_field=DateTimeField()
            ),
        )
        SentMessage.objects.bulk_create(
            (
                SentMessage(
                    delivery_id=delivery.pk, raw=raw, sha256=hashlib.sha256(raw).hexdigest(), recorded_at=at
                )
                for delivery, at, raw in accepted
                if delivery.pk in held
            ),
            ignore_conflicts=True,
        )
        first_sent: dict[tuple[int, int], datetime] = {}
        for delivery, at, _raw in accepted:
            if delivery.pk in held:
                first_sent.setdefault((delivery.notice.incident_id, delivery.customer_id), at)
        _meet_clocks(first_sent, report)
    report.sent += len(held)


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


def _meet_clocks(first_sent: dict[tuple[int, int], datetime], report: SendReport) -> None:
    """Meet the open clock of each (incident, customer) at its first acceptance instant. A
    party already handled in this run is skipped: its clock is met or was not open, and a met
    or waived clock never reopens."""
    by_incident: dict[int, dict[int, datetime]] = {}
    for (incident_id, customer_id), at in first_sent.items():
        if (incident_id, customer_id) not in report.parties_settled:
            by_incident.setdefault(incident_id, {})[customer_id] = at
    for incident_id, firsts in by_incident.items():
        met = Clock.objects.filter(
            incident_id=incident_id,
            customer_id__in=firsts,
            kind=Clock.Kind.CUSTOMER_NOTICE,
            met_at__isnull=True,
            waived_at__isnull=True,
        ).update(
            met_at=Case(
                *(When(customer_id=customer_id, then=Value(at)) for customer_id, at in firsts.items()),
                output_field=DateTimeField(),
            )
        )
        if met:
            report.incidents.add(incident_id)
        report.parties_settled.update((incident_id, customer_id) for customer_id in firsts)


def _escalate_if_customer_unreachable(delivery: Delivery) -> None:
    """When every delivery of this notice to the customer has failed, raise one escalation."""
    siblings = Delivery.objects.filter(notice_id=delivery.notice_id, customer_id=delivery.customer_id)
    if siblings.exclude(status=Delivery.Status.FAILED).exists():
        return
    clock = Clock.objects.filter(
        incident_id=delivery.notice.incident_id,
        customer_id=delivery.customer_id,
        kind=Clock.Kind.CUSTOMER_NOTICE,
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


def deliveries_backlog_exceeds(count: int) -> bool:
    """Whether more than ``count`` deliveries are due now (reads at most ``count + 1`` index
    entries of ``notifications_delivery_due``)."""
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now())
    return due.order_by("next_attempt_at")[count : count + 1].exists()


def deliveries_requeue_expired(*, now: datetime | None = None) -> int:
    """Return deliveries whose claim expired (a killed or stuck worker) to ``pending``, due at
    once; returns how many. The scanner calls this every minute."""
    now = now or timezone.now()
    return Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_until__lt=now).update(
        status=Delivery.Status.PENDING,
        claim_token="",
        claimed_until=None,
        next_attempt_at=now,
        last_error="Claim expired: the worker sending it stopped; re-queued.",
    )
