"""Django's admin (/admin/) for superusers: every model registered, incidents written through the
services, the lifecycle state and the audit trail read-only."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import AuditEvent, Incident, Product, Supplier, WorkerHeartbeat
from tests.conftest import intake_rows, second_half_rows


class _FormFields(HTMLParser):
    """What a browser would submit from the page's form with id ``form_id`` (the admin's
    change form): inputs, checked boxes, selected options and text areas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
        if not self.inside or "disabled" in attributes:
            return
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button", "file"):
            if attributes.get("type") in ("checkbox", "radio") and "checked" not in attributes:
                return
            default = "on" if attributes.get("type") == "checkbox" else ""
            self.data.append((name, attributes.get("value") or default))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            self.data.append((self._select, attributes.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text += data


def _form_data(page: str, form_id: str) -> dict[str, list[str]]:
    parser = _FormFields(form_id)
    parser.feed(page)
    data: dict[str, list[str]] = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    return data


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _domain_models():
    return [
        model for label in ("incidents", "postmortems") for model in apps.get_app_config(label).get_models()
    ]


@pytest.fixture
def admin_client_for(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def one_of_each(db, make_incident, customer, manager, superuser, settings, tmp_path):
    from tests.incidents.test_audit_site import _evidence_rows

    _evidence_rows(make_incident, manager, settings, tmp_path)
    Product.objects.create(name="Support Portal")
    Supplier.objects.create(name="Mailer Ltd")
    WorkerHeartbeat.objects.create(name="beat", beat_at=timezone.now())
    services.contact_create(customer=customer, actor=None, name="Carl Colleague", email="carl@acme.example")
    incident = second_half_rows(make_incident, manager)
    intake_rows(superuser)
    from incidents.checkpoints import audit_checkpoints_write

    audit_checkpoints_write()
    # A need-to-know restriction with its members (the superuser one of them, so it sees them).
    services.incident_restriction_set(incident=make_incident(), actor=manager, members=[superuser])
    return incident


def test_it_registers_every_model_of_incidents_and_post_mortems():
    for model in _domain_models():
        assert admin.site.is_registered(model), model._meta.label


def test_it_renders_every_list_and_record_for_a_superuser(admin_client_for, one_of_each):
    for model in _domain_models():
        row = model.objects.order_by("pk").first()
        assert admin_client_for.get(_url(model, "changelist")).status_code == 200, model._meta.label
        assert admin_client_for.get(_url(model, "change", row.pk)).status_code == 200, model._meta.label


def test_it_keeps_people_without_staff_status_out(responder, make_incident):
    client = Client()
    client.force_login(responder)

    response = client.get(_url(Incident, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_shows_the_state_read_only_and_saves_facts_through_the_service(
    admin_client_for, superuser, make_incident
):
    incident = make_incident()
    page = admin_client_for.get(_url(Incident, "change", incident.pk)).content.decode()
    data = _form_data(page, "incident_form")
    assert "state" not in data  # no input for the protected lifecycle field
    data["title"] = ["Misdirected payroll email (admin)"]
    data["severity"] = ["high"]
    data["state"] = ["closed"]  # a forged field is ignored

    response = admin_client_for.post(_url(Incident, "change", incident.pk), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    incident.refresh_from_db()
    assert incident.state == "detected"
    assert (incident.title, incident.severity) == ("Misdirected payroll email (admin)", "high")
    event = AuditEvent.objects.filter(incident=incident).last()
    assert event is not None
    assert event.verb == "updated" and event.actor == superuser
    assert set(event.data["changes"]) == {"title", "severity"}


def test_it_adds_an_incident_through_the_service(admin_client_for, superuser):
    page = admin_client_for.get(_url(Incident, "add")).content.decode()
    data = _form_data(page, "incident_form")
    data.update({"title": ["Found in the admin"], "detection_source": ["staff_escalation"]})

    response = admin_client_for.post(_url(Incident, "add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    incident = Incident.objects.get(title="Found in the admin")
    assert incident.reference == f"BD-{incident.created_at.year}-{incident.pk:05d}"
    assert incident.created_by == superuser
    assert AuditEvent.objects.get(incident=incident).verb == "created"


def test_it_makes_a_final_incident_view_only(admin_client_for, make_incident):
    incident = make_incident(state="out_of_scope")

    page = admin_client_for.get(_url(Incident, "change", incident.pk))
    response = admin_client_for.post(_url(Incident, "change", incident.pk), {"title": "Reopened"})

    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).title != "Reopened"


def test_it_refuses_to_delete_incidents(admin_client_for, make_incident):
    incident = make_incident()

    assert admin_client_for.post(_url(Incident, "delete", incident.pk), {"post": "yes"}).status_code == 403
    assert Incident.objects.filter(pk=incident.pk).exists()


def test_it_keeps_the_audit_trail_read_only_even_for_superusers(admin_client_for, make_incident):
    incident = make_incident(state="triaged")
    event = AuditEvent.objects.filter(incident=incident).first()
    assert event is not None
    before = list(AuditEvent.objects.order_by("pk").values())

    assert admin_client_for.get(_url(AuditEvent, "change", event.pk)).status_code == 200
    assert admin_client_for.get(_url(AuditEvent, "add")).status_code == 403
    assert admin_client_for.post(_url(AuditEvent, "add"), {"verb": "forged"}).status_code == 403
    assert admin_client_for.post(_url(AuditEvent, "change", event.pk), {"verb": "forged"}).status_code == 403
    assert admin_client_for.get(_url(AuditEvent, "delete", event.pk)).status_code == 403
    assert admin_client_for.post(_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    changelist = admin_client_for.post(
        _url(AuditEvent, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes", "index": 0},
    )
    assert changelist.status_code in (200, 403)
    assert list(AuditEvent.objects.order_by("pk").values()) == before


def test_it_edits_reference_data_directly(admin_client_for, customer):
    page = admin_client_for.get(_url(customer.__class__, "change", customer.pk)).content.decode()
    data = _form_data(page, "customer_form")
    data["notification_window_hours"] = ["48"]

    response = admin_client_for.post(_url(customer.__class__, "change", customer.pk), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert customer.notification_window_hours == 48


def test_it_says_why_when_the_service_refuses_a_save(admin_client_for, make_incident, monkeypatch):
    from incidents import services
    from incidents.exceptions import LifecycleConflict

    incident = make_incident()
    page = admin_client_for.get(_url(Incident, "change", incident.pk)).content.decode()
    data = _form_data(page, "incident_form")
    data["title"] = ["Changed meanwhile"]

    def refuse(**kwargs):
        raise LifecycleConflict("A closed incident cannot be edited.")

    monkeypatch.setattr(services, "incident_update", refuse)
    response = admin_client_for.post(_url(Incident, "change", incident.pk), data, follow=True)

    assert response.status_code == 200
    assert "Not saved: A closed incident cannot be edited." in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).title != "Changed meanwhile"


def test_it_saves_contacts_through_the_services_audited_and_a_staff_edit_clears_a_bounce(
    admin_client_for, superuser, customer
):
    from incidents.models import Contact, CustomerAuditEvent

    anna = customer.contacts.get()
    services.contact_mark_undeliverable(
        contact_id=anna.pk, address=anna.email, reason="550 gone", at=timezone.now()
    )
    page = admin_client_for.get(_url(Contact, "change", anna.pk)).content.decode()
    data = _form_data(page, "contact_form")
    assert "undeliverable_at" not in data  # shown, never edited
    data["email"] = ["anna.admin@acme.example"]

    response = admin_client_for.post(_url(Contact, "change", anna.pk), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    anna.refresh_from_db()
    assert anna.email == "anna.admin@acme.example" and anna.is_deliverable
    event = CustomerAuditEvent.objects.filter(customer=customer).order_by("-sequence")[0]
    assert (event.verb, event.actor) == ("contact_updated", superuser)
    assert event.data["changes"] == {"email": ["anna@acme.example", "anna.admin@acme.example"]}

    # Through the customer's inline: a new contact, created by the service.
    page = admin_client_for.get(_url(customer.__class__, "change", customer.pk)).content.decode()
    data = _form_data(page, "customer_form")
    data.update(
        {
            "contacts-TOTAL_FORMS": ["2"],
            "contacts-1-name": ["Ben Second"],
            "contacts-1-email": ["ben@acme.example"],
            "contacts-1-role": ["administrative"],
            "contacts-1-is_active": ["on"],
            "contacts-1-customer": [str(customer.pk)],
        }
    )
    response = admin_client_for.post(_url(customer.__class__, "change", customer.pk), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Contact.objects.get(email="ben@acme.example").customer == customer
    assert (
        CustomerAuditEvent.objects.filter(customer=customer).order_by("-sequence")[0].verb == "contact_added"
    )


def test_it_says_why_when_a_contact_address_is_taken(admin_client_for, customer):
    from incidents.models import Contact

    other = services.contact_create(customer=customer, actor=None, name="Other", email="other@acme.example")
    page = admin_client_for.get(_url(Contact, "change", other.pk)).content.decode()
    data = _form_data(page, "contact_form")
    data["email"] = ["ANNA@acme.example"]

    response = admin_client_for.post(_url(Contact, "change", other.pk), data, follow=True)

    # The form itself refuses it now (the case-insensitive constraint, issue 8), with the reason.
    assert "already a contact of this customer" in response.content.decode()
    other.refresh_from_db()
    assert other.email == "other@acme.example"
