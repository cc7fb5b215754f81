"""The webhook sender: claims due ``WebhookDelivery`` rows and POSTs them, signed.

Algorithm (``webhooks_send_due``), as the notice sender's (``notifications.sender``):

1. Return claims that expired (a killed worker) to ``pending``.
2. Pick up to ``WEBHOOK_SEND_CHUNK_SIZE`` due ``pending`` rows, oldest first (partial index
   ``incidents_webhookdel_due``), skipping rows another worker is claiming
   (``SELECT ... FOR UPDATE SKIP LOCKED``), and claim them with one conditional UPDATE ("only if
   still pending"), stamping a claim token, ``claimed_until`` and ``attempts + 1``. Two senders
   never claim the same row.
3. For each claimed row: resolve the subscriber's host and refuse a non-public address
   (server-side request forgery; ``incidents.webhooks.webhook_url_resolve``), connect to the
   address checked, POST the JSON body with ``Breachdesk-Event``, ``Breachdesk-Delivery`` and
   ``Breachdesk-Signature``, within ``WEBHOOK_CONNECT_TIMEOUT_SECONDS`` and
   ``WEBHOOK_READ_TIMEOUT_SECONDS``. Redirects are not followed.
4. Record the attempt (``WebhookAttempt``) and the result, conditional on the claim token:
   a 2xx is ``delivered``; a 5xx, 408, 429, a timeout or a connection error retries with
   backoff (``WEBHOOK_RETRY_BASE_SECONDS`` doubling, at most ``WEBHOOK_RETRY_MAX_SECONDS``)
   until ``WEBHOOK_MAX_ATTEMPTS``, then ``failed``; any other answer (3xx, 4xx), a refused
   address or an inactive subscriber is ``failed`` at once. Repeat from 2 until nothing is due.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from incidents.models import WebhookAttempt, WebhookDelivery
from incidents.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    UnsafeWebhookAddress,
    signature_header,
    subscriber_secrets,
    webhook_payload,
    webhook_url_resolve,
)

logger = logging.getLogger("breachdesk.webhooks")

#: Answers worth retrying besides 5xx: Request Timeout, Too Many Requests.
RETRY_STATUSES = frozenset({408, 429})
#: How much of an answer's body is read (and the first part kept as the error).
MAX_ANSWER_BYTES = 65536
USER_AGENT = "Breachdesk-Webhooks/1"


@dataclass
class WebhookSendReport:
    """What one ``webhooks_send_due`` run did: rows delivered, retried, failed; claims
    returned."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    requeued: int = 0


def retry_delay(attempts: int) -> timedelta:
    """Backoff after ``attempts`` tries: ``WEBHOOK_RETRY_BASE_SECONDS`` doubling per attempt, at
    most ``WEBHOOK_RETRY_MAX_SECONDS``."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address already checked, with separate connect and read timeouts."""

    def __init__(
        self, host: str, port: int, *, address: str, connect_timeout: float, read_timeout: float
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._address = address
        self._read_timeout = read_timeout

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.settimeout(self._read_timeout)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to an address already checked; the certificate is verified for the URL's host."""

    default_port = 443

    def connect(self) -> None:
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self._open(), server_hostname=self.host)


@dataclass
class _Result:
    status_code: int | None
    error: str
    duration: timedelta
    outcome: str  # "delivered", "retry" or "failed"


def _post(delivery: WebhookDelivery, now: datetime) -> _Result:
    subscriber = delivery.subscriber
    started = time.monotonic()

    def result(status: int | None, error: str, outcome: str) -> _Result:
        return _Result(status, error[:2000], timedelta(seconds=time.monotonic() - started), outcome)

    if not subscriber.is_active:
        return result(None, "The subscriber is inactive; nothing was sent.", "failed")
    secrets_ = subscriber_secrets(subscriber, now=now)
    if not secrets_:
        return result(None, "The secret cannot be decrypted (SECRET_KEY changed): rotate it.", "failed")
    try:
        host, port, address = webhook_url_resolve(subscriber.url)
    except UnsafeWebhookAddress as error:
        return result(None, f"Refused: {error}", "failed")
    body = json.dumps(webhook_payload(delivery.event), separators=(",", ":"), sort_keys=True).encode()
    parts = urlsplit(subscriber.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        host,
        port,
        address=address,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
        read_timeout=settings.WEBHOOK_READ_TIMEOUT_SECONDS,
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event.type,
        DELIVERY_HEADER: str(delivery.uuid),
        SIGNATURE_HEADER: signature_header(secrets_=secrets_, timestamp=int(now.timestamp()), body=body),
    }
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read(MAX_ANSWER_BYTES).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as error:
        return result(None, f"{type(error).__name__}: {error}", "retry")
    finally:
        connection.close()
    status = answer.status
    if 200 <= status < 300:
        return result(status, "", "delivered")
    refusal = f"HTTP {status} {answer.reason}" + (f": {text[:500]}" if text else "")
    return result(status, refusal, "retry" if status >= 500 or status in RETRY_STATUSES else "failed")


def _record(delivery: WebhookDelivery, outcome: _Result, at: datetime) -> str:
    """Record one attempt's result under the claim; the outcome recorded ("" if the claim was
    lost meanwhile: the scanner re-queued it, and another sender owns the row)."""
    final = outcome.outcome
    if final == "retry" and delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        final = "failed"
    values: dict[str, Any] = {
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "claim_token": "",
        "claimed_until": None,
    }
    if final == "delivered":
        values.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=at + outcome.duration)
    elif final == "retry":
        values.update(
            status=WebhookDelivery.Status.PENDING, next_attempt_at=at + retry_delay(delivery.attempts)
        )
    else:
        values.update(status=WebhookDelivery.Status.FAILED)
    with transaction.atomic():
        held = WebhookDelivery.objects.filter(
            pk=delivery.pk, claim_token=delivery.claim_token, status=WebhookDelivery.Status.SENDING
        ).update(**values)
        if not held:
            return ""
        WebhookAttempt.objects.create(
            delivery_id=delivery.pk,
            number=delivery.attempts,
            at=at,
            status_code=outcome.status_code,
            duration=outcome.duration,
            error=outcome.error,
            outcome=final,
        )
    if final == "failed":
        logger.error(
            "Webhook delivery %s to %s failed for good: %s", delivery.uuid, delivery.subscriber, outcome.error
        )
    return final


def _claim(limit: int) -> list[WebhookDelivery]:
    now = timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        WebhookDelivery.objects.filter(id__in=ids, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.SENDING,
            claim_token=token,
            claimed_until=now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS),
            attempts=F("attempts") + 1,
        )
    return list(
        WebhookDelivery.objects.filter(claim_token=token, status=WebhookDelivery.Status.SENDING)
        .select_related("subscriber", "event", "event__incident")
        .order_by("id")
    )


def webhook_deliveries_requeue_expired(*, now: datetime | None = None) -> int:
    """Return deliveries whose claim expired (a killed or stuck sender) to ``pending``, due at
    once; the number returned. The deadline scanner calls this every minute."""
    now = now or timezone.now()
    return WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING, claimed_until__lt=now
    ).update(
        status=WebhookDelivery.Status.PENDING,
        claim_token="",
        claimed_until=None,
        next_attempt_at=now,
        last_error="Claim expired: the sender stopped; re-queued.",
    )


def webhook_deliveries_due_exists(*, now: datetime | None = None) -> bool:
    """Whether any delivery is due now (one probe of ``incidents_webhookdel_due``)."""
    return WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now or timezone.now()
    ).exists()


def webhooks_send_due(*, max_chunks: int | None = None) -> WebhookSendReport:
    """Send every due delivery (see the module docstring); return a ``WebhookSendReport``.
    Safe to run in several workers at once and to run twice."""
    report = WebhookSendReport(requeued=webhook_deliveries_requeue_expired())
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        claimed = _claim(settings.WEBHOOK_SEND_CHUNK_SIZE)
        if not claimed:
            break
        chunks += 1
        for delivery in claimed:
            at = timezone.now()
            recorded = _record(delivery, _post(delivery, at), at)
            if recorded == "delivered":
                report.delivered += 1
            elif recorded == "retry":
                report.retried += 1
            elif recorded == "failed":
                report.failed += 1
    return report
