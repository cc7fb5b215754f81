"""One error format under /api/: RFC 9457 problem details for every 4xx and 5xx, including
404 for any path shape, 401 with WWW-Authenticate, 503 with Retry-After when the database is
unreachable (within 2 s), and unknown query parameters, page sizes and cursors refused."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from incidents.api.authentication import api_token_create
from incidents.models import Incident

PROBLEM = "application/problem+json"


@pytest.fixture
def api(responder):
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(responder)
    return client


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == "about:blank" and body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["code"]
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/api/incidents/1.2/",
        "/api/incidents/abc/",
        "/api/incidents/99999999999999999999999/",
        "/api/nowhere/",
        "/api/incidents/1/transitions/",
        "/api/incidents/%00/",
    ],
)
def test_any_path_shape_answers_a_404_problem(api, path):
    assert_problem(api.get(path), 404)


def test_validation_errors_are_problems_with_errors_per_field(api):
    body = assert_problem(api.post("/api/incidents/", {"title": ""}, format="json"), 400)

    assert body["code"] == "invalid"
    assert "title" in body["errors"]
    assert body["detail"].startswith(("title:", "detection_source:"))


def test_a_guard_failure_names_what_is_missing(api, make_incident):
    incident = make_incident()

    body = assert_problem(
        api.post(f"/api/incidents/{incident.pk}/transitions/triage/", {}, format="json"), 400
    )

    # Triage takes an assessment (one triage path): that is what is missing.
    assert body["code"] == "guard_failed" and body["missing"] == ["assessment"]


def test_a_transition_from_the_wrong_state_is_a_409_problem_with_the_state(manager, make_incident):
    incident = make_incident()
    api = APIClient()
    api.force_login(manager)

    body = assert_problem(
        api.post(f"/api/incidents/{incident.pk}/transitions/close/", {}, format="json"), 409
    )

    assert body["state"] == "detected" and body["code"] == "transition_not_available"


def test_method_not_allowed_and_unsupported_media_type_are_problems(api):
    assert_problem(api.put("/api/incidents/", {}, format="json"), 405)
    assert_problem(api.post("/api/incidents/", "<x/>", content_type="application/xml"), 415)
    assert_problem(api.post("/api/incidents/", "{", content_type="application/json"), 400)


def test_missing_credentials_answer_401_with_www_authenticate():
    response = APIClient().get("/api/incidents/")

    body = assert_problem(response, 401)
    assert response["WWW-Authenticate"] == 'Token realm="api"'
    assert body["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Token nope", "Token", "Token a b", "Bearer bd_wrong"])
def test_a_bad_token_answers_401_not_403(db, header):
    response = APIClient().get("/api/incidents/", HTTP_AUTHORIZATION=header)

    assert_problem(response, 401)
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_a_forbidden_write_is_a_403_problem(auditor):
    client = APIClient()
    client.force_login(auditor)

    body = assert_problem(
        client.post("/api/incidents/", {"title": "x", "detection_source": "staff_escalation"}, format="json"),
        403,
    )
    assert body["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("?colour=red", "colour"),
        ("?page_size=0", "page_size"),
        ("?page_size=201", "page_size"),
        ("?page_size=abc", "page_size"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?search=%00", None),
        ("?state=bogus", "state"),
    ],
)
def test_lists_refuse_unknown_or_invalid_query_parameters(api, query, parameter):
    body = assert_problem(api.get(f"/api/incidents/{query}"), 400)

    assert parameter is None or parameter in body["errors"]


def test_lists_accept_their_filters_and_pagination(api, make_incident):
    make_incident()

    response = api.get("/api/incidents/?state=detected&severity=low&search=x&page_size=5&is_drill=false")

    assert response.status_code == 200


def test_other_routes_refuse_unknown_query_parameters(api, make_incident):
    incident = make_incident()

    body = assert_problem(
        api.patch(f"/api/incidents/{incident.pk}/?force=1", {"title": "x"}, format="json"), 400
    )

    assert "force" in body["errors"]
    assert Incident.objects.get(pk=incident.pk).title != "x"


def test_every_list_view_refuses_unknown_query_parameters(api, make_incident, manager, settings):
    """The rule holds for every paginated list route of the schema, including routes added
    later (they get it from the paginator). A list under a webhook subscriber is asked by an
    incident manager (a responder may not see subscribers: 404)."""
    from drf_spectacular.generators import SchemaGenerator

    from incidents.webhooks import webhook_subscriber_create

    incident = make_incident(state="declared")
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    subscriber, _secret = webhook_subscriber_create(
        actor=manager, name="SIEM", url="http://127.0.0.1:9/hook", event_types=["incident.declared"]
    )
    as_manager = APIClient()
    as_manager.force_login(manager)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    checked = 0
    for path, item in schema["paths"].items():
        get = item.get("get")
        if not get or not any(p["name"] == "cursor" for p in get.get("parameters", [])):
            continue
        client = api
        if path.startswith("/api/webhooks/subscribers/{id}/"):
            path, client = path.replace("{id}", str(subscriber.pk)), as_manager
        url = path.replace("{incident_pk}", str(incident.pk)).replace("{incident_id}", str(incident.pk))
        url = url.replace("{id}", str(incident.pk))
        response = client.get(url + "?surely_unknown=1")
        assert response.status_code in (400, 403), (url, response.status_code)
        if response.status_code == 400:
            assert "surely_unknown" in response.json()["errors"]
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_the_api_reads_json_only(api, content_type):
    response = api.post(
        "/api/incidents/", b"title=%FF%FE&detection_source=staff_escalation", content_type=content_type
    )

    assert_problem(response, 415)
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": 5, "detection_source": "staff_escalation"}, "title"),
        ({"title": "x", "detection_source": "staff_escalation", "records_affected": "5"}, "records_affected"),
        ({"title": "x", "detection_source": "staff_escalation", "is_drill": "true"}, "is_drill"),
    ],
)
def test_json_values_of_the_wrong_type_are_refused_not_coerced(api, body, field):
    body = assert_problem(api.post("/api/incidents/", body, format="json"), 400)

    assert field in body["errors"]


def test_an_unreachable_database_answers_503_problem(db, responder, monkeypatch):
    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", unreachable)
    monkeypatch.setattr(connection, "cursor", unreachable)
    client = APIClient()
    client.raise_request_exception = False

    response = client.get("/api/incidents/", HTTP_AUTHORIZATION=f"Token {key}")

    monkeypatch.undo()
    body = assert_problem(response, 503)
    assert response["Retry-After"] == "5"
    assert body["code"] == "service_unavailable"


def _request_with_database_at(port: int, key: str):
    """An API request with the database connection pointed at 127.0.0.1:``port``; returns
    (answer, seconds taken). The test database's settings are restored afterwards."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = "127.0.0.1"
    connection.settings_dict["PORT"] = port
    client = APIClient()
    client.raise_request_exception = False
    try:
        started = time.monotonic()
        response = client.get("/api/incidents/", HTTP_AUTHORIZATION=f"Token {key}")
        return response, time.monotonic() - started
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_database_that_is_down_gives_503_within_two_seconds(responder):
    """PostgreSQL stopped or restarting: nothing listens on its port."""
    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now

    response, elapsed = _request_with_database_at(port, key)

    assert_problem(response, 503)
    assert response["Retry-After"] == "5"
    assert elapsed < 2.0, elapsed


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_database_that_does_not_answer_gives_503_after_the_connect_timeout(responder):
    """A server that accepts the TCP connection and never speaks (hung, or a black hole behind
    a proxy): the connect timeout bounds the wait. psycopg, like libpq, waits at least 2
    seconds whatever DATABASE_CONNECT_TIMEOUT says, so the answer comes just after 2 s."""
    _token, key = api_token_create(user=responder, name="t", lifetime=timedelta(days=1))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    accepted = []
    stop = threading.Event()

    def accept_and_stay_silent():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        response, elapsed = _request_with_database_at(silent.getsockname()[1], key)
    finally:
        stop.set()
        thread.join()
        for peer in accepted:
            peer.close()
        silent.close()

    assert_problem(response, 503)
    assert response["Retry-After"] == "5"
    assert elapsed < 3.0, elapsed


def test_options_on_every_route_answers_without_a_server_error(manager, make_incident):
    """OPTIONS describes a route by building its views' objects (DRF's metadata); schemathesis
    found a route where that was a 500."""
    from drf_spectacular.generators import SchemaGenerator

    incident = make_incident(state="declared")
    client = APIClient()
    client.raise_request_exception = False
    client.force_login(manager)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in schema["paths"]:
        url = path
        for name in ("{incident_pk}", "{incident_id}", "{id}", "{number}"):
            url = url.replace(name, str(incident.pk) if name != "{number}" else "1")
        url = url.replace("{transition_name}", "triage")
        response = client.options(url)
        assert response.status_code < 500, (url, response.content[:200])
