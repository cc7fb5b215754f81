"""Issue 8: the "personal data breach declared" alert is an outbox row per recipient in
``incidents``' own outbox, written in the declaring transaction, sent by ``incidents.outbox``
(claims, retries) and woken by the deadline scanner when its wake-up was lost."""

from __future__ import annotations

from django.core import mail

from incidents import services
from incidents.models import OutgoingEmail
from incidents.outbox import address_key, outgoing_emails_send_due
from incidents.tasks import send_declaration_alert


def _declare(make_incident, manager, responder, customer):
    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)
    return services.incident_declare(
        incident=incident, actor=manager, nature_of_breach="A laptop was stolen."
    )


def test_it_writes_one_alert_row_per_recipient_with_the_declaration(
    make_incident, manager, responder, customer, settings
):
    settings.DEFAULT_FROM_EMAIL = "Breachdesk <breachdesk@breachdesk.example>"
    incident = _declare(make_incident, manager, responder, customer)  # not committed: no wake-up ran

    rows = list(OutgoingEmail.objects.filter(kind="declaration_alert").order_by("to_address"))
    assert [row.to_address for row in rows] == sorted([manager.email, responder.email])  # managers, owner
    assert {row.status for row in rows} == {"pending"} and mail.outbox == []
    assert (
        rows[0].message_id
        == f"<declaration-alert.{incident.pk}.{address_key(rows[0].to_address)}@breachdesk.example>"
    )
    assert rows[0].subject == f"[Breachdesk] Personal data breach declared: {incident.reference}"
    assert f"/incidents/{incident.pk}/" in rows[0].body_text


def test_it_sends_each_alert_once_however_often_it_is_asked(
    make_incident, manager, responder, customer, smtp_server
):
    incident = _declare(make_incident, manager, responder, customer)

    assert send_declaration_alert(incident.pk) == 0  # a message queued before the outbox adds nothing
    first = outgoing_emails_send_due()
    second = outgoing_emails_send_due()

    assert (first["sent"], second["sent"]) == (2, 0)
    assert sorted(r for message in smtp_server.received for r in message.recipients) == sorted(
        [manager.email, responder.email]
    )
    assert len({message.message_id for message in smtp_server.received}) == 2


def test_the_scanner_wakes_the_sender_of_alerts_whose_wake_up_was_lost(
    make_incident, manager, responder, customer, smtp_server, settings, django_capture_on_commit_callbacks
):
    from notifications.tasks import scan_deadlines

    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    _declare(make_incident, manager, responder, customer)  # its on-commit wake-up never runs here
    assert smtp_server.received == []

    with django_capture_on_commit_callbacks(execute=True):
        report = scan_deadlines()

    assert report["incident_emails_due"] is True
    assert len(smtp_server.received) == 2
    assert set(OutgoingEmail.objects.values_list("status", flat=True)) == {"sent"}


def test_it_is_sent_by_check_deadlines_too(make_incident, manager, responder, customer, smtp_server):
    from io import StringIO

    from django.core.management import call_command

    _declare(make_incident, manager, responder, customer)
    out = StringIO()

    call_command("check_deadlines", stdout=out)

    assert "Declaration alerts and report confirmations: 2 sent" in out.getvalue()
    assert len(smtp_server.received) >= 2
    assert set(OutgoingEmail.objects.values_list("status", flat=True)) == {"sent"}
