"""The public customer report page /report/: a customer reports, gets a reference on the page
and by email (a real SMTP server, through the outbox); a detected incident from source
customer_report; throttled per address and per IP; a honeypot; nothing about other incidents."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents.models import CustomerReport, Incident, OutgoingEmail
from incidents.outbox import outgoing_emails_send_due

FORM = {
    "organisation": "Acme Logistics GmbH",
    "contact_email": "it-security@acme.example",
    "description": "Our support portal showed us an invoice of another company.\nIt named their staff.",
    "occurred_on": "2026-03-02",
}


@pytest.fixture
def page(db):
    return Client(enforce_csrf_checks=True)


def submit(client: Client, data: dict, **extra):
    form = client.get("/report/")
    token = form.cookies["csrftoken"].value
    return client.post("/report/", {**data, "csrfmiddlewaretoken": token}, **extra)


def test_the_page_needs_no_login_and_shows_the_form(page):
    response = page.get("/report/")

    assert response.status_code == 200
    for name in ("organisation", "contact_email", "description", "occurred_on", "website"):
        assert f'name="{name}"' in response.content.decode()


def test_a_report_creates_a_detected_incident_and_emails_the_reference(page, smtp_server):
    response = submit(page, FORM)

    assert response.status_code == 200
    report = CustomerReport.objects.get()
    assert report.reference in response.content.decode()
    assert report.reference.startswith("CR-") and len(report.reference) == 12
    incident = report.incident
    assert incident.state == "detected" and incident.detection_source == "customer_report"
    assert incident.occurred_on == date(2026, 3, 2) and incident.occurred_on_precision == "day"
    assert "it-security@acme.example" in incident.reported_by
    assert incident.reference not in response.content.decode()
    email = OutgoingEmail.objects.get()
    assert email.to_address == "it-security@acme.example"
    # The worker is eager in tests: the wake-up queued on commit already sent it.
    assert email.status == "sent" or outgoing_emails_send_due()["sent"] == 1
    assert OutgoingEmail.objects.get().status == "sent"
    [message] = smtp_server.received
    assert report.reference in message.text() and report.reference in message.message["Subject"]
    assert message.message_id == email.message_id


def test_the_email_is_a_row_first_and_survives_a_broker_outage(page, monkeypatch):
    from config import celery

    monkeypatch.setattr(celery, "enqueue", lambda *args, **kwargs: False)

    submit(page, FORM)

    email = OutgoingEmail.objects.get()
    assert email.status == "pending"  # the minute sweep (beat) sends it


def test_a_refused_smtp_send_is_retried_later(page, smtp_server, monkeypatch):
    from config import celery

    monkeypatch.setattr(celery, "enqueue", lambda *args, **kwargs: False)
    submit(page, FORM)
    smtp_server.refuse_temporarily = True

    counts = outgoing_emails_send_due()

    email = OutgoingEmail.objects.get()
    assert counts["retried"] == 1 and email.status == "pending" and email.next_attempt_at > timezone.now()
    assert email.last_error


def test_invalid_input_re_shows_the_form_and_stores_nothing(page):
    response = submit(page, {**FORM, "contact_email": "not an address", "occurred_on": "2999-01-01"})

    assert response.status_code == 400
    assert not Incident.objects.exists() and not OutgoingEmail.objects.exists()


def test_the_honeypot_answers_as_if_accepted_and_stores_nothing(page):
    response = submit(page, {**FORM, "website": "http://spam.example"})

    assert response.status_code == 200 and "CR-" in response.content.decode()
    assert not Incident.objects.exists() and not CustomerReport.objects.exists()
    assert not OutgoingEmail.objects.exists()


def test_it_throttles_per_address(page, settings):
    settings.REPORT_LIMIT_PER_EMAIL_PER_HOUR = 2
    statuses = [submit(page, FORM).status_code for _ in range(3)]
    other_address = submit(page, {**FORM, "contact_email": "someone.else@acme.example"})

    assert statuses == [200, 200, 429]
    assert other_address.status_code == 200
    assert CustomerReport.objects.count() == 3


def test_it_throttles_per_ip_address(page, settings):
    settings.REPORT_LIMIT_PER_IP_PER_HOUR = 2
    statuses = [submit(page, {**FORM, "contact_email": f"r{i}@acme.example"}).status_code for i in range(3)]

    assert statuses == [200, 200, 429]


def test_the_throttle_window_is_one_hour(page, settings):
    settings.REPORT_LIMIT_PER_EMAIL_PER_HOUR = 1
    submit(page, FORM)
    CustomerReport.objects.update(created_at=timezone.now() - timedelta(hours=1, seconds=1))

    assert submit(page, FORM).status_code == 200


def test_csrf_is_enforced(page):
    response = page.post("/report/", FORM)

    assert response.status_code == 403 and not Incident.objects.exists()


def test_a_form_body_that_is_not_utf8_is_refused(page):
    page.get("/report/")
    token = page.cookies["csrftoken"].value
    body = f"csrfmiddlewaretoken={token}&organisation=%FF&contact_email=a%40b.example&description=x&occurred_on=2026-01-01"

    response = page.post("/report/", body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400 and not Incident.objects.exists()


def test_the_login_page_links_to_the_report_page(page):
    assert 'href="/report/"' in page.get("/accounts/login/").content.decode()
