"""Issue 8: every outgoing email is an outbox row, so a broker that is down or hangs loses none
and delays requests by a second or two at most.

With the broker unreachable, the declaring, assessing, approving and escalating transactions
still commit their email rows and nothing is sent (every wake-up is lost). Once the broker is
back, one scanner pass (``notifications.tasks.scan_deadlines``, as beat runs it every minute)
wakes the senders and every alert, escalation, declaration alert and notice reaches the real
SMTP server exactly once; a second pass sends nothing more.

The broker is a Redis address: a closed port (down) or a socket that accepts connections and
never answers (black-holed). Neither needs a Redis server, so these run everywhere.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings

from config.celery import enqueue
from incidents import services as incident_services
from incidents.models import OutgoingEmail as IncidentEmail
from notifications.models import Delivery, DueReminder, Escalation, OutgoingEmail
from notifications.scanner import deadlines_scan
from notifications.services import notice_approve, notice_draft
from notifications.tasks import scan_deadlines
from tests.notifications.faults_support import app_publishing_to
from tests.triage.conftest import BANDS, IN_SCOPE
from triage.models import StakeholderGroup
from triage.services import assessment_record


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _broker_at(url: str) -> Iterator[None]:
    """Publish to the Redis broker ``url`` with the Redis transport options of the settings
    (in a SQLite run the configured broker is the filesystem one)."""
    with app_publishing_to(url) as app:
        saved = app.conf.broker_transport_options
        app.conf.broker_transport_options = dict(django_settings.BROKER_REDIS_TRANSPORT_OPTIONS)
        try:
            yield
        finally:
            app.conf.broker_transport_options = saved


def test_it_sends_every_email_once_after_the_broker_was_down(
    smtp_server, make_incident, manager, responder, customer, settings, django_capture_on_commit_callbacks
):
    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    for name in ("legal", "privacy", "security"):
        StakeholderGroup.objects.filter(name=name).update(email_addresses=f"{name}@breachdesk.test")
    incident = make_incident(state="detected")

    with _broker_at(f"redis://127.0.0.1:{_closed_port()}/6"):
        with django_capture_on_commit_callbacks(execute=True) as wake_ups:
            inputs: dict[str, Any] = {**IN_SCOPE, **BANDS["high"]}
            assessment_record(incident=incident, actor=responder, **inputs)
            incident_services.affected_customer_add(incident=incident, customer=customer, actor=responder)
            incident = incident_services.incident_declare(
                incident=incident, actor=manager, nature_of_breach="A support mailbox was read by a stranger."
            )
            notice_approve(
                notice=notice_draft(incident=incident, actor=manager, kind="initial"), actor=manager
            )
            clock = incident.clocks.get()
            deadlines_scan(now=clock.due_at - timedelta(hours=24))
        # Every wake-up was tried and lost (enqueue logged and swallowed each failure).
        assert wake_ups and enqueue("notifications.tasks.send_due_deliveries") is False

    # Nothing sent; everything held in the database.
    assert smtp_server.received == []
    # The scan, two days on, also found the playbook tasks overdue: one reminder each, to the owner.
    reminders = DueReminder.objects.count()
    assert reminders and set(DueReminder.objects.values_list("owner", flat=True)) == {responder.pk}
    staff = OutgoingEmail.objects.exclude(kind="due_reminder").order_by("kind", "address")
    assert sorted(staff.values_list("kind", "address")) == [
        ("escalation", manager.email),
        ("escalation", responder.email),
        ("stakeholder_alert", "legal@breachdesk.test"),
        ("stakeholder_alert", "privacy@breachdesk.test"),
        ("stakeholder_alert", "security@breachdesk.test"),
    ]
    assert set(OutgoingEmail.objects.values_list("status", flat=True)) == {"pending"}
    assert sorted(
        IncidentEmail.objects.filter(status="pending").values_list("to_address", flat=True)
    ) == sorted([manager.email, responder.email])
    assert Escalation.objects.filter(clock=clock).count() == 2  # 48 h and 24 h, only 24 h emailed
    assert not Delivery.objects.exists()  # the worker that creates them was never woken

    # The broker is back: beat's next scanner pass wakes everything (tasks run in process here).
    with django_capture_on_commit_callbacks(execute=True):
        scan_deadlines()
    first = list(smtp_server.received)
    reminders = DueReminder.objects.count()  # and, now, the tasks that fall due within hours
    with django_capture_on_commit_callbacks(execute=True):
        scan_deadlines()

    per_recipient = Counter(recipient for message in first for recipient in message.recipients)
    assert per_recipient == {
        "legal@breachdesk.test": 1,
        "privacy@breachdesk.test": 1,
        "security@breachdesk.test": 1,
        "anna@acme.example": 1,  # the notice
        manager.email: 2,  # the declaration alert and the escalation
        responder.email: 2 + reminders,  # the owner: the same two, and the task reminders
    }
    assert len({message.message_id for message in first}) == len(first)
    assert len(smtp_server.received) == len(first)  # the second pass sent nothing more
    assert set(OutgoingEmail.objects.values_list("status", flat=True)) == {"sent"}
    assert set(IncidentEmail.objects.values_list("status", flat=True)) == {"sent"}
    assert Delivery.objects.get().status == "sent"


def test_it_gives_up_queueing_quickly_on_a_broker_that_never_answers(db, caplog):
    # A listening socket that never accepts: the TCP connection succeeds (the kernel's
    # backlog), then nothing ever answers. Kombu's defaults waited 10 s and more per enqueue.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        port = black_hole.getsockname()[1]
        with _broker_at(f"redis://127.0.0.1:{port}/6"):
            started = time.monotonic()
            queued = enqueue("notifications.tasks.send_due_deliveries")
            seconds = time.monotonic() - started

    assert queued is False
    assert "the deadline scanner will pick the work up" in caplog.text
    # The bound is the configured socket timeout (2 s); the margin is for a loaded machine.
    assert seconds < 6, f"enqueue held the caller {seconds:.1f} s"


@pytest.mark.parametrize(
    "name", ["incidents.tasks.send_outgoing_emails", "notifications.tasks.send_due_deliveries"]
)
def test_it_stops_trying_to_queue_at_once_when_the_broker_is_down(db, name):
    with _broker_at(f"redis://127.0.0.1:{_closed_port()}/6"):
        assert enqueue(name) is False
