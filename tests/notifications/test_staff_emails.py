"""Issue 8: escalations (and every other staff email) are outbox rows sent with their subject
folded by ``notifications.messages.fold_header``: a long customer name, or one with a CR/LF,
gives one clean subject line instead of an error that killed the email."""

from __future__ import annotations

from datetime import timedelta

from incidents.models import Contact, Customer
from notifications.models import OutgoingEmail
from notifications.scanner import deadlines_scan
from notifications.sender import outbox_send_due


def test_it_sends_an_escalation_about_a_customer_named_with_a_line_break_with_one_folded_subject(
    declare_for, smtp_server, settings, manager, responder
):
    settings.NOTICE_AUTO_SEND_LEAD_HOURS = 0
    customer = Customer.objects.create(
        name="Nordwind Handels- und Logistikgesellschaft\r\nmit beschränkter Haftung & Co. KG Niederlassung Süd",
        account_reference="NORDWIND",
    )
    Contact.objects.create(customer=customer, name="Nora", email="nora@nordwind.example")
    incident = declare_for([customer])
    clock = incident.clocks.get()
    outbox_send_due()  # the declaration's own emails, if any
    smtp_server.received.clear()

    deadlines_scan(now=clock.due_at - timedelta(hours=1))
    report = outbox_send_due()

    rows = OutgoingEmail.objects.filter(kind="escalation")
    assert sorted(rows.values_list("address", flat=True)) == sorted([manager.email, responder.email])
    assert report.sent == 2 and report.failed == 0
    assert len(smtp_server.received) == 2
    for received in smtp_server.received:
        head = received.raw.split(b"\r\n\r\n", 1)[0]
        subject_lines = head.split(b"\r\nSubject:", 1)[1].split(b"\r\n")
        assert subject_lines[0].strip() != b""  # never folded right after the colon
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        subject = str(received.message["Subject"])
        assert subject.startswith("[Breachdesk] 1 hour left: ")
        assert "\n" not in subject and "\r" not in subject
        assert "Logistikgesellschaft mit beschränkter Haftung" in subject
