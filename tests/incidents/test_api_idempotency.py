"""Idempotent creates: the same Idempotency-Key and body give the first answer again and create
nothing; the same key with another body is 422; external_reference is unique per detection
source; a failure after the commit still answers 201 with the created incident."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from rest_framework.test import APIClient

from incidents import services
from incidents.api.authentication import api_token_create
from incidents.models import AuditEvent, Contact, Customer, IdempotencyRecord, Incident
from tests.conftest import errors
from tests.queries import assert_query_count

NEW = {"title": "Laptop stolen from a car", "detection_source": "staff_escalation"}


@pytest.fixture
def api(responder):
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(responder)
    return client


def test_the_same_key_and_body_give_the_first_answer_and_one_incident(api):
    first = api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    again = api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Incident.objects.count() == 1
    assert AuditEvent.objects.filter(verb="created").count() == 1


def test_the_same_key_with_another_body_is_422_and_creates_nothing(api):
    api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    other = api.post("/api/incidents/", {**NEW, "title": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"
    assert Incident.objects.count() == 1


def test_the_body_is_compared_canonically(api):
    api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    reordered = {"detection_source": NEW["detection_source"], "title": NEW["title"]}

    again = api.post("/api/incidents/", reordered, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert again.status_code == 201 and Incident.objects.count() == 1


def test_keys_are_per_user(api, manager):
    api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = APIClient()
    other.force_login(manager)

    theirs = other.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert Incident.objects.count() == 2


def test_a_refused_create_is_not_remembered(api):
    refused = api.post("/api/incidents/", {"title": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    fixed = api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert refused.status_code == 400 and fixed.status_code == 201
    assert not IdempotencyRecord.objects.exclude(response_status=201).exists()


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "with space"])
def test_it_refuses_a_malformed_key(api, key):
    response = api.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400 and "Idempotency-Key" in errors(response)
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/customers/", {"name": "Initech", "account_reference": "INI-1"}),
        ("contacts", None),
        ("affected", None),
        ("notice", None),
    ],
)
def test_every_create_honours_the_key(manager, make_incident, path, body):
    client = APIClient()
    client.force_login(manager)
    customer = Customer.objects.create(name="Acme", account_reference="ACME-9")
    if path == "contacts":
        path, body = "/api/contacts/", {"customer": customer.pk, "name": "Ann", "email": "ann@acme.example"}
    elif path == "affected":
        incident = make_incident()
        path, body = f"/api/incidents/{incident.pk}/affected-customers/", {"customer": "ACME-9"}
    elif path == "notice":
        incident = make_incident(state="declared")
        path, body = f"/api/incidents/{incident.pk}/notices/", {"kind": "initial"}

    first = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="once")
    again = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="once")

    assert first.status_code == 201, first.content
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


def test_external_reference_is_writable_on_create_and_unique_per_source(api):
    first = api.post("/api/incidents/", {**NEW, "external_reference": "SNOW-42"}, format="json")
    same_source = api.post("/api/incidents/", {**NEW, "external_reference": "SNOW-42"}, format="json")
    other_source = api.post(
        "/api/incidents/",
        {**NEW, "detection_source": "customer_report", "external_reference": "SNOW-42"},
        format="json",
    )

    assert first.status_code == 201 and first.json()["external_reference"] == "SNOW-42"
    assert same_source.status_code == 409
    assert same_source.json()["code"] == "duplicate_external_reference"
    assert same_source.json()["incident"] == first.json()["id"]
    assert other_source.status_code == 201
    assert Incident.objects.count() == 2


def test_external_reference_cannot_be_changed_later(api):
    created = api.post("/api/incidents/", {**NEW, "external_reference": "SNOW-1"}, format="json").json()

    response = api.patch(f"/api/incidents/{created['id']}/", {"external_reference": "SNOW-2"}, format="json")

    assert response.status_code == 400 and "external_reference" in errors(response)


#: The statements of a create between the request's savepoint and its release: on PostgreSQL
#: the new id with the active webhook subscribers (one statement), then the incident with its
#: first audit event (one statement); on SQLite the INSERT, the reference UPDATE, the first
#: audit event (no lookup of a previous one) and the subscribers. None subscribe here, so no
#: event row.
CREATE_WRITES = {"postgresql": 2, "sqlite": 4}


def test_a_create_answers_without_rereading_the_incident(api):
    """Session, user with its account facts, permissions (one query); then, in the request's savepoint
    (a transaction outside tests; the service takes no savepoint of its own inside it), the
    create's writes (``CREATE_WRITES``); no re-read for the answer."""
    with assert_query_count(5 + CREATE_WRITES[connection.vendor], "a create"):
        response = api.post("/api/incidents/", NEW, format="json")

    assert response.status_code == 201


def test_a_create_with_a_token_reads_token_user_expiry_and_permissions_in_one_query(responder):
    """An API token's create: one query for the token, its user, the account's expiry facts and
    the user's permissions; then the request's savepoint (a transaction outside tests) and the
    create's writes (``CREATE_WRITES``); with an Idempotency-Key also the lookup of a stored
    answer and the record of this one. (The
    token's first use also writes its last_used_at, at most once a minute: done beforehand.)"""
    _token, key = api_token_create(
        user=responder, name="t", lifetime=__import__("datetime").timedelta(days=1)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/incidents/", NEW, format="json").status_code == 201

    writes = CREATE_WRITES[connection.vendor]
    with assert_query_count(3 + writes, "a create with a token") as log:
        response = client.post("/api/incidents/", NEW, format="json")
    with assert_query_count(5 + writes, "a create with a token and an Idempotency-Key"):
        keyed = client.post("/api/incidents/", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == keyed.status_code == 201
    assert "incidents_apitoken" in log.statements[0] and "auth_permission" in log.statements[0]
    assert Incident.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_commit_still_answers_201_with_the_created_id(responder, monkeypatch):
    """The database goes away right after the create commits (as during a PostgreSQL restart):
    the answer was built inside the transaction, so the client still learns the id."""
    _token, key = api_token_create(
        user=responder, name="t", lifetime=__import__("datetime").timedelta(days=1)
    )
    real_create = services.incident_create

    def create_then_lose_the_database(**kwargs):
        incident = real_create(**kwargs)

        def lose_database():
            def unreachable(*args, **kwargs):
                raise OperationalError("server closed the connection unexpectedly")

            monkeypatch.setattr(connection, "ensure_connection", unreachable)
            monkeypatch.setattr(connection, "cursor", unreachable)
            raise OperationalError("server closed the connection unexpectedly")

        transaction.on_commit(lose_database)
        return incident

    monkeypatch.setattr(services, "incident_create", create_then_lose_the_database)
    client = APIClient()
    client.raise_request_exception = False

    response = client.post("/api/incidents/", NEW, format="json", HTTP_AUTHORIZATION=f"Token {key}")

    monkeypatch.undo()
    assert response.status_code == 201, response.content
    assert Incident.objects.filter(pk=response.json()["id"]).exists()
    assert Incident.objects.count() == 1


def test_contacts_create_is_atomic_with_its_record(manager):
    client = APIClient()
    client.force_login(manager)
    customer = Customer.objects.create(name="Acme", account_reference="ACME-9")
    body = {"customer": customer.pk, "name": "Ann", "email": "ann@acme.example"}

    client.post("/api/contacts/", body, format="json", HTTP_IDEMPOTENCY_KEY="c")

    assert Contact.objects.count() == IdempotencyRecord.objects.count() == 1


def test_every_create_route_of_the_schema_takes_the_key(db):
    """Every POST that answers 201 documents (and, through ``@idempotent_create``, honours)
    Idempotency-Key; a new create route without it fails here. Tokens and webhook subscribers (a
    replay would have to store the key or the secret) and signed alerts (deduplicated by their
    own key) are the exceptions."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = [
        path
        for path, item in schema["paths"].items()
        if "post" in item
        and "201" in item["post"]["responses"]
        and path not in ("/api/tokens/", "/api/intake/alerts/", "/api/webhooks/subscribers/")
        and not any(p["name"] == "Idempotency-Key" for p in item["post"].get("parameters", []))
    ]

    assert missing == []
