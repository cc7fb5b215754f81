"""Simultaneous writes on PostgreSQL: two first alerts with one dedupe key open one incident;
two creates with one Idempotency-Key create one incident and give both clients its answer."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.test import APIClient

from incidents.intake import alert_source_create
from incidents.models import Alert, Incident
from tests.conftest import signed_alert_headers
from tests.incidents.test_concurrency import _in_parallel


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_two_simultaneous_first_alerts_open_one_incident(attempt):
    _source, secret = alert_source_create(name=f"EDR {attempt}")
    stamp = int(time.time())

    def send(title: str):
        body = json.dumps(
            {"dedupe_key": "same", "title": title, "detected_at": "2026-05-01T00:00:00Z"}
        ).encode()
        client = APIClient()
        return client.post(
            "/api/intake/alerts/",
            body,
            content_type="application/json",
            **signed_alert_headers(secret, body, timestamp=stamp),
        )

    first, second = _in_parallel(lambda: send("one"), lambda: send("two"))

    assert sorted([first.status_code, second.status_code]) == [200, 201], (first.content, second.content)
    assert first.json()["incident"] == second.json()["incident"]
    assert Incident.objects.count() == 1 and Alert.objects.count() == 2


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_creates_with_one_key_create_once(responder):
    def create():
        client = APIClient()
        client.force_login(responder)
        return client.post(
            "/api/incidents/",
            {"title": "Laptop stolen", "detection_source": "staff_escalation"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="same-key",
        )

    first, second = _in_parallel(create, create)

    assert {first.status_code, second.status_code} == {201}, (first.content, second.content)
    assert first.json()["id"] == second.json()["id"]
    assert Incident.objects.count() == 1
