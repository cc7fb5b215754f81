"""Signed machine intake, ``POST /api/intake/alerts/``: valid, wrong secret, stale, replayed,
duplicate (attaches), rotated secret, a closed incident's key opening a new one, and the
management commands' output contract."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.intake import alert_source_create, alert_source_rotate
from incidents.models import Alert, AlertSource, AuditEvent, Incident
from tests.conftest import signed_alert_headers

URL = "/api/intake/alerts/"


def alert(dedupe_key: str = "edr-host-42-beacon", **extra) -> bytes:
    body = {
        "dedupe_key": dedupe_key,
        "title": "Beaconing to a known command-and-control host",
        "detected_at": "2026-05-01T09:30:00+02:00",
        "summary": "EDR saw host-42 contact 203.0.113.7 every 60 s.",
        "details": {"host": "host-42", "rule": "C2-BEACON"},
        **extra,
    }
    return json.dumps(body).encode()


def post(body: bytes, headers: dict[str, str]) -> Any:
    client = APIClient()
    client.raise_request_exception = False
    return client.post(URL, body, content_type="application/json", **headers)  # type: ignore[arg-type]  # headers as WSGI keys


@pytest.fixture
def source(db):
    return alert_source_create(name="EDR")


def test_it_opens_a_detected_incident_for_a_valid_signed_alert(source):
    _source, secret = source
    body = alert()

    response = post(body, signed_alert_headers(secret, body))

    assert response.status_code == 201, response.content
    answer = response.json()
    incident = Incident.objects.get(pk=answer["incident"])
    assert answer == {
        "incident": incident.pk,
        "reference": incident.reference,
        "alert": Alert.objects.get().pk,
        "deduplicated": False,
        "alert_count": 1,
    }
    assert incident.state == "detected"
    assert incident.detection_source == "automated_alert"
    assert (
        incident.detected_at is not None and incident.detected_at.isoformat() == "2026-05-01T07:30:00+00:00"
    )
    assert incident.source_record is not None
    assert incident.source_record["details"] == {"host": "host-42", "rule": "C2-BEACON"}
    created = AuditEvent.objects.get(incident=incident)
    assert created.verb == "created" and created.actor_username == ""
    assert created.data["alert_source"] == "EDR"


def test_it_attaches_a_duplicate_alert_to_the_open_incident(source):
    _source, secret = source
    first = post(alert(), signed_alert_headers(secret, alert()))
    again = alert(title="Beaconing again")

    second = post(again, signed_alert_headers(secret, again, timestamp=int(time.time()) + 1))

    assert first.status_code == 201 and second.status_code == 200, second.content
    assert second.json()["incident"] == first.json()["incident"]
    assert second.json()["deduplicated"] is True and second.json()["alert_count"] == 2
    assert Incident.objects.count() == 1 and Alert.objects.count() == 2


def test_it_opens_a_new_incident_once_the_previous_one_is_ruled_out(source, responder):
    _source, secret = source
    first = post(alert(), signed_alert_headers(secret, alert()))
    services.incident_rule_out_of_scope(
        incident=Incident.objects.get(pk=first.json()["incident"]),
        actor=responder,
        out_of_scope_category="no_customer_data",
        scope_rationale="Test host without customer data.",
    )
    again = alert(summary="Fired again")

    second = post(again, signed_alert_headers(secret, again, timestamp=int(time.time()) + 1))

    assert second.status_code == 201
    assert second.json()["incident"] != first.json()["incident"]
    assert Incident.objects.count() == 2


def test_it_refuses_a_wrong_secret_and_stores_nothing(source):
    body = alert()

    response = post(body, signed_alert_headers("whsec_not-the-secret", body))

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "bad_signature"
    assert response["WWW-Authenticate"].startswith("Signature")
    assert not Incident.objects.exists() and not Alert.objects.exists()


def test_it_refuses_a_body_changed_after_signing(source):
    _source, secret = source
    headers = signed_alert_headers(secret, alert())

    response = post(alert(title="Tampered"), headers)

    assert response.status_code == 401 and response.json()["code"] == "bad_signature"


@pytest.mark.parametrize(
    "headers", [{}, {"HTTP_X_BREACHDESK_TIMESTAMP": "1"}, {"HTTP_X_BREACHDESK_SIGNATURE": "x"}]
)
def test_it_refuses_missing_headers(source, headers):
    response = post(alert(), headers)

    assert response.status_code == 401 and response.json()["code"] == "bad_signature"


# Past five minutes either way; 30 s of margin so that a loaded machine (a slow request) cannot
# bring a future timestamp back inside the window.
@pytest.mark.parametrize("offset", [-330, 330, -3600])
def test_it_refuses_a_stale_timestamp(source, offset):
    _source, secret = source
    body = alert()

    response = post(body, signed_alert_headers(secret, body, timestamp=int(time.time()) + offset))

    assert response.status_code == 401 and response.json()["code"] == "stale_timestamp"
    assert not Incident.objects.exists()


def test_it_accepts_a_timestamp_just_inside_five_minutes(source):
    _source, secret = source
    body = alert()

    response = post(body, signed_alert_headers(secret, body, timestamp=int(time.time()) - 290))

    assert response.status_code == 201


def test_it_refuses_a_replayed_request(source):
    _source, secret = source
    body = alert()
    headers = signed_alert_headers(secret, body)
    first = post(body, headers)

    replay = post(body, headers)

    assert first.status_code == 201
    assert replay.status_code == 401 and replay.json()["code"] == "replayed"
    assert Alert.objects.count() == 1 and Incident.objects.count() == 1


def test_a_rotated_secret_keeps_the_old_one_valid_for_the_grace_period(source):
    alert_source, old = source
    new = alert_source_rotate(source=alert_source, grace=timedelta(hours=1))
    stamp = int(time.time())

    with_new = post(alert("a"), signed_alert_headers(new, alert("a"), timestamp=stamp))
    with_old = post(alert("b"), signed_alert_headers(old, alert("b"), timestamp=stamp))
    AlertSource.objects.filter(pk=alert_source.pk).update(previous_secret_expires_at=timezone.now())
    after_grace = post(alert("c"), signed_alert_headers(old, alert("c"), timestamp=stamp))

    assert with_new.status_code == 201 and with_old.status_code == 201
    assert after_grace.status_code == 401 and after_grace.json()["code"] == "bad_signature"


def test_it_refuses_an_inactive_source(source):
    alert_source, secret = source
    AlertSource.objects.filter(pk=alert_source.pk).update(is_active=False)

    response = post(alert(), signed_alert_headers(secret, alert()))

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"detected_at": "2026-05-01T09:30:00"}, "detected_at"),
        ({"detected_at": "2999-01-01T00:00:00Z"}, "detected_at"),
        ({"title": ""}, "title"),
        ({"colour": "red"}, "colour"),
        ({"details": [1, 2]}, "details"),
    ],
)
def test_it_refuses_an_invalid_body_with_a_problem_naming_the_field(source, change, field):
    _source, secret = source
    body = alert(**change)

    response = post(body, signed_alert_headers(secret, body))

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Incident.objects.exists()


def test_the_secret_is_stored_encrypted_and_never_in_clear(source):
    alert_source, secret = source
    stored = AlertSource.objects.filter(pk=alert_source.pk).values().get()

    assert all(secret not in str(value) for value in stored.values())


def test_create_alert_source_prints_the_secret_alone_on_its_last_line(db):
    out = io.StringIO()

    call_command("create_alert_source", "IDS", stdout=out)

    secret = out.getvalue().rstrip("\n").splitlines()[-1]
    assert secret.startswith("whsec_") and " " not in secret
    body = alert()
    assert post(body, signed_alert_headers(secret, body)).status_code == 201


def test_rotate_alert_source_prints_the_new_secret_last(source):
    out = io.StringIO()

    call_command("rotate_alert_source", "EDR", "--grace-hours", "0", stdout=out)

    new = out.getvalue().rstrip("\n").splitlines()[-1]
    body = alert()
    assert post(body, signed_alert_headers(new, body)).status_code == 201
    old_body = alert("other")
    assert post(old_body, signed_alert_headers(source[1], old_body)).status_code == 401


def test_create_alert_source_refuses_a_taken_name(source):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="exists already"):
        call_command("create_alert_source", "EDR", stdout=io.StringIO())
