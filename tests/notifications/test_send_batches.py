"""The sender's batched recording, against a real SMTP server: a chunk's acceptances are marked
``sent`` in one statement, their evidence (``SentMessage``) inserted in one, the customers'
clocks met in one; one SMTP session serves every chunk of a run. A refusal in a batch still
records the others, a row whose claim another worker took over is left to that worker, and
nothing accepted goes unrecorded."""

from __future__ import annotations

import socket
from email.header import Header
from typing import Any

import pytest
from django.utils import timezone

from notifications.mail_sink import MailSink
from notifications.messages import fold_header
from notifications.models import Clock, Delivery, SentMessage
from notifications.sender import (
    OUTBOXES,
    SendReport,
    _claim,
    _record_sent,
    _relay_open,
    _Transport,
    deliveries_send_due,
)
from notifications.services import notice_draft
from tests.conftest import serve_mail_sink
from tests.notifications.support import approve


class CountingSink(MailSink):
    """A ``MailSink`` that counts SMTP sessions (EHLOs) and answers 451 to the addresses in
    ``refuse_once`` the first time it sees each."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0
        self.refuse_once: set[str] = set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse_once:
            self.refuse_once.discard(address)
            return "451 4.3.0 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def counting_smtp_server(settings):
    yield from serve_mail_sink(settings, CountingSink())


def _approved(declare_for, customers, manager):
    incident = declare_for(customers)
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    return incident


def _received_bytes(sink):
    return {received.recipients[0]: received.raw for received in sink.received}


def test_a_refused_message_in_a_batch_is_retried_and_the_others_are_recorded(
    counting_smtp_server, declare_for, multilingual_customers, manager
):
    incident = _approved(declare_for, multilingual_customers, manager)
    counting_smtp_server.refuse_once = {"claire@dupont.example"}  # 451, then accepted
    counting_smtp_server.refuse_permanently = {"taro@yamada.example"}  # 550

    report = deliveries_send_due()

    assert (report.retried, report.failed) == (1, 1)
    by_address = {d.address: d for d in Delivery.objects.all()}
    assert {address: d.status for address, d in by_address.items()} == {
        "anna@acme.example": "sent",
        "bob@acme.example": "sent",
        "claire@dupont.example": "pending",
        "taro@yamada.example": "failed",
    }
    retried = by_address["claire@dupont.example"]
    assert (retried.attempts, retried.sent_at, retried.last_error[:3]) == (1, None, "451")
    # The evidence of each accepted message is exactly the bytes the relay received.
    received = _received_bytes(counting_smtp_server)
    recorded = {m.delivery.address: m for m in SentMessage.objects.select_related("delivery", "shared_body")}
    assert set(recorded) == {"anna@acme.example", "bob@acme.example"}
    for address, message in recorded.items():
        assert message.content == received[address]
        assert message.shared_body_id == by_address[address].notice_message_id
        assert message.recorded_at == by_address[address].sent_at
    # The clock of the reached customer is met at its first acceptance; the others stay open.
    acme = Clock.objects.get(incident=incident, customer__account_reference="ACME")
    acme_sent = [by_address[a].sent_at for a in ("anna@acme.example", "bob@acme.example")]
    assert acme.met_at == min(instant for instant in acme_sent if instant is not None)
    assert Clock.objects.get(incident=incident, customer__account_reference="DUPONT").met_at is None

    Delivery.objects.filter(pk=retried.pk).update(next_attempt_at=timezone.now())  # backoff passed
    again = deliveries_send_due()

    retried.refresh_from_db()
    assert (again.retried, retried.status, retried.attempts) == (0, "sent", 2)
    assert (
        SentMessage.objects.get(delivery=retried).content
        == _received_bytes(counting_smtp_server)["claire@dupont.example"]
    )
    assert (
        Clock.objects.get(incident=incident, customer__account_reference="DUPONT").met_at == retried.sent_at
    )


def test_one_smtp_session_serves_every_chunk_of_a_run(
    counting_smtp_server, declare_for, multilingual_customers, manager, settings
):
    settings.NOTICE_SEND_CHUNK_SIZE = 1
    _approved(declare_for, multilingual_customers, manager)

    deliveries_send_due()

    assert counting_smtp_server.sessions == 1
    assert Delivery.objects.filter(status="sent").count() == SentMessage.objects.count() == 4
    sent_at = {d.pk: d.sent_at for d in Delivery.objects.all()}
    assert {m.delivery_id: m.recorded_at for m in SentMessage.objects.all()} == sent_at


def test_a_connection_the_relay_dropped_between_chunks_is_opened_again(counting_smtp_server):
    from django.core.mail import mailers

    connection: Any = mailers.default  # the SMTP backend: it has .connection
    _relay_open(connection)
    session = connection.connection
    _relay_open(connection)  # still open: NOOP answers, the same session goes on
    assert connection.connection is session

    session.sock.shutdown(socket.SHUT_RDWR)  # the idle connection is gone
    _relay_open(connection)

    assert connection.connection is not session
    assert connection.connection.noop()[0] == 250
    connection.close()


def test_rows_whose_claim_another_worker_took_over_are_left_to_it(
    counting_smtp_server, declare_for, multilingual_customers, manager
):
    from django.core.mail import mailers

    incident = _approved(declare_for, multilingual_customers[:1], manager)  # Acme: Anna and Bob
    outbox = OUTBOXES[0]
    rows = _claim(outbox, timezone.now(), 10)
    assert len(rows) == 2
    connection: Any = mailers.default  # the SMTP backend: it has .connection
    _relay_open(connection)
    transport = _Transport(connection)
    accepted = [(row, timezone.now(), transport.send(row)) for row in rows]
    connection.close()
    # Meanwhile the claim on Bob's row expired and another worker claimed it.
    taken = next(row for row in rows if row.address == "bob@acme.example")
    Delivery.objects.filter(pk=taken.pk).update(claim_token="another-worker")
    report = SendReport()

    _record_sent(outbox, accepted, report)

    assert report.sent == 1
    statuses = dict(Delivery.objects.values_list("address", "status"))
    assert statuses == {"anna@acme.example": "sent", "bob@acme.example": "sending"}
    assert list(SentMessage.objects.values_list("delivery__address", flat=True)) == ["anna@acme.example"]
    anna = Delivery.objects.get(address="anna@acme.example")
    assert Clock.objects.get(incident=incident).met_at == anna.sent_at


def test_a_message_sent_again_keeps_its_first_recording(
    counting_smtp_server, declare_for, multilingual_customers, manager
):
    _approved(declare_for, multilingual_customers[2:], manager)  # Yamada: one contact
    deliveries_send_due()
    first = SentMessage.objects.get()
    # A worker killed after the relay accepted but whose claim expired: the row is sent again.
    Delivery.objects.update(status="pending", next_attempt_at=timezone.now(), sent_at=None)

    deliveries_send_due()

    assert Delivery.objects.get().status == "sent"
    assert [r.recipients for r in counting_smtp_server.received].count(["taro@yamada.example"]) == 2
    kept = SentMessage.objects.get()
    assert (kept.pk, kept.sha256, bytes(kept.head)) == (first.pk, first.sha256, bytes(first.head))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a",
        "Anna Admin <anna@acme.example>",
        "x" * 74,
        "x" * 75,
        "word " * 14 + "end",
        '"Bennett, O." <o@b.example>',
    ],
)
def test_a_short_ascii_header_is_written_as_the_email_package_folds_it(value):
    for name in ("To", "Subject"):
        expected = f"{name}: " + Header(value, "us-ascii", header_name=name).encode(
            linesep="\r\n", maxlinelen=78
        )
        assert fold_header(name, value) == expected + "\r\n"


@pytest.mark.postgresql
def test_a_claim_on_postgresql_is_one_statement_in_id_order_and_only_of_due_rows(
    declare_for, multilingual_customers, manager
):
    from datetime import timedelta

    from tests.queries import assert_query_count

    _approved(declare_for, multilingual_customers, manager)  # 4 deliveries
    outbox = OUTBOXES[0]
    later = Delivery.objects.order_by("pk").last()
    assert later is not None
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    before = timezone.now()

    # One statement claims; attach_shared then reads the notice and the shared messages.
    with assert_query_count(3, "a claim of deliveries"):
        rows = _claim(outbox, timezone.now(), 2)
    second = _claim(outbox, timezone.now(), 10)

    assert [row.pk for row in rows] == sorted(row.pk for row in rows)
    assert len(rows) == 2 and len(second) == 1  # the fourth is not due yet
    assert later.pk not in {row.pk for row in [*rows, *second]}
    stored = {delivery.pk: delivery for delivery in Delivery.objects.all()}
    for row in [*rows, *second]:
        assert isinstance(row, Delivery)
        assert row.status == stored[row.pk].status == "sending"
        assert row.claim_token == stored[row.pk].claim_token
        assert row.attempts == stored[row.pk].attempts == 1
        assert row.claimed_until is not None and row.claimed_until > before
        assert row.claimed_until == stored[row.pk].claimed_until
        assert row.notice.pk == row.notice_id  # attach_shared ran on the returned rows
    assert len({rows[0].claim_token, second[0].claim_token}) == 2
    assert stored[later.pk].status == "pending" and stored[later.pk].attempts == 0


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_worker_holds_locked(declare_for, multilingual_customers, manager):
    """Two senders claiming at the same moment take different rows: a row another
    transaction holds locked is skipped, not waited for and not claimed twice."""
    import threading

    from django.db import connection, transaction

    _approved(declare_for, multilingual_customers, manager)
    # Committed here, so the approval's send task ran at once: make the rows due again.
    Delivery.objects.update(status="pending", claim_token="", claimed_until=None, sent_at=None)
    held = Delivery.objects.order_by("pk").first()
    assert held is not None
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Delivery.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        rows = _claim(OUTBOXES[0], timezone.now(), 10)
    finally:
        release.set()
        holder.join(timeout=30)

    assert len(rows) == Delivery.objects.count() - 1
    assert held.pk not in {row.pk for row in rows}
    assert Delivery.objects.get(pk=held.pk).status == "pending"


@pytest.fixture
def nothing_queued(monkeypatch):
    """Committed approvals queue no worker task (the test runs the sender itself)."""
    from notifications import services

    monkeypatch.setattr(services, "enqueue", lambda *args, **kwargs: None)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_run_outside_a_transaction_claims_and_records_on_a_second_connection(
    smtp_server, declare_for, multilingual_customers, manager, settings, monkeypatch, nothing_queued
):
    """Overlapped (a worker's run on PostgreSQL): every chunk is claimed and recorded by the
    database thread while the main thread sends, and the result is the one-step-at-a-time
    result: each message once, each recorded ``sent`` with its evidence, the clocks met."""
    import threading

    from notifications import sender

    settings.NOTICE_SEND_CHUNK_SIZE = 1
    incident = _approved(declare_for, multilingual_customers, manager)
    threads: dict[str, set[str]] = {"claim": set(), "record": set(), "send": set()}
    for name, function in (("claim", "_claim"), ("record", "_record_sent")):
        original = getattr(sender, function)

        def watched(*args, _original=original, _name=name):
            threads[_name].add(threading.current_thread().name)
            return _original(*args)

        monkeypatch.setattr(sender, function, watched)
    original_send = sender._Transport.send

    def send(self, row):
        threads["send"].add(threading.current_thread().name)
        return original_send(self, row)

    monkeypatch.setattr(sender._Transport, "send", send)

    report = deliveries_send_due()

    count = Delivery.objects.count()
    assert report.sent == count == 4
    addresses = set(Delivery.objects.values_list("address", flat=True))
    notices = [m for m in smtp_server.received if m.recipients[0] in addresses]  # not staff emails
    assert sorted(m.recipients[0] for m in notices) == sorted(addresses)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert SentMessage.objects.count() == count
    assert all(clock.met_at is not None for clock in Clock.objects.filter(incident=incident))
    assert threads["send"] == {threading.current_thread().name}
    assert len(threads["claim"]) == len(threads["record"]) == 1
    assert threads["claim"] == threads["record"] != threads["send"]
    assert next(iter(threads["claim"])).startswith("outbox-db")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_run_stopped_while_sending_records_what_went_and_gives_back_the_next_chunk(
    smtp_server, declare_for, multilingual_customers, manager, settings, monkeypatch, nothing_queued
):
    """Stopped half-way (the worker told to shut down): the chunk before is recorded, the chunk
    in flight keeps its claim (re-sent after it expires, the same Message-IDs), and the chunk
    already claimed for later is pending again at once, its attempt not counted."""
    from notifications import sender

    settings.NOTICE_SEND_CHUNK_SIZE = 1
    _approved(declare_for, multilingual_customers, manager)
    original_send = sender._Transport.send
    calls = []

    def send(self, row):
        calls.append(row.pk)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a worker's warm shutdown does mid-chunk
        return original_send(self, row)

    monkeypatch.setattr(sender._Transport, "send", send)

    with pytest.raises(KeyboardInterrupt):
        deliveries_send_due()

    rows = {delivery.pk: delivery for delivery in Delivery.objects.all()}
    first, in_flight = calls
    assert rows[first].status == "sent" and SentMessage.objects.filter(delivery_id=first).exists()
    assert rows[in_flight].status == "sending" and rows[in_flight].attempts == 1
    others = [delivery for pk, delivery in rows.items() if pk not in calls]
    assert len(others) == 2
    assert {(delivery.status, delivery.attempts, delivery.claim_token) for delivery in others} == {
        ("pending", 0, "")
    }
    addresses = {delivery.address for delivery in rows.values()}
    assert [m.recipients[0] for m in smtp_server.received if m.recipients[0] in addresses] == [
        rows[first].address
    ]
