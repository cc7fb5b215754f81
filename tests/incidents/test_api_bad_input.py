"""Bad input to the REST API gets a clear 4xx and changes nothing; no input ever causes a 500.

Covers instants without a timezone offset, unknown and read-only keys, wrong types, invalid
JSON, oversized bodies (413), and refused transitions leaving row and audit trail alone.
"""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from incidents.models import AuditEvent, Customer, Incident
from tests.conftest import errors

LIST = "/api/incidents/"
NEW = {"title": "Misdirected email", "detection_source": "staff_escalation"}


@pytest.fixture
def api(superuser):
    """A superuser's client (every route allowed) that returns 500s instead of raising them."""
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(superuser)
    return client


def snapshot(incident) -> tuple:
    row = Incident.objects.get(pk=incident.pk)
    events = AuditEvent.objects.filter(incident_id=incident.pk).order_by("-sequence")
    last = events.first()
    return row.state, row.updated_at, row.title, events.count(), last.hash if last else None


# Instants need their offset ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2026-03-01T10:00:00", "2026-03-01 10:00", "2026-03-01"])
def test_it_refuses_an_instant_without_offset_on_create(api, value):
    response = api.post(LIST, {**NEW, "detected_at": value}, format="json")

    assert response.status_code == 400
    assert "timezone offset required" in errors(response)["detected_at"][0]
    assert not Incident.objects.exists()


def test_it_refuses_an_instant_without_offset_on_patch(api, make_incident):
    incident = make_incident()
    before = snapshot(incident)

    response = api.patch(
        f"/api/incidents/{incident.pk}/",
        {"exposure_started_at": "2026-03-01T10:00:00"},
        format="json",
    )

    assert response.status_code == 400
    assert "timezone offset required" in errors(response)["exposure_started_at"][0]
    assert snapshot(incident) == before


def test_it_refuses_an_instant_without_offset_in_a_transition_body(api, make_incident):
    incident = make_incident()
    before = snapshot(incident)

    response = api.post(
        f"/api/incidents/{incident.pk}/transitions/classify_as_customer_event/",
        {"scope_rationale": "Their side.", "customer_informed_at": "2026-03-01T10:00:00"},
        format="json",
    )

    assert response.status_code == 400
    assert "timezone offset required" in errors(response)["customer_informed_at"][0]
    assert snapshot(incident) == before


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2026-03-29T03:30:00+02:00", "2026-03-29T01:30:00Z"),  # the night CEST starts
        ("2026-10-25T02:30:00+01:00", "2026-10-25T01:30:00Z"),  # the repeated hour, second time
        ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"),
    ],
)
def test_it_stores_instants_with_an_offset_in_utc(api, value, stored):
    response = api.post(LIST, {**NEW, "detected_at": value}, format="json")

    assert response.status_code == 201
    assert response.json()["detected_at"] == stored


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-02-30T10:00Z"]
)
def test_it_refuses_an_instant_that_does_not_exist_in_utc(api, value):
    response = api.post(LIST, {**NEW, "detected_at": value}, format="json")

    assert response.status_code == 400
    assert "detected_at" in errors(response)
    assert not Incident.objects.exists()


# Unknown and read-only keys ------------------------------------------------------------------


def test_it_names_unknown_fields(api, make_incident):
    incident = make_incident()
    before = snapshot(incident)

    created = api.post(LIST, {**NEW, "colour": "red", "severityy": "high"}, format="json")
    patched = api.patch(f"/api/incidents/{incident.pk}/", {"title": "x", "colour": "red"}, format="json")
    transition = api.post(
        f"/api/incidents/{incident.pk}/transitions/declare/",
        {"nature_of_breach": "x", "urgency": "now"},
        format="json",
    )
    customer = api.post(
        "/api/customers/", {"name": "B", "account_reference": "B-1", "vip": True}, format="json"
    )

    assert created.status_code == 400 and set(errors(created)) == {"colour", "severityy"}
    assert errors(created)["colour"] == ["Unknown field."]
    assert patched.status_code == 400 and set(errors(patched)) == {"colour"}
    assert transition.status_code == 400 and set(errors(transition)) == {"urgency"}
    assert customer.status_code == 400 and set(errors(customer)) == {"vip"}
    assert Incident.objects.count() == 1 and not Customer.objects.exists()
    assert snapshot(incident) == before


@pytest.mark.parametrize(
    "body",
    [
        {"reference": "BD-1999-00001"},
        {"declared_at": "2026-03-01T10:00:00Z"},
        {"source_record": {}},
        {"affected_customers": ["ACME-001"]},
        {"id": 12},
    ],
)
def test_it_refuses_read_only_fields(api, make_incident, body):
    incident = make_incident()
    before = snapshot(incident)

    response = api.patch(f"/api/incidents/{incident.pk}/", body, format="json")

    assert response.status_code == 400
    assert set(errors(response)) == set(body)
    assert snapshot(incident) == before


def test_it_says_state_changes_only_through_transitions_even_on_create(api):
    response = api.post(LIST, {**NEW, "state": "declared"}, format="json")

    assert response.status_code == 400
    assert "only through transitions" in errors(response)["state"][0]
    assert not Incident.objects.exists()


# Wrong types and values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ["a", "list"]),
        ("title", ""),
        ("title", "x" * 301),
        ("title", "nul \x00 byte"),
        ("detection_source", "carrier pigeon"),
        ("is_drill", "perhaps"),
        ("records_affected", "many"),
        ("records_affected", -1),
        ("records_affected", 10**30),
        ("records_affected", 1.5),
        ("data_categories", "health"),
        ("data_categories", ["health", "horoscopes"]),
        ("products", ["No such product"]),
        ("products", "Support portal"),
        ("owner", "nobody.at.all"),
        ("sub_processor", 999999),
        ("sub_processor", "MailCo"),
        ("occurred_on", "2026-13-01"),
        ("occurred_on_precision", "century"),
        ("detected_at", 1767225600),
        ("detected_at", {"year": 2026}),
    ],
)
def test_it_refuses_wrong_types_and_values(api, field, value):
    response = api.post(LIST, {**NEW, field: value}, format="json")

    assert response.status_code == 400, response.content
    assert field in errors(response)
    assert not Incident.objects.exists()


def test_it_refuses_an_exposure_that_ends_before_it_starts(api, make_incident):
    incident = make_incident()
    path = f"/api/incidents/{incident.pk}/"
    before = snapshot(incident)

    both = api.patch(
        path,
        {
            "exposure_started_at": "2026-03-02T00:00:00Z",
            "exposure_ended_at": "2026-03-01T00:00:00Z",
        },
        format="json",
    )
    unchanged = snapshot(incident)
    end_alone = api.patch(path, {"exposure_ended_at": "2026-03-01T00:00:00Z"}, format="json")
    later_start = api.patch(path, {"exposure_started_at": "2026-03-02T00:00:00Z"}, format="json")

    assert both.status_code == 400
    assert "cannot end before it started" in errors(both)["exposure_ended_at"][0]
    assert unchanged == before
    assert end_alone.status_code == 200  # nothing to compare with yet
    assert later_start.status_code == 400  # compared with the stored end
    incident.refresh_from_db()
    assert incident.exposure_started_at is None


@pytest.mark.parametrize("body", ['["a", "list"]', '"a string"', "42", "null"])
def test_it_refuses_a_body_that_is_not_an_object(api, make_incident, body):
    incident = make_incident()
    before = snapshot(incident)

    created = api.post(LIST, body, content_type="application/json")
    transition = api.post(
        f"/api/incidents/{incident.pk}/transitions/triage/", body, content_type="application/json"
    )

    assert created.status_code == 400
    assert transition.status_code == 400
    assert Incident.objects.count() == 1
    assert snapshot(incident) == before


@pytest.mark.parametrize(
    "body", ['{"title": ', "{'title': 'single quotes'}", '{"records_affected": NaN}', "\xff\xfe"]
)
def test_it_answers_400_for_invalid_json(api, make_incident, body):
    incident = make_incident()
    before = snapshot(incident)

    created = api.post(LIST, body, content_type="application/json")
    patched = api.patch(f"/api/incidents/{incident.pk}/", body, content_type="application/json")

    assert created.status_code == 400
    assert "JSON" in created.json()["detail"]
    assert patched.status_code == 400
    assert snapshot(incident) == before


def test_it_answers_415_for_an_unsupported_media_type(api):
    response = api.post(LIST, "title=x", content_type="text/plain")

    assert response.status_code == 415
    assert not Incident.objects.exists()


# Oversized bodies --------------------------------------------------------------------------------


def test_it_answers_413_for_a_json_body_over_the_limit(api, settings, make_incident):
    incident = make_incident()
    before = snapshot(incident)
    oversized = json.dumps({**NEW, "summary": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    created = api.post(LIST, oversized, content_type="application/json")
    patched = api.patch(f"/api/incidents/{incident.pk}/", oversized, content_type="application/json")

    assert created.status_code == 413
    assert "too large" in created.json()["detail"]
    assert patched.status_code == 413
    assert Incident.objects.count() == 1
    assert snapshot(incident) == before


def test_it_answers_415_for_a_form_body_even_over_the_limit(api, settings):
    """The API reads JSON only; a form body is refused by its type before it is read."""
    response = api.post(
        LIST,
        f"title=x&detection_source=staff_escalation&summary={'x' * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 415
    assert not Incident.objects.exists()


def test_it_accepts_a_body_just_under_the_limit(api, settings):
    body = {**NEW, "summary": ""}
    room = settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(json.dumps(body))
    body["summary"] = "x" * room

    response = api.post(LIST, json.dumps(body), content_type="application/json")

    assert response.status_code == 201
    assert len(Incident.objects.get().summary) == room


# Refused transitions change nothing --------------------------------------------------------------


def test_it_changes_nothing_when_a_transition_is_not_allowed(api, make_incident):
    incident = make_incident("detected")
    before = snapshot(incident)

    response = api.post(
        f"/api/incidents/{incident.pk}/transitions/declare/",
        {"nature_of_breach": "Should not be kept."},
        format="json",
    )

    assert response.status_code == 409
    assert snapshot(incident) == before
    assert Incident.objects.get(pk=incident.pk).nature_of_breach == ""


def test_it_changes_nothing_when_a_transition_body_is_invalid(api, make_incident):
    incident = make_incident("detected")
    before = snapshot(incident)

    response = api.post(
        f"/api/incidents/{incident.pk}/transitions/triage/",
        {"scope_rationale": "Seen in the logs.", "malicious": "perhaps"},
        format="json",
    )

    assert response.status_code == 400
    assert "malicious" in errors(response)
    assert snapshot(incident) == before


# No input causes a 500 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/incidents/?cursor=not-a-cursor", None),
        ("get", "/api/incidents/?page_size=lots", None),
        ("get", "/api/incidents/?page_size=-5", None),
        ("get", "/api/incidents/?search=%00", None),
        ("get", "/api/incidents/?state=%00", None),
        ("get", "/api/incidents/?is_drill=sometimes", None),
        ("get", "/api/incidents/abc/", None),
        ("get", "/api/incidents/99999999999999999999999999/", None),
        ("patch", "/api/incidents/99999999999999999999999999/", {"title": "x"}),
        ("post", "/api/incidents/{id}/transitions/99999999999999999999999999/", {}),
        ("post", "/api/incidents/{id}/transitions/triage/", {"severity": None}),
        ("post", "/api/incidents/{id}/transitions/close/", {"findings": ["not", "text"]}),
        (
            "post",
            "/api/incidents/{id}/affected-customers/",
            {"customer": 99999999999999999999999999},
        ),
        (
            "post",
            "/api/incidents/{id}/affected-customers/",
            {"customer": "99999999999999999999999999"},
        ),
        ("post", "/api/incidents/{id}/affected-customers/", {"customer": True}),
        ("post", "/api/incidents/{id}/affected-customers/", {"customer": None}),
        ("post", "/api/incidents/{id}/affected-customers/", {"customer": "A\x00B"}),
        (
            "post",
            "/api/incidents/{id}/affected-customers/",
            {"customer": "ACME-001", "records_affected": 2**64},
        ),
        ("delete", "/api/incidents/{id}/affected-customers/?customer=%00", None),
        ("delete", "/api/incidents/{id}/affected-customers/", None),
        ("get", "/api/contacts/?customer=abc", None),
        ("get", "/api/contacts/?customer=99999999999999999999999999", None),
        ("get", "/api/customers/?search=%00", None),
        (
            "post",
            "/api/contacts/",
            {"customer": 99999999999999999999999999, "name": "x", "email": "a@b.c"},
        ),
        ("post", "/api/contacts/", {"customer": "ACME-001", "name": "x", "email": "not an email"}),
        ("patch", "/api/customers/{customer}/", {"notification_window_hours": 10**30}),
        ("patch", "/api/customers/{customer}/", {"country": "Germany"}),
    ],
)
def test_it_never_answers_500(api, make_incident, customer, method, path, body):
    incident = make_incident("triaged")
    before = snapshot(incident)
    path = path.format(id=incident.pk, customer=customer.pk)

    response = (
        getattr(api, method)(path, body, format="json") if body is not None else getattr(api, method)(path)
    )

    # Lenient reads (an unreadable page size falls back to the default) may answer 200.
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if method != "get":
        assert 400 <= response.status_code < 500
    assert snapshot(incident) == before
