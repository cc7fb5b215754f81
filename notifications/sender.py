"""The outbox sender: claims pending emails in small chunks and sends each chunk over one SMTP
connection, recording the results chunk by chunk.

Every email is a row first (``notifications.models.OutboxMessage``). The outbox has one table per
kind of row, each registered in ``OUTBOXES`` in the order they are served: notice deliveries
(``Delivery``, the 72-hour commitment) before every other email (``OutgoingEmail``:
confirmation requests, and whatever is added later). The claim, send, retry and failure code
below is shared; an outbox adds only what is its own (``Outbox.on_sent``, ``Outbox.on_failed``).

Algorithm (``outbox_send_due``):

1. Pick up to ``NOTICE_SEND_CHUNK_SIZE`` pending rows whose next attempt is due, oldest first,
   from the first outbox that has any (its partial index ``<table>_due``), skipping rows
   another worker is claiming at that moment (``SELECT ... FOR UPDATE SKIP LOCKED``).
2. Claim them with one conditional UPDATE ("only if still pending"), stamping a fresh claim
   token, ``claimed_until = now + NOTICE_CLAIM_SECONDS`` and ``attempts + 1``. Two workers never
   claim the same row.
3. Over the run's SMTP connection (opened by the first chunk and kept for the next ones, checked
   with ``NOOP`` before each chunk and opened again if the relay dropped it), send each claimed row with its stored Message-ID: a notice
   delivery as the message built once per (customer, language) (``NoticeMessage``) behind
   this contact's headers (``notifications.messages.delivery_bytes``), as bytes; every other
   email (``OutgoingEmail``) likewise as bytes with its subject folded by
   ``notifications.messages.fold_header``; other mail backends (console, file, memory) and
   addresses that are not plain ASCII through Django's mail API. A refusal is
   recorded at once: a retry with backoff (4xx, timeouts, dropped connections) or ``failed``
   (5xx, or out of attempts). A permanent refusal of the recipient's address (5xx to RCPT TO)
   on a row that names a contact also marks that contact undeliverable
   (``incidents.services.contact_mark_undeliverable``). Acceptances are recorded together when
   the chunk ends, in one transaction, each ``sent`` at its own acceptance instant, conditional
   on the claim token (one ``UPDATE ... FROM (VALUES ...)`` for the chunk). A killed worker therefore re-sends at most one chunk (the messages in
   flight), with the same Message-IDs, after the scanner returns its expired claims to
   ``pending``.
4. In that transaction, the outbox's ``on_sent`` runs: deliveries meet the customers' clocks
   from the relay's first acceptance time (one ``SentMessage`` INSERT and one clock UPDATE for
   the chunk). After the run, incidents whose customers are all
   notified move to ``notified``. Repeat from 1 until nothing is due.

On PostgreSQL a worker's run overlaps steps 1, 2 and 4 with step 3: a database thread claims
the next chunk and records the last one while the current chunk goes over SMTP
(``outbox_send_due``; ``NOTICE_SEND_OVERLAP``). Envelopes are sent pipelined where the relay
offers PIPELINING (``incidents.mail.send_envelope``).
"""

from __future__ import annotations

import email.message
import email.policy
import hashlib
import logging
import smtplib
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import connection as db_connection
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from incidents.addresses import header_text, recipient
from incidents.mail import AddressNotEncodable, SMTPUTF8Unavailable, envelope_address, send_raw
from incidents.models import Contact
from incidents.services import contact_mark_undeliverable
from notifications.messages import address_header, build_body, delivery_bytes
from notifications.models import (
    Clock,
    Delivery,
    Escalation,
    Notice,
    NoticeMessage,
    OutboxMessage,
    OutgoingEmail,
    SentMessage,
)
from notifications.services import escalation_raise, incident_settle_if_notified
from notifications.webhooks import delivery_failed

logger = logging.getLogger("breachdesk.sender")


@dataclass
class SendReport:
    """What one ``outbox_send_due`` run did (counts of outbox rows, every kind together;
    ``contacts_undeliverable``: contacts marked undeliverable by a permanent refusal)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    contacts_undeliverable: int = 0
    incidents: set[int] = field(default_factory=set)
    #: (incident id, customer id) pairs whose clock this run already met or found settled.
    parties_settled: set[tuple[int, int]] = field(default_factory=set, repr=False)


class TemporaryFailure(Exception):
    """The relay or the network failed in a way worth retrying (4xx, timeout, disconnect)."""


class PermanentFailure(Exception):
    """The relay refused for good (5xx): retrying would not help. ``recipient_refused``: the
    refusal was about the recipient's address (5xx to RCPT TO, or an address that cannot be
    written in a header), not about us (a refused sender, our authentication, the content)."""

    def __init__(self, text: str, *, recipient_refused: bool = False) -> None:
        super().__init__(text)
        self.recipient_refused = recipient_refused


def retry_delay(attempts: int) -> timedelta:
    """Backoff after ``attempts`` tries: 15 s doubling per attempt, at most 10 minutes."""
    return timedelta(seconds=min(15 * 2 ** max(attempts - 1, 0), 600))


def _smtp_text(message: bytes | str) -> str:
    """A relay's reply text as people read it (``5.1.1 No such user``, not ``b'5.1.1 ...'``):
    smtplib gives it as bytes; invalid UTF-8 is replaced, never raised."""
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


def classify(error: Exception) -> Exception:
    """A ``TemporaryFailure`` or ``PermanentFailure`` for an SMTP or network error. A relay
    without SMTPUTF8 for an internationalised address fails the row for good without blaming
    the address (it is about our relay); an address whose domain cannot be encoded
    (``AddressNotEncodable``, a ``ValueError``) fails it as the recipient's."""
    if isinstance(error, SMTPUTF8Unavailable):
        return PermanentFailure(str(error))
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        text = "; ".join(f"{code} {_smtp_text(message)}" for code, message in error.recipients.values())
        if codes and min(codes) >= 500:
            return PermanentFailure(text, recipient_refused=True)
        return TemporaryFailure(text)
    if isinstance(error, smtplib.SMTPResponseException):
        text = f"{error.smtp_code} {_smtp_text(error.smtp_error)}"
        return PermanentFailure(text) if error.smtp_code >= 500 else TemporaryFailure(text)
    if isinstance(error, (smtplib.SMTPException, OSError)):
        return TemporaryFailure(f"{type(error).__name__}: {error}")
    if isinstance(error, ValueError):  # an address Django refuses to put in a header
        return PermanentFailure(f"{type(error).__name__}: {error}", recipient_refused=True)
    return TemporaryFailure(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class Outbox:
    """One outbox table the sender drains (see the module docstring).

    ``select_related``: what ``on_sent`` and ``on_failed`` read of each claimed row.
    ``attach_shared(rows)``: loads what many claimed rows share (a notice, its built message)
    once per chunk and sets it on them, instead of one copy per row. ``on_sent(accepted,
    report)``: runs in the transaction that records a chunk's acceptances, with ``(row,
    acceptance instant, bytes sent)`` for the rows still under this claim. ``on_failed(row)``:
    runs after a row was recorded ``failed``.
    """

    name: str
    model: type[OutboxMessage]
    select_related: tuple[str, ...] = ()
    attach_shared: Callable[[list[OutboxMessage]], None] | None = None
    on_sent: Callable[[list[tuple[OutboxMessage, datetime, Sent]], SendReport], None] | None = None
    on_failed: Callable[[OutboxMessage], None] | None = None


def _claim(outbox: Outbox, now: datetime, limit: int) -> list[OutboxMessage]:
    """Claim up to ``limit`` due rows of ``outbox`` for this run (steps 1 and 2 of the module
    docstring) and return them in id order, with ``outbox.attach_shared`` applied."""
    model = outbox.model
    token = uuid.uuid4().hex
    claimed_until = now + timedelta(seconds=settings.NOTICE_CLAIM_SECONDS)
    if db_connection.vendor == "postgresql" and not outbox.select_related:
        rows = _claim_returning(model, token, now, claimed_until, limit)
    else:
        rows = _claim_in_steps(outbox, token, now, claimed_until, limit)
    if outbox.attach_shared is not None:
        outbox.attach_shared(rows)
    return rows


def _claim_returning(
    model: type[OutboxMessage], token: str, now: datetime, claimed_until: datetime, limit: int
) -> list[OutboxMessage]:
    """The claim on PostgreSQL as one statement (a transaction of its own): an ``UPDATE``
    of the rows a ``SELECT ... FOR UPDATE SKIP LOCKED`` picks, ``RETURNING`` them whole. The
    three statements and a commit of ``_claim_in_steps`` took about a tenth of a fan-out's
    send (``bench/fanout.py``)."""
    table, column = _columns(
        model, "id", "status", "next_attempt_at", "claim_token", "claimed_until", "attempts"
    )
    pending, sending = OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING
    # Table and column names from the model, every value a parameter.
    sql = (
        f"UPDATE {table} SET {column['status']} = %s, {column['claim_token']} = %s, "  # noqa: S608
        f"{column['claimed_until']} = %s, {column['attempts']} = {column['attempts']} + 1 "
        f"WHERE {column['id']} IN (SELECT {column['id']} FROM {table} WHERE {column['status']} = %s "
        f"AND {column['next_attempt_at']} <= %s ORDER BY {column['next_attempt_at']}, {column['id']} "
        f"LIMIT %s FOR UPDATE SKIP LOCKED) AND {column['status']} = %s RETURNING {table}.*"
    )
    params = [sending, token, claimed_until, pending, now, limit, pending]
    rows = list(model._default_manager.raw(sql, params))
    rows.sort(key=lambda row: row.pk)
    return rows


def _claim_in_steps(
    outbox: Outbox, token: str, now: datetime, claimed_until: datetime, limit: int
) -> list[OutboxMessage]:
    """The claim through the ORM (other databases, and outboxes with ``select_related``):
    pick, claim conditionally, then read the claimed rows."""
    model = outbox.model
    with transaction.atomic():
        # SKIP LOCKED: workers claiming at the same moment take different rows. Without it the
        # loser's UPDATE found its rows taken, claimed nothing and its worker stopped sending.
        ids = list(
            model._default_manager.select_for_update(skip_locked=True)
            .filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        model._default_manager.filter(pk__in=ids, status=OutboxMessage.Status.PENDING).update(
            status=OutboxMessage.Status.SENDING,
            claim_token=token,
            claimed_until=claimed_until,
            attempts=F("attempts") + 1,
        )
    claimed = model._default_manager.filter(claim_token=token, status=OutboxMessage.Status.SENDING)
    if outbox.select_related:
        claimed = claimed.select_related(*outbox.select_related)
    return list(claimed.order_by("pk"))


def _deliveries_attach_shared(rows: list[OutboxMessage]) -> None:
    """``Outbox.attach_shared`` of notice deliveries: each notice and each message built per
    (customer, language) loaded once per chunk, not once per delivery (a notice's JSON content
    decoded 50 times a chunk cost more than the rest of the claim). The customer is loaded
    only where a failure needs it."""
    deliveries = [row for row in rows if isinstance(row, Delivery)]
    notices = Notice.objects.in_bulk({row.notice_id for row in deliveries})
    # The parts' text is read only where a delivery goes through Django's mail API (``_message``,
    # a rare fallback): left unloaded, it would double what a chunk reads of each message.
    shared = NoticeMessage.objects.defer("body_text", "body_html").in_bulk(
        {row.notice_message_id for row in deliveries if row.notice_message_id}
    )
    for row in deliveries:
        row.notice = notices[row.notice_id]
        if row.notice_message_id:
            row.notice_message = shared[row.notice_message_id]


def _headers(row: OutboxMessage) -> dict[str, str]:
    headers = {"Message-ID": row.message_id, "Content-Language": row.language}
    if isinstance(row, Delivery):
        if row.in_reply_to:
            headers["In-Reply-To"] = row.in_reply_to
        if row.references:
            headers["References"] = row.references
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
        """The message as SMTP sends it (``email.policy.SMTP``: CRLF line ends): the bytes the
        backend handed to the relay when it kept them (``incidents.mail.EmailBackend``, which
        sends an internationalised address's message with ``email.policy.SMTPUTF8``)."""
        sent = getattr(self, "sent_bytes", None)
        if isinstance(sent, bytes):
            return sent
        return self.message(policy=email.policy.SMTP).as_bytes()


def _to(row: OutboxMessage, display_name: str = "") -> str:
    """The row's ``To`` value: ``display_name`` (the contact's name) and the address normalised
    (``incidents.addresses.recipient``). Raises ``AddressNotEncodable`` (permanent, the
    recipient's) for an address whose domain cannot be encoded."""
    try:
        return recipient(display_name, row.address).header
    except ValidationError as error:
        raise AddressNotEncodable(" ".join(error.messages)) from None


def _message(
    row: OutboxMessage, connection: BaseEmailBackend | None, display_name: str = ""
) -> RecordedMessage:
    """The row as a Django email (other outboxes, non-SMTP backends, unusual addresses, and
    deliveries created before messages were shared). The subject goes through ``header_text``:
    a row written with a line break in it (a customer named so before names were checked)
    still goes out."""
    shared = row.notice_message if isinstance(row, Delivery) and row.notice_message_id else None
    message = RecordedMessage(
        subject=header_text(row.subject),
        body=shared.body_text if shared is not None else row.body_text,
        to=[_to(row, display_name)],
        headers=_headers(row),
        connection=connection,
    )
    message.attach_alternative(shared.body_html if shared is not None else row.body_html, "text/html")
    return message


@dataclass(frozen=True)
class Sent:
    """What the relay accepted for one row: the whole message (``data``) and, when it was
    this contact's headers followed by a body built once for many (``NoticeMessage``), that
    body's id and where the headers end (so the evidence need not store the body again)."""

    data: bytes
    shared_body_id: int | None = None
    head_length: int = 0


class _Transport:
    """Sends rows over an open mail backend: a notice delivery as its prebuilt bytes straight
    over the SMTP connection when the backend is Django's SMTP backend
    (``notifications.messages``), anything else through Django's mail API. ``send`` returns
    the bytes handed to the relay (recorded as ``SentMessage`` for deliveries)."""

    def __init__(self, connection: BaseEmailBackend, display_names: dict[int, str] | None = None) -> None:
        self.connection = connection
        self.raw = isinstance(connection, SMTPBackend)
        self.envelope_from = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
        self.from_header = address_header("From", settings.DEFAULT_FROM_EMAIL)
        #: Contact id -> name, shown in ``To`` (``display_names``).
        self.display_names = display_names or {}

    def send(self, row: OutboxMessage) -> Sent:
        shared = row.notice_message if isinstance(row, Delivery) and row.notice_message_id else None
        smtp = getattr(self.connection, "connection", None)
        name = self.display_names.get(getattr(row, "contact_id", None) or 0, "")
        if self.raw and isinstance(row, Delivery) and shared is not None and smtp is not None:
            address = envelope_address(row.address)
            try:
                data = delivery_bytes(
                    from_header=self.from_header,
                    to_address=address,
                    to_name=name,
                    message_id=row.message_id,
                    in_reply_to=row.in_reply_to,
                    references=row.references.split(),
                    language=row.language,
                    subject_header=shared.subject_header,
                    body=bytes(shared.mime),
                    date=timezone.now(),
                )
            except ValueError:
                data = None
            if data is not None:
                send_raw(smtp, self.envelope_from, [address], data)
                return Sent(data, shared_body_id=shared.pk, head_length=len(data) - len(shared.mime))
        if self.raw and not isinstance(row, Delivery) and smtp is not None:
            # Other emails (staff alerts, escalations, reminders, confirmations): the subject
            # folded like a notice's (notifications.messages.fold_header: no leading space, no
            # line break from a customer's name), the body built once.
            subject_header, body = build_body(
                subject=row.subject, text=row.body_text, html=row.body_html or None
            )
            try:
                address = envelope_address(row.address)
                data = delivery_bytes(
                    from_header=self.from_header,
                    to_address=address,
                    to_name=name,
                    message_id=row.message_id,
                    in_reply_to="",
                    references=[],
                    language=row.language,
                    subject_header=subject_header,
                    body=body,
                    date=timezone.now(),
                )
            except ValueError:
                data = None
            if data is not None:
                send_raw(smtp, self.envelope_from, [address], data)
                return Sent(data)
        message = _message(row, self.connection, name)
        message.send()
        return Sent(message.raw())


def display_names(rows: list[OutboxMessage]) -> dict[int, str]:
    """The names of the contacts ``rows`` go to (contact id -> name, one query), shown in their
    ``To`` headers; rows without a contact (staff emails) have none."""
    ids = {contact_id for row in rows if (contact_id := getattr(row, "contact_id", None))}
    if not ids:
        return {}
    return dict(Contact.objects.filter(pk__in=ids).values_list("pk", "name"))


def _record(row: OutboxMessage, **values: Any) -> bool:
    """Write a result only if our claim still holds (a slow worker must not overwrite the
    result of the worker that took over its expired claim)."""
    return bool(
        type(row)
        ._default_manager.filter(pk=row.pk, claim_token=row.claim_token, status=OutboxMessage.Status.SENDING)
        .update(claimed_until=None, **values)
    )


def _relay_open(connection: BaseEmailBackend) -> None:
    """Open ``connection`` (a Django mail backend) if it is not open, or check with ``NOOP``
    that the SMTP connection an earlier chunk left open still answers (a relay may drop an
    idle one; the first message of the chunk would then be retried with backoff) and open it
    again if not. Raises what opening raises."""
    smtp = getattr(connection, "connection", None)
    if smtp is not None:
        try:
            if smtp.noop()[0] == 250:
                return
        except (smtplib.SMTPException, OSError):
            pass
        _relay_close(connection)
    connection.open()


def _relay_close(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; nothing to do
        logger.debug("SMTP close failed", exc_info=True)


def _send_chunk(
    outbox: Outbox,
    rows: list[OutboxMessage],
    report: SendReport,
    connection: BaseEmailBackend,
    record: Callable[[Outbox, list[tuple[OutboxMessage, datetime, Sent]], SendReport], object] | None = None,
) -> None:
    """Send ``rows`` over ``connection`` (opened here if needed, left open for the next chunk:
    one SMTP session per run, as a plain loop has, instead of a connect, EHLO and QUIT per
    chunk) and record the results: refusals at once, the acceptances by ``record`` (default
    ``_record_sent``; ``outbox_send_due`` passes its database worker's, which records them
    while the next chunk is sent), even when sending stops half-way through the chunk."""
    record = record or _record_sent
    try:
        _relay_open(connection)
    except Exception as error:  # noqa: BLE001 - the relay is unreachable: retry them all later
        failure = classify(error)
        for row in rows:
            _retry_or_fail(outbox, row, failure, report)
        return
    accepted: list[tuple[OutboxMessage, datetime, Sent]] = []
    transport = _Transport(connection, display_names(rows))
    try:
        for row in rows:
            try:
                sent = transport.send(row)
            except Exception as error:  # noqa: BLE001 - recorded per row, others go on
                failure = classify(error)
                _retry_or_fail(outbox, row, failure, report)
                if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):
                    _relay_close(connection)
                    try:
                        connection.open()
                    except Exception as reopen_error:  # noqa: BLE001
                        rest = rows[rows.index(row) + 1 :]
                        for remaining in rest:
                            _retry_or_fail(outbox, remaining, classify(reopen_error), report)
                        return
                continue
            accepted.append((row, timezone.now(), sent))
    except BaseException:
        _relay_close(connection)  # in an unknown state: the next run opens a new one
        raise
    finally:
        record(outbox, accepted, report)


def _columns(model: type[Any], *names: str) -> tuple[str, dict[str, str]]:
    """``model``'s quoted table name and the quoted columns of its fields ``names``."""
    quote = db_connection.ops.quote_name
    return quote(model._meta.db_table), {name: quote(model._meta.get_field(name).column) for name in names}


def _values(rows: list[tuple[Any, ...]], casts: tuple[str, ...]) -> tuple[str, list[Any]]:
    """A row source for ``rows``, to be read as ``FROM <source> AS v``, with its parameters;
    its columns are ``v.column1``, ``v.column2``, ... in ``rows``' order.

    On PostgreSQL: ``unnest`` of one array parameter per column, each cast to its column's
    type (``casts``, e.g. ``"bigint"``), so the statement's text is the same for any number of
    rows (psycopg converts it once and PostgreSQL keeps it prepared; a ``VALUES`` list of 100
    rows was a new statement of 600 placeholders, parsed in Python and planned every chunk).
    Elsewhere (SQLite): ``(VALUES (%s, %s), ...)``, whose columns SQLite names ``column1``,
    ``column2``, ... as well."""
    if db_connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{cast}[]" for cast in casts)
        names = ", ".join(f"column{index}" for index in range(1, len(casts) + 1))
        # The casts are this module's constants; every value is a parameter.
        source = f"(SELECT * FROM unnest({arrays}) AS u({names}))"  # noqa: S608
        return source, [list(column) for column in zip(*rows, strict=True)]
    one = "(" + ", ".join("%s" for _cast in casts) + ")"
    return "(VALUES " + ", ".join([one] * len(rows)) + ")", [value for row in rows for value in row]


def _mark_sent(
    model: type[OutboxMessage], claim_token: str, sent_at: list[tuple[int, datetime]]
) -> list[int]:
    """Mark the rows ``sent_at`` names (``(pk, acceptance instant)``) ``sent`` at their own
    instants, only those still ``sending`` under ``claim_token``; one statement per 500 rows
    (``UPDATE ... FROM (VALUES ...)``, where Django's ``Case``/``When`` per row cost about a
    third of a millisecond of Python per message). Returns the pks marked."""
    table, column = _columns(model, "id", "status", "last_error", "claimed_until", "sent_at", "claim_token")
    adapt = db_connection.ops.adapt_datetimefield_value
    marked: list[int] = []
    for start in range(0, len(sent_at), 500):
        batch = [(row_pk, adapt(at)) for row_pk, at in sent_at[start : start + 500]]
        values, params = _values(batch, ("bigint", "timestamptz"))
        with db_connection.cursor() as cursor:
            # Table and column names from the model, every value a parameter.
            cursor.execute(
                f"UPDATE {table} SET {column['status']} = %s, {column['last_error']} = '', "  # noqa: S608
                f"{column['claimed_until']} = NULL, {column['sent_at']} = v.column2 "
                f"FROM {values} AS v WHERE {table}.{column['id']} = v.column1 "
                f"AND {table}.{column['claim_token']} = %s AND {table}.{column['status']} = %s "
                f"RETURNING {column['id']}",
                [OutboxMessage.Status.SENT, *params, claim_token, OutboxMessage.Status.SENDING],
            )
            marked += [row[0] for row in cursor.fetchall()]
    return marked


def _record_sent(
    outbox: Outbox, accepted: list[tuple[OutboxMessage, datetime, Sent]], report: SendReport
) -> None:
    """Record one chunk's acceptances in one transaction: each row still under our claim
    becomes ``sent`` at its own acceptance instant (``_mark_sent``, one statement), then
    ``outbox.on_sent`` runs with the rows held, their instants and the bytes sent (deliveries
    keep the bytes as ``SentMessage`` and meet each customer's clock at the first of them).
    (Row by row, two commits per message cost more than the SMTP exchange.)"""
    if not accepted:
        return
    with transaction.atomic():
        held = set(
            _mark_sent(
                outbox.model, accepted[0][0].claim_token, [(row.pk, at) for row, at, _sent in accepted]
            )
        )
        if not held:
            return
        if outbox.on_sent is not None:
            outbox.on_sent([entry for entry in accepted if entry[0].pk in held], report)
    report.sent += len(held)


def _retry_or_fail(outbox: Outbox, row: OutboxMessage, failure: Exception, report: SendReport) -> None:
    now = timezone.now()
    if isinstance(failure, PermanentFailure) or row.attempts >= settings.NOTICE_MAX_ATTEMPTS:
        # One transaction: the failure and what it raises (an escalation, a webhook event).
        with transaction.atomic():
            if _record(row, status=OutboxMessage.Status.FAILED, last_error=str(failure)[:2000]):
                report.failed += 1
                contact_id = getattr(row, "contact_id", None)
                if (
                    contact_id is not None
                    and isinstance(failure, PermanentFailure)
                    and failure.recipient_refused
                ):
                    report.contacts_undeliverable += contact_mark_undeliverable(
                        contact_id=contact_id, address=row.address, reason=str(failure), at=now
                    )
                if outbox.on_failed is not None:
                    outbox.on_failed(row)
        return
    if _record(
        row,
        status=OutboxMessage.Status.PENDING,
        last_error=str(failure)[:2000],
        next_attempt_at=now + retry_delay(row.attempts),
    ):
        report.retried += 1


def _sent_message_values(row: OutboxMessage, at: datetime, sent: Sent) -> tuple[Any, ...]:
    """One ``SentMessage`` row as ``_SENT_MESSAGE_FIELDS`` values: a contact's own headers and
    the shared body's id when the message was built from one, else the whole message."""
    digest = hashlib.sha256(sent.data).hexdigest()
    at_value = db_connection.ops.adapt_datetimefield_value(at)
    if sent.shared_body_id is not None:
        return (row.pk, b"", sent.data[: sent.head_length], sent.shared_body_id, digest, at_value)
    return (row.pk, sent.data, b"", None, digest, at_value)


_SENT_MESSAGE_FIELDS = ("delivery", "raw", "head", "shared_body", "sha256", "recorded_at")
_SENT_MESSAGE_CASTS = ("bigint", "bytea", "bytea", "bigint", "varchar", "timestamptz")


def _sent_messages_insert(rows: list[tuple[Any, ...]]) -> None:
    """Insert ``SentMessage`` rows (``_sent_message_values``), one statement per 500, a row
    whose delivery already has one left as it is (``ON CONFLICT DO NOTHING``: a message sent
    again after a crash keeps the first recording). Django's ``bulk_create`` spent about
    0.2 ms of Python per row preparing the values."""
    table, column = _columns(SentMessage, *_SENT_MESSAGE_FIELDS)
    names = ", ".join(column[name] for name in _SENT_MESSAGE_FIELDS)
    for start in range(0, len(rows), 500):
        values, params = _values(rows[start : start + 500], _SENT_MESSAGE_CASTS)
        with db_connection.cursor() as cursor:
            # WHERE true: SQLite reads an ON after a FROM as a join's unless a WHERE ends the SELECT.
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM {values} AS v WHERE true ON CONFLICT DO NOTHING",  # noqa: S608
                params,
            )


def _deliveries_sent(accepted: list[tuple[OutboxMessage, datetime, Sent]], report: SendReport) -> None:
    """``Outbox.on_sent`` of notice deliveries: keep the bytes each relay accepted
    (``SentMessage``, the evidence: a contact's own headers and a reference to the shared body
    when the message was built from one; a message sent again keeps the first recording) and
    meet each customer's clock at the first acceptance of a delivery to it."""
    _sent_messages_insert([_sent_message_values(row, at, sent) for row, at, sent in accepted])
    first_sent: dict[tuple[int, int], datetime] = {}
    for delivery, at, _sent in accepted:
        assert isinstance(delivery, Delivery)
        first_sent.setdefault((delivery.notice.incident_id, delivery.customer_id), at)
    _meet_clocks(first_sent, report)


def _meet_clocks(first_sent: dict[tuple[int, int], datetime], report: SendReport) -> None:
    """Meet the open clock of each (incident, customer) at its first acceptance instant, one
    ``UPDATE ... FROM (VALUES ...)`` per incident and 500 customers. A party already handled
    in this run is skipped: its clock is met or was not open, and a met or waived clock never
    reopens."""
    by_incident: dict[int, dict[int, datetime]] = {}
    for (incident_id, customer_id), at in first_sent.items():
        if (incident_id, customer_id) not in report.parties_settled:
            by_incident.setdefault(incident_id, {})[customer_id] = at
    table, column = _columns(Clock, "incident", "customer", "kind", "met_at", "waived_at")
    adapt = db_connection.ops.adapt_datetimefield_value
    for incident_id, firsts in by_incident.items():
        pairs = [(customer_id, adapt(at)) for customer_id, at in firsts.items()]
        met = 0
        for start in range(0, len(pairs), 500):
            values, params = _values(pairs[start : start + 500], ("bigint", "timestamptz"))
            with db_connection.cursor() as cursor:
                # Table and column names from the model, every value a parameter.
                cursor.execute(
                    f"UPDATE {table} SET {column['met_at']} = v.column2 FROM {values} AS v "  # noqa: S608
                    f"WHERE {table}.{column['incident']} = %s AND {table}.{column['customer']} = v.column1 "
                    f"AND {table}.{column['kind']} = %s AND {table}.{column['met_at']} IS NULL "
                    f"AND {table}.{column['waived_at']} IS NULL",
                    [*params, incident_id, Clock.Kind.CUSTOMER_NOTICE],
                )
                met += cursor.rowcount
        if met:
            report.incidents.add(incident_id)
        report.parties_settled.update((incident_id, customer_id) for customer_id in firsts)


def _escalate_if_customer_unreachable(delivery: OutboxMessage) -> None:
    """``Outbox.on_failed`` of notice deliveries: raise the ``delivery.failed`` webhook event;
    when every delivery of this notice to the customer has failed, raise one escalation."""
    assert isinstance(delivery, Delivery)
    delivery_failed(delivery)
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


#: The outbox tables, in the order the sender serves them: breach notices first.
OUTBOXES: tuple[Outbox, ...] = (
    Outbox(
        "deliveries",
        Delivery,
        attach_shared=_deliveries_attach_shared,
        on_sent=_deliveries_sent,
        on_failed=_escalate_if_customer_unreachable,
    ),
    Outbox("emails", OutgoingEmail),
)


class _DatabaseWork:
    """Where ``outbox_send_due`` runs its claims and records: on a thread of its own with its own
    database connection (``overlap``), so that claiming the next chunk and recording the last
    one happen while the current chunk goes over SMTP; or at once, in the caller's thread.

    Jobs run one at a time in the order submitted. ``submit(job, *args) -> Future``; ``check()``
    raises the error of a finished job, if any; ``finish()`` waits for every job, closes the
    thread's connection and raises the first error."""

    def __init__(self, overlap: bool) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db") if overlap else None
        self.futures: list[Future[Any]] = []

    def submit(self, job: Callable[..., Any], *args: Any) -> Future[Any]:
        if self.executor is not None:
            future = self.executor.submit(job, *args)
        else:
            future = Future()
            try:
                future.set_result(job(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(error)
        self.futures.append(future)
        return future

    def check(self) -> None:
        for future in self.futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self.futures = [future for future in self.futures if not future.done()]

    def finish(self) -> None:
        if self.executor is not None:
            self.executor.submit(connections.close_all)  # the thread's own connection
            self.executor.shutdown(wait=True)
        errors = [future.exception() for future in self.futures if future.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]


def _claim_next(now: datetime | None = None) -> tuple[Outbox, list[OutboxMessage]] | None:
    """The next chunk: claimed rows of the first outbox (in ``OUTBOXES`` order) that has any
    due, or ``None`` when nothing is due."""
    for outbox in OUTBOXES:
        rows = _claim(outbox, now or timezone.now(), settings.NOTICE_SEND_CHUNK_SIZE)
        if rows:
            return outbox, rows
    return None


def _release(claimed: tuple[Outbox, list[OutboxMessage]] | None) -> None:
    """Give a chunk claimed but never sent (the run stopped first) back at once: ``pending``,
    its attempt not counted, instead of waiting for its claim to expire."""
    if not claimed:
        return
    outbox, rows = claimed
    outbox.model._default_manager.filter(
        claim_token=rows[0].claim_token, status=OutboxMessage.Status.SENDING
    ).update(
        status=OutboxMessage.Status.PENDING,
        claim_token="",
        claimed_until=None,
        attempts=F("attempts") - 1,
    )


def outbox_send_due(*, max_chunks: int | None = None) -> SendReport:
    """Send every outbox row that is due, chunk by chunk, notice deliveries before other emails
    (see the module docstring).

    On PostgreSQL, outside a transaction (a worker's run), the database work overlaps the
    sending: while a chunk goes over SMTP, a second thread with its own connection records the
    chunk before it and claims the one after it (``_DatabaseWork``). A run stopped by an error
    has recorded every acceptance and given back a chunk it claimed but did not send; a killed
    worker still re-sends at most one chunk (the one in flight: its acceptances not yet
    recorded), after the scanner returns expired claims. Elsewhere (SQLite, or inside a
    caller's transaction, which a second connection could not see) the same steps run one
    after the other. ``NOTICE_SEND_OVERLAP`` (default on) switches the overlap off.

    Returns a ``SendReport``. Safe to run in several workers at once and to run twice.
    """
    report = SendReport()
    chunks = 0
    connection = mailers.default  # opened by the first chunk, closed after the last
    overlap = (
        settings.NOTICE_SEND_OVERLAP
        and db_connection.vendor == "postgresql"
        and not db_connection.in_atomic_block
    )
    database = _DatabaseWork(overlap)
    next_chunk: Future[Any] | None = database.submit(_claim_next)
    try:
        while next_chunk is not None:
            # Ask every outbox again after each chunk: a notice approved while confirmation
            # requests are going out waits for at most one chunk of them.
            pending, next_chunk = next_chunk, None
            claimed = pending.result()
            if claimed is None:
                break
            chunks += 1
            if max_chunks is None or chunks < max_chunks:
                next_chunk = database.submit(_claim_next)
            outbox, rows = claimed
            _send_chunk(outbox, rows, report, connection, lambda *args: database.submit(_record_sent, *args))
            database.check()
    finally:
        _relay_close(connection)
        if next_chunk is not None:
            # Claimed but not sent: give it back (after the records, in the same order).
            unsent = next_chunk
            database.submit(lambda: _release(unsent.result()))
        database.finish()
    for incident_id in sorted(report.incidents):
        incident_settle_if_notified(incident_id=incident_id)
    return report


def outbox_due_exists(*, now: datetime | None = None) -> bool:
    """Whether any outbox row is due now (one index probe per outbox)."""
    now = now or timezone.now()
    return any(
        outbox.model._default_manager.filter(
            status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now
        ).exists()
        for outbox in OUTBOXES
    )


def outbox_backlog_exceeds(count: int) -> bool:
    """Whether more than ``count`` rows are due now in any one outbox (reads at most
    ``count + 1`` entries of each outbox's ``<table>_due`` index)."""
    now = timezone.now()
    for outbox in OUTBOXES:
        due = outbox.model._default_manager.filter(
            status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now
        )
        if due.order_by("next_attempt_at")[count : count + 1].exists():
            return True
    return False


def outbox_requeue_expired(*, now: datetime | None = None) -> int:
    """Return outbox rows whose claim expired (a killed or stuck worker) to ``pending``, due at
    once; returns how many. The scanner calls this every minute."""
    now = now or timezone.now()
    return sum(
        outbox.model._default_manager.filter(
            status=OutboxMessage.Status.SENDING, claimed_until__lt=now
        ).update(
            status=OutboxMessage.Status.PENDING,
            claim_token="",
            claimed_until=None,
            next_attempt_at=now,
            last_error="Claim expired: the worker sending it stopped; re-queued.",
        )
        for outbox in OUTBOXES
    )


# The names callers used while the outbox held only notice deliveries.
deliveries_send_due = outbox_send_due
deliveries_backlog_exceeds = outbox_backlog_exceeds
deliveries_requeue_expired = outbox_requeue_expired
