"""``POST /api/incidents/`` answers with the incident built from what was written
(``incidents.api.listing.created_incident_representation``) and writes the row once through
SQL compiled once (``incidents.statements``): the answer must be exactly what ``GET`` then
answers and what ``IncidentDetailSerializer`` makes of the stored row, for bodies from the
smallest to every writable field, instants given with offsets and microseconds, products out
of name order, and nulls; the stored row and its first audit event must be what the ORM's own
``save()`` would have stored."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from incidents.api.serializers import IncidentDetailSerializer
from incidents.audit import verify_chain
from incidents.models import AuditEvent, Incident, Product, Supplier
from tests.conftest import errors as response_errors

CREATE = "/api/incidents/"


@pytest.fixture
def api(manager):
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(manager)
    return client


@pytest.fixture
def catalogue(db):
    Product.objects.create(name="Webmail")
    Product.objects.create(name="Billing portal")
    return SimpleNamespace(supplier=Supplier.objects.create(name="MailCo"))


def bodies(catalogue) -> dict[str, dict]:
    return {
        "smallest": {
            "title": "Payroll file sent to the wrong recipient",
            "detection_source": "staff_escalation",
        },
        "every writable field": {
            "title": "Ticket attachments visible to another customer – ünïcode",
            "detection_source": "customer_report",
            "summary": "Line one\nline two",
            "detected_at": "2026-03-29T03:30:00.123456+02:00",
            "occurred_on": "2026-03-01",
            "occurred_on_precision": "month",
            "reported_by": "Support desk",
            "owner": "max.manager",
            "scenario": "misdirected_communication",
            "severity": "high",
            "malicious": "no",
            "is_drill": False,
            "nature_of_breach": "Attachments of one customer's tickets were shown to another.",
            "mitigation_measures": "Attachment links revoked.",
            "products": ["Webmail", "Billing portal"],
            "exposure_started_at": "2026-03-28T00:00:00Z",
            "exposure_ended_at": "2026-03-29T12:00:00.5-01:00",
            "records_affected": 120,
            "records_affected_is_estimate": True,
            "data_categories": ["identity", "customer_supplied"],
            "data_subject_categories": [],
            "data_subjects_affected": 80,
            "data_subjects_affected_is_estimate": True,
            "likely_consequences": None,
            "adverse_effect_measures": "Affected data subjects told to ignore the shared files.",
            "sub_processor": catalogue.supplier.pk,
            "sub_processor_details": "MailCo hosts the attachments.",
            "incident_figures_shareable": True,
            "external_reference": "TICKET-4711",
        },
        "nulls": {
            "title": "Alert from the anomaly profiler",
            "detection_source": "automated_alert",
            "detected_at": None,
            "owner": None,
            "records_affected": None,
            "data_categories": None,
            "sub_processor": None,
            "external_reference": None,
        },
    }


def stored_representation(incident_id: int, user) -> dict:
    incident = (
        Incident.objects.select_related("owner", "declared_by")
        .prefetch_related("products", "affected_customers__customer")
        .get(pk=incident_id)
    )
    data = IncidentDetailSerializer(incident, context={"request": SimpleNamespace(user=user)}).data
    return json.loads(JSONRenderer().render(data))


@pytest.mark.parametrize("name", ["smallest", "every writable field", "nulls"])
def test_the_create_answer_is_what_get_and_the_serializer_give(api, manager, catalogue, name):
    body = bodies(catalogue)[name]

    created = api.post(CREATE, body, format="json")

    assert created.status_code == 201, created.content
    answer = created.json()
    fetched = api.get(f"{CREATE}{answer['id']}/")
    assert fetched.status_code == 200
    assert list(answer) == list(fetched.json())  # the same keys, in the same order
    assert answer == fetched.json()
    assert answer == stored_representation(answer["id"], manager)
    assert answer["reference"] == f"BD-{answer['created_at'][:4]}-{answer['id']:05d}"
    assert answer["state"] == "detected" and answer["affected_customers"] == []


def test_every_writable_field_is_stored_as_given(api, catalogue):
    body = bodies(catalogue)["every writable field"]

    answer = api.post(CREATE, body, format="json").json()

    incident = Incident.objects.get(pk=answer["id"])
    assert answer["products"] == ["Billing portal", "Webmail"]  # by name, as the detail lists them
    assert sorted(incident.products.values_list("name", flat=True)) == ["Billing portal", "Webmail"]
    assert answer["detected_at"] == "2026-03-29T01:30:00.123456Z"  # converted to UTC
    assert answer["exposure_ended_at"] == "2026-03-29T13:00:00.500000Z"
    assert answer["exposure_duration_hours"] == pytest.approx(37.000138888888891)
    assert incident.sub_processor_id == catalogue.supplier.pk
    assert incident.owner is not None and incident.owner.username == "max.manager"
    assert incident.external_reference == "TICKET-4711" and incident.records_affected == 120
    assert incident.reference == answer["reference"]


def test_the_first_audit_event_is_sealed_and_verifies(api, catalogue):
    answer = api.post(CREATE, bodies(catalogue)["every writable field"], format="json").json()

    event = AuditEvent.objects.get(incident_id=answer["id"])
    assert (event.sequence, event.verb, event.to_state, event.actor_username) == (
        1,
        "created",
        "detected",
        "max.manager",
    )
    assert event.data["fields"]["title"] == bodies(catalogue)["every writable field"]["title"]
    assert verify_chain(incident_ids=[answer["id"]]) == []  # the hash covers what was stored


def test_a_refused_create_stores_nothing(api, catalogue):
    before = (Incident.objects.count(), AuditEvent.objects.count())

    refused = api.post(CREATE, {"title": "", "detection_source": "staff_escalation"}, format="json")

    assert refused.status_code == 400
    assert (Incident.objects.count(), AuditEvent.objects.count()) == before


def test_the_incident_has_no_unique_column_that_validation_would_have_to_check():
    # incidents.services._validate skips full_clean's unique checks: the id and the reference
    # (assigned by the service) are the only unique columns. A new one must be checked again.
    unique = {field.name for field in Incident._meta.concrete_fields if field.unique}
    assert unique == {"id", "reference"}
    assert not Incident._meta.unique_together


def test_a_create_naming_read_only_fields_is_told_they_are_read_only(api):
    # The create's body serializer builds writable fields only (input_only); read-only names
    # are still recognised as such, not called unknown.
    body = {
        "title": "x",
        "detection_source": "staff_escalation",
        "reference": "BD-1999-00001",
        "declared_at": "2026-03-01T10:00:00Z",
        "affected_customers": ["ACME-001"],
        "id": 12,
        "colour": "red",
    }

    response = api.post(CREATE, body, format="json")

    assert response.status_code == 400
    errors = response_errors(response)
    assert {
        name: errors[name] for name in ("reference", "declared_at", "affected_customers", "id")
    } == dict.fromkeys(("reference", "declared_at", "affected_customers", "id"), ["This field is read-only."])
    assert errors["colour"] == ["Unknown field."]
    assert not Incident.objects.exists()
