"""Bounces count: a permanent refusal of a contact's address (SMTP 5xx to RCPT TO), on a notice
or a confirmation request, marks the contact undeliverable with the reason and time; later
notices skip it and say why; it comes back only when confirmed again or edited by staff. A
refusal that is not about the address (a content rejection, 4xx) marks nothing. The outbox
serves notices before other emails."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import Contact, Customer, CustomerAuditEvent
from notifications import confirmations
from notifications.mail_sink import MailSink, start_mail_sink
from notifications.models import Delivery, Escalation, OutgoingEmail, SkippedRecipient
from notifications.sender import (
    PermanentFailure,
    TemporaryFailure,
    classify,
    outbox_requeue_expired,
    outbox_send_due,
)
from notifications.services import notice_draft
from tests.notifications.support import approve


@pytest.fixture
def beta(db):
    """A customer with two administrative contacts; the relay will refuse one of them."""
    beta = Customer.objects.create(name="Beta BV", account_reference="BETA", preferred_language="en")
    Contact.objects.create(customer=beta, name="Gone Away", email="gone@beta.example")
    Contact.objects.create(customer=beta, name="Still Here", email="here@beta.example")
    return beta


def _bounce_confirmation(smtp_server, customer, address="gone@beta.example"):
    smtp_server.refuse_permanently.add(address)
    confirmations.contacts_confirmation_request(customer=customer)
    return outbox_send_due()


def test_a_550_on_a_confirmation_marks_the_contact_undeliverable_with_reason_and_time(smtp_server, beta):
    before = timezone.now()

    report = _bounce_confirmation(smtp_server, beta)

    assert (report.sent, report.failed, report.contacts_undeliverable) == (1, 1, 1)
    gone = Contact.objects.get(email="gone@beta.example")
    assert gone.undeliverable_at is not None
    assert before <= gone.undeliverable_at <= timezone.now()
    assert gone.undeliverable_reason.startswith("550") and "No such user" in gone.undeliverable_reason
    assert not gone.is_deliverable and gone.is_active  # still a contact, just not reachable
    assert Contact.objects.get(email="here@beta.example").undeliverable_at is None
    email = OutgoingEmail.objects.get(address="gone@beta.example")
    assert email.status == "failed" and email.attempts == 1  # permanent: no retry
    event = CustomerAuditEvent.objects.filter(customer=beta, verb="contact_undeliverable").get()
    assert event.data == {
        "contact": gone.pk,
        "address": "gone@beta.example",
        "reason": gone.undeliverable_reason,
    }


def test_the_next_notice_creates_no_delivery_for_it_and_says_why(smtp_server, beta, declare_for, manager):
    _bounce_confirmation(smtp_server, beta)
    gone = Contact.objects.get(email="gone@beta.example")
    incident = declare_for([beta])

    notice = approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)

    assert list(Delivery.objects.filter(notice=notice).values_list("address", flat=True)) == [
        "here@beta.example"
    ]
    skipped = SkippedRecipient.objects.get(notice=notice)
    assert (skipped.contact, skipped.reason, skipped.address) == (gone, "undeliverable", "gone@beta.example")
    assert "550" in skipped.detail
    # Recorded by the worker that created the deliveries after the approval.
    assert incident.audit_events.get(verb="notice_deliveries_created").data["skipped_recipients"] == 1
    page = Client()
    page.force_login(manager)
    detail = page.get(
        reverse("notifications:notice_detail", args=[incident.pk, notice.number])
    ).content.decode()
    assert "gone@beta.example" in detail and "not sent" in detail and "550" in detail
    api = APIClient()
    api.force_login(manager)
    data = api.get(f"/api/incidents/{incident.pk}/notices/{notice.number}/").json()
    assert data["skipped_recipients"] == [
        {
            "contact": gone.pk,
            "customer": beta.pk,
            "address": "gone@beta.example",
            "reason": "undeliverable",
            "detail": skipped.detail,
        }
    ]


def test_a_550_on_a_notice_marks_the_contact_too(smtp_server, beta, declare_for, manager):
    smtp_server.refuse_permanently.add("gone@beta.example")
    incident = declare_for([beta])
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)

    outbox_send_due()

    gone = Contact.objects.get(email="gone@beta.example")
    assert gone.undeliverable_at is not None
    follow_up = approve(notice_draft(incident=incident, actor=manager, kind="update"), manager)
    assert not Delivery.objects.filter(notice=follow_up, contact=gone).exists()
    assert SkippedRecipient.objects.filter(notice=follow_up, contact=gone).exists()


def test_a_customer_whose_only_contact_bounced_is_named_at_declaration_with_its_readiness_entry(
    smtp_server, declare_for, db
):
    lonely = Customer.objects.create(name="Lonely GmbH", account_reference="LONELY")
    Contact.objects.create(customer=lonely, name="Only One", email="only@lonely.example")
    _bounce_confirmation(smtp_server, lonely, "only@lonely.example")

    incident = declare_for([lonely])

    escalation = Escalation.objects.get(clock__incident=incident, threshold="no_contact")
    assert "only@lonely.example undeliverable since" in escalation.detail
    assert reverse("contacts:customer_readiness", args=[lonely.pk]) in escalation.detail


class _RejectAtData(MailSink):
    """A relay that takes every recipient, then rejects the content for good (554)."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "554 5.7.1 Message content rejected"


def test_a_refusal_that_is_not_about_the_address_marks_nothing(beta, settings):
    sink = _RejectAtData()
    controller = start_mail_sink(sink)
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 5},
        }
    }
    try:
        confirmations.contacts_confirmation_request(customer=beta)
        report = outbox_send_due()
    finally:
        controller.stop()

    assert report.failed == 2 and report.contacts_undeliverable == 0
    assert not Contact.objects.filter(undeliverable_at__isnull=False).exists()


def test_a_temporary_refusal_retries_the_email_and_marks_nothing(smtp_server, beta):
    smtp_server.refuse_temporarily = True
    confirmations.contacts_confirmation_request(customer=beta)

    report = outbox_send_due()

    assert (report.retried, report.failed, report.contacts_undeliverable) == (2, 0, 0)
    OutgoingEmail.objects.update(next_attempt_at=timezone.now())
    smtp_server.refuse_temporarily = False
    assert outbox_send_due().sent == 2
    assert not Contact.objects.filter(undeliverable_at__isnull=False).exists()


@dataclass
class _Fake:
    smtp_code: int
    smtp_error: bytes = b"refused"


def test_only_a_refused_recipient_blames_the_address():
    refused = classify(smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"5.1.1 No such user")}))
    assert isinstance(refused, PermanentFailure) and refused.recipient_refused
    assert str(refused) == "550 5.1.1 No such user"  # the relay's words, not a bytes repr
    assert (
        str(classify(smtplib.SMTPDataError(554, b"Content rejected \xff"))) == "554 Content rejected \ufffd"
    )
    greylisted = classify(smtplib.SMTPRecipientsRefused({"x@example.com": (451, b"Later")}))
    assert isinstance(greylisted, TemporaryFailure)
    for ours in (
        smtplib.SMTPSenderRefused(550, b"Sender rejected", "breachdesk@localhost"),
        smtplib.SMTPAuthenticationError(535, b"Bad credentials"),
        smtplib.SMTPDataError(554, b"Content rejected"),
    ):
        failure = classify(ours)
        assert isinstance(failure, PermanentFailure) and not failure.recipient_refused, ours


def test_it_comes_back_when_confirmed_again(smtp_server, beta):
    _bounce_confirmation(smtp_server, beta)
    link = confirmations.ContactConfirmationRequest.objects.get(recipient__email="here@beta.example")

    confirmations.confirmation_confirm(link=link, client_address="192.0.2.1")

    gone = Contact.objects.get(email="gone@beta.example")
    assert gone.undeliverable_at is None and gone.is_deliverable
    event = CustomerAuditEvent.objects.filter(customer=beta).order_by("-sequence")[0]
    assert event.verb == "contacts_confirmed" and event.data["undeliverable_cleared"] == [gone.pk]


def test_it_comes_back_when_staff_edit_it_and_the_edit_is_audited(smtp_server, beta, responder):
    _bounce_confirmation(smtp_server, beta)
    gone = Contact.objects.get(email="gone@beta.example")
    api = APIClient()
    api.force_login(responder)

    response = api.patch(f"/api/contacts/{gone.pk}/", {"email": "back@beta.example"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["deliverable"] is True and response.json()["undeliverable_at"] is None
    gone.refresh_from_db()
    assert gone.is_deliverable and gone.email == "back@beta.example"
    event = CustomerAuditEvent.objects.filter(customer=beta).order_by("-sequence")[0]
    assert (event.verb, event.actor_username) == ("contact_updated", responder.username)
    assert event.data["changes"] == {"email": ["gone@beta.example", "back@beta.example"]}
    assert event.data["cleared"]["undeliverable"]["reason"].startswith("550")


def test_a_bounce_for_an_address_changed_since_is_ignored(beta):
    from incidents.services import contact_mark_undeliverable

    contact = Contact.objects.get(email="gone@beta.example")
    assert not contact_mark_undeliverable(
        contact_id=contact.pk, address="older@beta.example", reason="550", at=timezone.now()
    )
    contact.refresh_from_db()
    assert contact.undeliverable_at is None


def test_notice_deliveries_go_out_before_other_emails(smtp_server, beta, declare_for, manager, settings):
    settings.NOTICE_SEND_CHUNK_SIZE = 1
    confirmations.contacts_confirmation_request(customer=beta)  # two emails waiting first
    incident = declare_for([beta])
    approve(notice_draft(incident=incident, actor=manager, kind="initial"), manager)

    outbox_send_due(max_chunks=2)

    assert [
        received.message_id.startswith(f"<{incident.reference}.") for received in smtp_server.received
    ] == [
        True,
        True,
    ]
    outbox_send_due()
    assert len(smtp_server.received) == 4


def test_an_email_whose_worker_died_is_requeued_and_sent(smtp_server, beta):
    confirmations.contacts_confirmation_request(customer=beta)
    OutgoingEmail.objects.update(
        status="sending", claim_token="dead", claimed_until=timezone.now() - timedelta(seconds=1)
    )

    assert outbox_requeue_expired() == 2
    assert outbox_send_due().sent == 2
