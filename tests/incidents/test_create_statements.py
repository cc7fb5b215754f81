"""The incident create's writes: on PostgreSQL the new id comes with the active webhook
subscribers in one statement, and the incident is written with its first audit event in one
more (``incidents.services.incident_create``, ``incidents.statements.insert_together``); on
SQLite the INSERT, the reference UPDATE and the audit INSERT as before. Both give the same
rows, a chain that verifies and subscribers read anew on every create."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.api.authentication import api_token_create
from incidents.audit import verify_chain
from incidents.models import AuditEvent, Incident, WebhookDelivery, WebhookEvent, WebhookEventType
from incidents.statements import insert_together
from incidents.webhooks import (
    next_incident_id_with_subscribers,
    webhook_subscriber_create,
    webhook_subscriber_update,
)
from tests.queries import capture_queries

NEW = {"title": "Laptop stolen from a car", "detection_source": "staff_escalation"}


def _create(actor, **fields):
    return services.incident_create(actor=actor, fields={**NEW, **fields})


@pytest.mark.postgresql
def test_a_token_create_takes_the_id_with_the_subscribers_and_writes_incident_and_event_together(
    responder,
):
    _token, key = api_token_create(user=responder, name="t", lifetime=datetime.timedelta(days=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/incidents/", NEW, format="json").status_code == 201  # last_used_at

    with capture_queries() as log:
        response = client.post("/api/incidents/", NEW, format="json")

    assert response.status_code == 201
    token, savepoint, id_and_subscribers, incident_and_event, release = log.statements
    assert "incidents_apitoken" in token and "auth_permission" in token
    assert savepoint.startswith("SAVEPOINT") and release.startswith("RELEASE SAVEPOINT")
    assert "nextval" in id_and_subscribers and "incidents_webhooksubscriber" in id_and_subscribers
    assert 'INSERT INTO "incidents_incident"' in incident_and_event
    assert 'INSERT INTO "incidents_auditevent"' in incident_and_event
    assert "nextval" not in incident_and_event


@pytest.mark.postgresql
def test_an_id_above_99999_keeps_all_its_digits_in_the_reference(responder):
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('incidents_incident', 'id'), 123455)")

    incident = _create(responder)

    assert incident.pk == 123456
    year = timezone.now().astimezone(datetime.UTC).year
    assert incident.reference == f"BD-{year}-123456"
    assert Incident.objects.get(pk=123456).reference == f"BD-{year}-123456"


@pytest.mark.postgresql
def test_the_next_id_comes_once_whatever_the_number_of_subscribers(manager, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('incidents_incident', 'id'))")
        (last,) = cursor.fetchone()
    first, none = next_incident_id_with_subscribers(using="default")
    for name in ("b SIEM", "a SIEM", "c SIEM"):
        webhook_subscriber_create(
            actor=manager, name=name, url="http://127.0.0.1:9/hook", event_types=["incident.created"]
        )
    second, three = next_incident_id_with_subscribers(using="default")

    assert (first, second) == (last + 1, last + 2)
    assert none == []
    assert [subscriber.name for subscriber in three] == ["a SIEM", "b SIEM", "c SIEM"]


def test_the_first_audit_event_is_written_with_the_incident_and_the_chain_verifies(responder):
    incident = _create(responder, severity="high")
    services.incident_update(incident=incident, actor=responder, changes={"title": "Laptop recovered"})

    events = list(AuditEvent.objects.filter(incident=incident).order_by("sequence"))
    assert [(event.sequence, event.verb) for event in events][:1] == [(1, "created")]
    assert events[0].data["fields"]["severity"] == "high"
    assert events[0].actor_id == responder.pk
    assert len(events) >= 2 and events[1].previous_hash == events[0].hash
    assert verify_chain(incident_ids=[incident.pk]) == []


def test_a_new_and_a_deactivated_subscriber_count_on_the_next_create(responder, manager, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    assert _create(responder) and not WebhookEvent.objects.exists()

    subscriber, _secret = webhook_subscriber_create(
        actor=manager, name="SIEM", url="http://127.0.0.1:9/hook", event_types=["incident.created"]
    )
    announced = _create(responder)
    event = WebhookEvent.objects.get()
    assert (event.incident_id, event.type) == (announced.pk, WebhookEventType.INCIDENT_CREATED)
    assert event.payload["incident"]["reference"] == announced.reference
    assert list(WebhookDelivery.objects.values_list("subscriber_id", flat=True)) == [subscriber.pk]

    webhook_subscriber_update(actor=manager, subscriber=subscriber, changes={"is_active": False})
    _create(responder)
    assert WebhookEvent.objects.count() == 1


def test_a_subscriber_of_other_events_gets_no_created_event(responder, manager, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    webhook_subscriber_create(
        actor=manager, name="SIEM", url="http://127.0.0.1:9/hook", event_types=["incident.declared"]
    )
    _create(responder)
    assert not WebhookEvent.objects.exists()


def test_insert_together_writes_each_row_and_marks_it_saved(responder):
    incident = Incident(title="Together", detection_source="staff_escalation", created_by=responder)
    if connection.vendor == "postgresql":
        incident.pk, _subscribers = next_incident_id_with_subscribers(using="default")
    insert_together([(incident, None)])

    assert incident.pk is not None and not incident._state.adding
    assert Incident.objects.get(pk=incident.pk).title == "Together"


@pytest.mark.postgresql
def test_the_incident_and_event_statement_stays_within_psycopgs_cached_conversions(responder):
    """psycopg caches a statement's conversion (its ``%s`` placeholders to ``$n``) only up to
    50 values; past that it parses the SQL again in Python on every create. The NULL columns a
    new incident leaves out keep the incident-and-audit statement under that."""
    from psycopg._queries import MAX_CACHED_STATEMENT_PARAMS

    seen: list[tuple[str, int]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        _create(responder)

    (count,) = [count for sql, count in seen if 'INSERT INTO "incidents_auditevent"' in sql]
    assert count <= MAX_CACHED_STATEMENT_PARAMS


def test_null_columns_left_out_of_the_insert_read_back_as_null(responder):
    incident = _create(responder)
    stored = Incident.objects.get(pk=incident.pk)

    assert stored.owner_id is None and stored.severity is None and stored.exposure_started_at is None
    assert stored.reference == incident.reference and stored.created_by_id == responder.pk
