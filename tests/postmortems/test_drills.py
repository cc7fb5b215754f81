"""Drills run through the real lifecycle, clocks and notices, and can never reach a real
customer: deliveries go to drill customers only, whatever path added the customer; every drill
email says so in its subject ([DRILL]) and first line, in every language."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.models import Contact, Customer
from notifications import services as notification_services
from notifications.models import Clock, Delivery
from notifications.sender import deliveries_send_due
from postmortems import services as postmortem_services
from tests.conftest import complete_post_mortem
from tests.notifications.support import approve

LANGUAGES = ("en", "de", "fr", "es", "ja")
EXERCISE_LINE = {
    "en": "This is an exercise (a drill).",
    "de": "Dies ist eine Übung.",
    "fr": "Ceci est un exercice.",
    "es": "Esto es un simulacro.",
    "ja": "これは訓練です。",
}


@pytest.fixture
def drill_customers(db):
    """A drill customer per language, each with one administrative contact in that language."""
    customers = []
    for language in LANGUAGES:
        customer = Customer.objects.create(
            name=f"Drill Customer {language.upper()}",
            account_reference=f"DRILL-{language.upper()}",
            preferred_language=language,
            is_drill_customer=True,
        )
        Contact.objects.create(
            customer=customer, name=f"Drill {language}", email=f"drill-{language}@drill.example"
        )
        customers.append(customer)
    return customers


@pytest.fixture
def real_customer(db):
    customer = Customer.objects.create(
        name="Real Bank plc", account_reference="REAL-1", preferred_language="en"
    )
    Contact.objects.create(customer=customer, name="Rea Admin", email="admin@realbank.example")
    return customer


def _api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _approve(incident, manager, kind="initial"):
    notice = notification_services.notice_draft(incident=incident, actor=manager, kind=kind)
    return approve(notice, manager)  # the approval, then the delivery worker


def test_a_drill_never_delivers_to_a_real_customer_whatever_path_added_it(
    make_incident, manager, responder, drill_customers, real_customer, smtp_server
):
    drill = make_incident(state="triaged", is_drill=True, title="Drill: lost laptop")
    other_real = Customer.objects.create(name="Other Real Ltd", account_reference="REAL-2")
    Contact.objects.create(customer=other_real, name="Other", email="other@real.example")
    # The API, the page and the service each add a customer; a real one by each path.
    api_answer = _api(responder).post(
        f"/api/incidents/{drill.pk}/affected-customers/", {"customer": "REAL-1"}, format="json"
    )
    page_answer = _client(responder).post(
        f"/incidents/{drill.pk}/affected-customers/", {"affected-account_reference": "REAL-2"}
    )
    for customer in drill_customers:
        services.affected_customer_add(incident=drill, customer=customer, actor=responder)
    assert api_answer.status_code == 201, api_answer.json()
    assert api_answer.json()["no_notice_reason"].startswith("This incident is a drill")
    assert page_answer.status_code == 302

    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise laptop lost.")
    _approve(drill, manager)
    deliveries_send_due()
    services.incident_update(
        incident=drill, actor=manager, changes={"mitigation_measures": "Wiped remotely."}
    )
    _approve(drill, manager, kind="update")
    deliveries_send_due()

    addresses = set(Delivery.objects.filter(notice__incident=drill).values_list("address", flat=True))
    assert addresses == {f"drill-{language}@drill.example" for language in LANGUAGES}
    received = {rcpt for message in smtp_server.received for rcpt in message.recipients}
    assert received == addresses
    # The real customers' clocks were closed at once, with the reason, so the drill ran on.
    real_clocks = Clock.objects.filter(incident=drill, customer__is_drill_customer=False)
    assert real_clocks.count() == 2
    assert all(clock.waived_at is not None and "drill" in clock.waiver_reason for clock in real_clocks)
    drill.refresh_from_db()
    assert drill.state == "notified"
    real_clock = Clock.objects.get(incident=drill, customer=real_customer)
    assert not real_clock.escalations.exists()


def test_a_drill_customer_cannot_be_added_to_a_real_incident(make_incident, responder, drill_customers):
    real = make_incident(state="triaged")

    api_answer = _api(responder).post(
        f"/api/incidents/{real.pk}/affected-customers/", {"customer": "DRILL-EN"}, format="json"
    )
    page_answer = _client(responder).post(
        f"/incidents/{real.pk}/affected-customers/", {"affected-account_reference": "DRILL-DE"}
    )

    assert api_answer.status_code == 400
    assert "drill customer" in str(api_answer.json())
    assert page_answer.status_code == 400
    assert "drill customer" in page_answer.content.decode()
    assert not real.affected_customers.exists()


def test_deliveries_are_refused_for_a_real_customer_even_if_rows_were_made_behind_the_services(
    make_incident, manager, drill_customers, real_customer
):
    """The check sits where deliveries are created: a real customer recorded on a drill by any
    other means (a data fix, an admin shell) still gets no delivery."""
    from incidents.models import AffectedCustomer

    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=drill_customers[0], actor=manager)
    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")
    AffectedCustomer.objects.create(incident=drill, customer=real_customer)  # no clock, no checks
    _approve(drill, manager)
    _approve(drill, manager, kind="update")

    assert not Delivery.objects.filter(customer=real_customer).exists()
    assert Delivery.objects.filter(customer=drill_customers[0]).count() == 2


def test_the_drill_marker_is_in_every_languages_subject_and_body(
    make_incident, manager, drill_customers, smtp_server
):
    drill = make_incident(state="triaged", is_drill=True)
    for customer in drill_customers:
        services.affected_customer_add(incident=drill, customer=customer, actor=manager)
    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")
    _approve(drill, manager)
    deliveries_send_due()

    assert len(smtp_server.received) == len(LANGUAGES)
    for message in smtp_server.received:
        parsed = message.message
        language = parsed["Content-Language"]
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        assert str(parsed["Subject"]).startswith("[DRILL] "), parsed["Subject"]
        assert text.startswith(EXERCISE_LINE[language]), (language, text[:80])
        assert EXERCISE_LINE[language] in html.split("<body", 1)[1][:400]


def test_real_notices_carry_no_drill_marker(make_incident, manager, real_customer, smtp_server):
    real = make_incident(state="triaged")
    services.affected_customer_add(incident=real, customer=real_customer, actor=manager)
    real = services.incident_declare(incident=real, actor=manager, nature_of_breach="Real.")
    _approve(real, manager)
    deliveries_send_due()

    (message,) = smtp_server.received
    parsed = message.message
    assert "[DRILL]" not in str(parsed["Subject"])
    assert "exercise" not in parsed.get_body(("plain",)).get_content()


def test_internal_emails_about_a_drill_are_marked_too(
    make_incident, manager, drill_customers, settings, django_capture_on_commit_callbacks
):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    Contact.objects.filter(customer=drill_customers[0]).delete()  # no contact: a no_contact escalation
    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=drill_customers[0], actor=manager)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")

    subjects = [message.subject for message in mail.outbox]
    assert any("Personal data breach declared" in subject for subject in subjects)
    assert any("No deliverable contact" in subject for subject in subjects)
    assert subjects and all(subject.startswith("[DRILL] ") for subject in subjects)


def test_an_incident_stays_a_drill_once_declared_and_cannot_turn_real_with_drill_customers(
    make_incident, manager, drill_customers
):
    from django.core.exceptions import ValidationError

    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=drill_customers[0], actor=manager)
    with pytest.raises(ValidationError, match="drill customers"):
        services.incident_update(incident=drill, actor=manager, changes={"is_drill": False})
    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")
    with pytest.raises(ValidationError, match="declared incident"):
        services.incident_update(incident=drill, actor=manager, changes={"is_drill": False})


def test_a_customer_cannot_change_sides_once_an_incident_affects_it(
    make_incident, manager, real_customer, superuser
):
    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=real_customer, actor=manager)

    answer = _api(manager).patch(
        f"/api/customers/{real_customer.pk}/", {"is_drill_customer": True}, format="json"
    )
    admin_page = _client(superuser).post(
        f"/admin/incidents/customer/{real_customer.pk}/change/",
        {
            "name": real_customer.name,
            "account_reference": real_customer.account_reference,
            "preferred_language": "en",
            "notification_window_hours": 72,
            "is_drill_customer": "on",
            "contacts-TOTAL_FORMS": 0,
            "contacts-INITIAL_FORMS": 0,
        },
    )

    assert answer.status_code == 400 and "is_drill_customer" in answer.json()["errors"]
    assert admin_page.status_code == 200 and "can no longer change" in admin_page.content.decode()
    real_customer.refresh_from_db()
    assert real_customer.is_drill_customer is False


def test_the_api_and_the_import_mark_drill_customers(manager, tmp_path):
    created = _api(manager).post(
        "/api/customers/",
        {"name": "Drill API Ltd", "account_reference": "DRILL-API", "is_drill_customer": True},
        format="json",
    )
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "account_reference",
                "customer_name",
                "country",
                "preferred_language",
                "notification_window_hours",
                "contact_name",
                "contact_email",
                "contact_language",
                "contact_role",
                "is_drill_customer",
            ]
        )
        writer.writerow(
            ["DRILL-CSV", "Drill CSV GmbH", "DE", "de", "", "Dora", "dora@drill.example", "", "", "yes"]
        )
        writer.writerow(
            ["REAL-CSV", "Real CSV GmbH", "DE", "de", "", "Rolf", "rolf@real.example", "", "", ""]
        )
    call_command("import_customers", str(path))

    assert created.status_code == 201 and created.json()["is_drill_customer"] is True
    assert Customer.objects.get(account_reference="DRILL-CSV").is_drill_customer is True
    assert Customer.objects.get(account_reference="REAL-CSV").is_drill_customer is False


def test_the_import_refuses_a_bad_drill_value_and_stores_nothing(db, tmp_path):
    from django.core.management.base import CommandError

    path = tmp_path / "customers.csv"
    path.write_text(
        "account_reference,customer_name,country,preferred_language,notification_window_hours,"
        "contact_name,contact_email,contact_language,contact_role,is_drill_customer\n"
        "D-1,Drill One,DE,de,,Dora,dora@drill.example,,,perhaps\n"
    )
    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("import_customers", str(path))
    assert not Customer.objects.filter(account_reference="D-1").exists()


def test_a_drill_record_measures_its_times_and_keeps_participants(make_incident, manager, drill_customers):
    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=drill_customers[0], actor=manager)
    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")
    answer = _api(manager).put(
        f"/api/incidents/{drill.pk}/drill/",
        {
            "scenario": "A support laptop with customer exports is stolen.",
            "held_on": "2026-11-30",
            "objectives": "Declare within 4 hours; notify within 24.",
            "participants": [
                {"function": "response_team", "name": "Max Manager"},
                {"function": "legal", "name": "Lena Legal"},
                {"function": "communications", "name": "Cora Comms"},
                {"function": "security", "name": "Sami Security"},
            ],
        },
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    Clock.objects.filter(incident=drill).update(met_at=timezone.now())
    drill = services.incident_mark_notified(incident=drill)

    done = _api(manager).post(
        f"/api/incidents/{drill.pk}/drill/complete/", {"outcome": "Declared in 20 minutes."}, format="json"
    )

    assert done.status_code == 200, done.json()
    body = done.json()
    assert {p["function"] for p in body["participants"]} == {
        "response_team",
        "legal",
        "communications",
        "security",
    }
    drill.refresh_from_db()
    assert drill.declared_at is not None and drill.notified_at is not None
    assert body["time_to_declare_seconds"] == pytest.approx(
        (drill.declared_at - drill.created_at).total_seconds()
    )
    assert body["time_to_notify_seconds"] == pytest.approx(
        (drill.notified_at - drill.declared_at).total_seconds()
    )
    assert "drill_completed" in list(drill.audit_events.values_list("verb", flat=True))
    again = _api(manager).put(
        f"/api/incidents/{drill.pk}/drill/", {"scenario": "x", "held_on": "2026-11-30"}, format="json"
    )
    assert again.status_code == 409


def test_only_a_drill_has_a_drill_record_and_only_managers_write_it(
    make_incident, manager, responder, auditor
):
    real = make_incident(state="triaged")
    body = {"scenario": "x", "held_on": "2026-11-30"}

    assert _api(manager).put(f"/api/incidents/{real.pk}/drill/", body, format="json").status_code == 400
    drill = make_incident(state="triaged", is_drill=True)
    assert _api(responder).put(f"/api/incidents/{drill.pk}/drill/", body, format="json").status_code == 403
    assert _api(auditor).put(f"/api/incidents/{drill.pk}/drill/", body, format="json").status_code == 403
    assert _api(responder).get(f"/api/incidents/{drill.pk}/drill/").status_code == 404  # none yet


def test_the_list_filters_drills_from_real_incidents(make_incident, responder):
    make_incident(title="Real misdirected email")
    make_incident(title="Exercise misdirected email", is_drill=True)
    client = _client(responder)

    drills = client.get("/incidents/", {"drill": "drill"}).content.decode()
    real = client.get("/incidents/", {"drill": "real"}).content.decode()
    api_drills = _api(responder).get("/api/incidents/", {"is_drill": "true"}).json()["results"]

    assert "Exercise misdirected email" in drills and "Real misdirected email" not in drills
    assert "Real misdirected email" in real and "Exercise misdirected email" not in real
    assert [item["title"] for item in api_drills] == ["Exercise misdirected email"]


def test_managers_are_reminded_when_no_drill_completed_in_twelve_months(make_incident, manager, responder):
    from postmortems.models import Drill

    assert "drill-reminder" in _client(manager).get("/incidents/").content.decode()
    assert "drill-reminder" not in _client(responder).get("/incidents/").content.decode()

    drill = make_incident(state="triaged", is_drill=True)
    postmortem_services.drill_record(
        incident=drill, actor=manager, scenario="x", held_on=timezone.now().date()
    )
    postmortem_services.drill_complete(incident=drill, actor=manager, outcome="Fine.")
    assert "drill-reminder" not in _client(manager).get("/incidents/").content.decode()

    Drill.objects.update(completed_at=timezone.now() - timedelta(days=366))
    assert "drill-reminder" in _client(manager).get("/incidents/").content.decode()


def test_a_drill_runs_end_to_end_and_closes(make_incident, manager, drill_customers, smtp_server):
    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=drill_customers[1], actor=manager)
    drill = services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")
    _approve(drill, manager)
    deliveries_send_due()
    drill.refresh_from_db()
    assert drill.state == "notified"
    drill = services.incident_begin_post_mortem(incident=drill, actor=manager)
    complete_post_mortem(drill, manager)
    drill = services.incident_close(incident=drill, actor=manager)

    assert drill.state == "closed"
    assert [m.recipients for m in smtp_server.received] == [["drill-de@drill.example"]]


def test_a_drill_with_only_real_customers_moves_on_without_sending_anything(
    make_incident, manager, real_customer, django_capture_on_commit_callbacks
):
    drill = make_incident(state="triaged", is_drill=True)
    services.affected_customer_add(incident=drill, customer=real_customer, actor=manager)

    with django_capture_on_commit_callbacks(execute=True):
        services.incident_declare(incident=drill, actor=manager, nature_of_breach="Exercise.")

    drill.refresh_from_db()
    assert drill.state == "notified"
    assert not Delivery.objects.filter(notice__incident=drill).exists()
