"""The read-only auditor site at /audit/: auditors read every record and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.audit_site import audit_site
from incidents.models import Product, Supplier, WorkerHeartbeat
from tests.conftest import intake_rows, second_half_rows

PASSWORD = "correct horse battery"


@pytest.fixture
def one_of_each(db, make_incident, customer, manager, auditor, smtp_server, settings, tmp_path):
    """At least one row of every model of the audited apps, built through the services."""
    _evidence_rows(make_incident, manager, settings, tmp_path)
    Product.objects.create(name="Support Portal")
    Supplier.objects.create(name="Mailer Ltd", country="IE")
    WorkerHeartbeat.objects.create(name="beat", beat_at=timezone.now())
    # Audit events, an affected customer, a post-mortem with its rows, a drill.
    incident = second_half_rows(make_incident, manager)
    _notification_rows(make_incident, manager)
    _triage_rows(make_incident, manager)
    _contact_rows(customer)
    intake_rows(manager)
    # A date reminder: the playbook tasks of the triage rows, seen a month from now (overdue).
    from notifications.reminders import due_reminders_scan

    assert due_reminders_scan(now=timezone.now() + timedelta(days=30))
    from incidents.checkpoints import audit_checkpoints_write

    audit_checkpoints_write()
    # A need-to-know restriction with its members (the auditor granted, so it sees them).
    services.incident_restriction_set(incident=make_incident(), actor=manager, members=[auditor])
    return incident


def _evidence_rows(make_incident, manager, settings, tmp_path):
    """An evidence file (stored in a folder of this test)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from incidents.files import evidence_file_upload

    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    evidence_file_upload(incident=make_incident(), actor=manager, upload=SimpleUploadedFile("a.txt", b"a"))


def _contact_rows(customer):
    """A confirmation request with its outgoing email, and with them the customer's audit chain."""
    from notifications.confirmations import contacts_confirmation_request

    assert contacts_confirmation_request(customer=customer)


def _notification_rows(make_incident, manager):  # needs the smtp_server fixture
    """A clock, an escalation, a withheld field, a translation, an approved notice with its
    recipient, shared message, delivery and the message sent, and a contact it skipped
    (refused earlier)."""
    from datetime import timedelta

    from incidents.services import contact_create, contact_mark_undeliverable
    from notifications.scanner import deadlines_scan
    from notifications.sender import deliveries_send_due
    from notifications.services import (
        notice_approve,
        notice_deliveries_create,
        notice_draft,
        translation_set,
        withholding_create,
    )

    declared = make_incident(state="declared")
    bounced = contact_create(
        customer=declared.affected_customers.get().customer,
        actor=None,
        name="Gone",
        email="gone@fixture.example",
    )
    contact_mark_undeliverable(
        contact_id=bounced.pk, address=bounced.email, reason="550 No such user", at=timezone.now()
    )
    withholding_create(
        incident=declared,
        actor=manager,
        field="sub_processor",
        reason="law_enforcement",
        requested_by="Police case 12",
        review_at=timezone.now() + timedelta(days=7),
    )
    translation_set(
        incident=declared,
        actor=manager,
        field="nature_of_breach",
        language="de",
        text="Lohnabrechnung falsch versandt.",
    )
    notice = notice_approve(
        notice=notice_draft(incident=declared, actor=manager, kind="initial"), actor=manager
    )
    notice_deliveries_create(notice_id=notice.pk)
    deadlines_scan(now=declared.clocks.get().due_at - timedelta(hours=47))
    deliveries_send_due()  # through the real SMTP server: a delivery sent, its message recorded


def _triage_rows(make_incident, manager):
    """An in-scope assessment: with it a stakeholder alert and the playbook's response tasks
    (stakeholder groups and playbooks are seeded by a data migration)."""
    from triage.services import assessment_record

    assessment_record(
        incident=make_incident(),
        actor=manager,
        scope="in_scope",
        scope_rationale="Customer data reached a wrong recipient.",
        malicious="no",
        scenario="misdirected_communication",
        data_categories=["identity"],
        severity_inputs={"ease_of_identification": "maximum"},
        notification_facts={"breach_types": ["confidentiality"]},
    )


def _audited_models():
    from incidents.audit_site import AUDITED_APPS

    models = [model for label in AUDITED_APPS for model in apps.get_app_config(label).get_models()]
    return models + [get_user_model(), Group]


def _url(model, view: str, *args) -> str:
    return reverse(f"audit:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _snapshot() -> dict[str, list]:
    """Every audited record, except the security audit events, which record the refusals
    themselves (each 403 is a ``permission_denied`` event)."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in _audited_models()
        if model._meta.label != "incidents.SecurityAuditEvent"
    }


def test_it_registers_every_model_of_the_incident_register_and_post_mortems():
    for model in _audited_models():
        assert audit_site.is_registered(model), model._meta.label


def test_it_renders_every_list_and_record_for_an_auditor(auditor, one_of_each):
    client = _client_for(auditor)

    assert client.get(reverse("audit:index")).status_code == 200
    for model in _audited_models():
        row = model.objects.order_by("pk").first()
        assert row is not None, f"no {model._meta.label} row to look at"
        changelist = client.get(_url(model, "changelist"))
        change_page = client.get(_url(model, "change", row.pk))
        assert changelist.status_code == 200, model._meta.label
        assert change_page.status_code == 200, model._meta.label
        assert change_page.context["has_change_permission"] is False
        assert 'name="_save"' not in change_page.content.decode(), model._meta.label


def test_it_shows_the_incident_with_its_affected_customers_and_audit_trail(auditor, one_of_each):
    page = _client_for(auditor).get(_url(one_of_each.__class__, "change", one_of_each.pk)).content.decode()

    assert one_of_each.reference in page
    assert "Fixture Customer Ltd" in page
    assert "declare" in page and "close" in page


def test_it_never_shows_password_hashes(auditor, one_of_each):
    user_model = get_user_model()
    client = _client_for(auditor)

    for user in user_model.objects.all():
        page = client.get(_url(user_model, "change", user.pk)).content.decode()
        assert user.password not in page
        assert "pbkdf2" not in page and "argon2" not in page


def test_it_offers_no_actions_at_all(auditor, one_of_each):
    client = _client_for(auditor)

    for model in _audited_models():
        response = client.get(_url(model, "changelist"))
        assert response.context["action_form"] is None, model._meta.label
        assert "delete_selected" not in response.content.decode()


def test_it_refuses_every_add_change_and_delete(auditor, one_of_each):
    client = _client_for(auditor)
    before = _snapshot()

    for model in _audited_models():
        row = model.objects.order_by("pk").first()
        label = model._meta.label
        assert client.get(_url(model, "add")).status_code == 403, label
        assert client.post(_url(model, "add"), {"name": "x"}).status_code == 403, label
        change = client.post(_url(model, "change", row.pk), {"name": "x", "title": "x"})
        assert change.status_code == 403, label
        assert client.get(_url(model, "delete", row.pk)).status_code == 403, label
        assert client.post(_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403, label
        bulk_delete = client.post(
            _url(model, "changelist"),
            {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes", "index": 0},
        )
        assert bulk_delete.status_code in (200, 403), label

    assert _snapshot() == before
    from incidents.models import SecurityAuditEvent

    assert SecurityAuditEvent.objects.filter(kind="permission_denied", user=auditor).count() >= 5


def test_it_lets_a_superuser_in_read_only_too(superuser, one_of_each):
    client = _client_for(superuser)
    incident_model = one_of_each.__class__

    assert client.get(_url(incident_model, "change", one_of_each.pk)).status_code == 200
    assert client.get(_url(incident_model, "add")).status_code == 403


@pytest.mark.parametrize("role", ["responder", "incident_manager", "outsider"])
def test_it_keeps_everyone_else_out(personas, one_of_each, role):
    client = _client_for(personas[role])
    incident_model = one_of_each.__class__

    urls = (
        reverse("audit:index"),
        _url(incident_model, "changelist"),
        _url(incident_model, "change", one_of_each.pk),
    )
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("audit:login")), url
    assert one_of_each.title not in client.get(reverse("audit:index"), follow=True).content.decode()


def test_it_sends_anonymous_visitors_to_its_login_page(one_of_each):
    response = Client().get(reverse("audit:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("audit:login"))


def test_it_lets_an_auditor_log_in_without_staff_status(auditor):
    client = Client()

    response = client.post(
        reverse("audit:login"), {"username": auditor.username, "password": PASSWORD, "next": "/audit/"}
    )

    assert not auditor.is_staff
    assert response.status_code == 302 and response["Location"] == "/audit/"
    assert client.get("/audit/").status_code == 200


def test_it_refuses_a_responder_at_its_login_page(responder):
    client = Client()

    response = client.post(reverse("audit:login"), {"username": responder.username, "password": PASSWORD})

    assert response.status_code == 200
    assert "may not use the audit site" in response.content.decode()
    assert client.get("/audit/").status_code == 302


def test_it_refuses_an_inactive_auditor(auditor):
    auditor.is_active = False
    auditor.save()

    assert _client_for(auditor).get(reverse("audit:index")).status_code == 302
