"""The triage API: assessments under /api/incidents/{id}/assessments/, response tasks under
/api/incidents/{id}/tasks/ and /api/tasks/{id}/, and the ENISA calculator /api/severity/.
Strict input (400 naming the key), roles (403/404), the lifecycle (409), and the schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import errors
from triage.models import Assessment, ResponseTask

BODY: dict[str, Any] = {
    "scope": "in_scope",
    "scope_rationale": "A support engineer's laptop with customer exports was stolen.",
    "malicious": "yes",
    "malicious_basis": "Stolen from a car.",
    "scenario": "lost_or_stolen_device",
    "data_categories": ["identity", "financial"],
    "severity_inputs": {
        "ease_of_identification": "maximum",
        "confidentiality_loss": "unknown_recipients",
        "dpc_adjustments": [{"factor": "data_volume", "steps": 1}],
    },
    "notification_facts": {
        "breach_types": ["confidentiality"],
        "individuals": 1800,
        "data_unintelligible_to_recipient": False,
        "exfiltration": "suspected",
        "likely_consequences": ["identity_theft_or_fraud"],
    },
}


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _assessments(incident) -> str:
    return f"/api/incidents/{incident.pk}/assessments/"


def _tasks(incident) -> str:
    return f"/api/incidents/{incident.pk}/tasks/"


def test_it_records_an_assessment_and_answers_with_the_result(make_incident, responder):
    incident = make_incident()

    response = _client(responder).post(_assessments(incident), BODY, format="json")

    assert response.status_code == 201, response.data
    data = response.json()
    assert (data["version"], data["scope"], data["band"]) == (1, "in_scope", "very_high")
    # financial (3) + data volume (1) = DPC 4; x EI 1; + CB 0.5 unknown recipients + 0.5 malicious
    assert data["severity_result"]["score"] == "5.00"
    assert data["severity_result"]["dpc"] == 4
    assert data["severity_score"] == "5.00"
    assert data["severity_inputs"]["malicious_intent"] is True
    recommendation = data["notification_recommendation"]
    assert recommendation["risk"] == "high"
    assert recommendation["communicate_to_data_subjects"] is True
    assert {"Art. 33(5) GDPR", "Art. 34(1) GDPR"} <= {
        reason["article"] for reason in recommendation["reasons"]
    }
    assert data["assessed_by"] == responder.username
    assert data["assessed_at"].endswith("Z")
    incident.refresh_from_db()
    assert (incident.state, incident.severity) == ("triaged", "very_high")


def test_it_lists_the_versions_newest_first(make_incident, responder, manager):
    incident = make_incident()
    _client(responder).post(_assessments(incident), BODY, format="json")
    _client(manager).post(
        _assessments(incident),
        {**BODY, "override_band": "high", "override_justification": "Laptop found."},
        format="json",
    )

    response = _client(responder).get(_assessments(incident))

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(item["version"], item["band"]) for item in results] == [(2, "high"), (1, "very_high")]
    assert results[0]["override_justification"] == "Laptop found."


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({**BODY, "colour": "red"}, "colour"),
        ({**BODY, "severity_inputs": {**BODY["severity_inputs"], "weight": 3}}, "severity_inputs"),
        ({**BODY, "notification_facts": {**BODY["notification_facts"], "mood": "bad"}}, "notification_facts"),
        ({**BODY, "severity_inputs": {"ease_of_identification": "total"}}, "severity_inputs"),
        (
            {
                **BODY,
                "severity_inputs": {
                    "ease_of_identification": "maximum",
                    "dpc_adjustments": [{"factor": "data_volume", "steps": 9}],
                },
            },
            "severity_inputs",
        ),
        ({**BODY, "scope": "perhaps"}, "scope"),
        ({**BODY, "scope_rationale": ""}, "scope_rationale"),
        ({**BODY, "data_categories": ["dna"]}, "data_categories"),
        ({**BODY, "data_categories": []}, "data_categories"),
        ({**BODY, "notification_facts": {"breach_types": []}}, "notification_facts"),
        (
            {**BODY, "notification_facts": {"breach_types": ["confidentiality"], "individuals": True}},
            "notification_facts",
        ),
        (
            {
                **BODY,
                "scope": "customer_event",
                "customer_event_category": "other",
                "customer_informed_at": "2026-05-01T09:30:00",
            },
            "customer_informed_at",
        ),
        ({**BODY, "scope": "out_of_scope"}, "out_of_scope_category"),
        ({**BODY, "override_band": "low"}, "override_justification"),
        ({key: value for key, value in BODY.items() if key != "scenario"}, "scenario"),
    ],
)
def test_bad_input_is_refused_naming_the_key(make_incident, responder, body, key):
    incident = make_incident()

    response = _client(responder).post(_assessments(incident), body, format="json")

    assert response.status_code == 400
    assert key in errors(response), errors(response)
    assert not Assessment.objects.filter(incident=incident).exists()


@pytest.mark.parametrize("body", [[], "in_scope", None, 42])
def test_a_body_that_is_not_an_object_is_refused(make_incident, responder, body):
    response = _client(responder).post(_assessments(make_incident()), body, format="json")

    assert response.status_code == 400


def test_a_decision_the_state_does_not_allow_is_a_conflict(make_incident, manager):
    incident = make_incident(state="declared")

    response = _client(manager).post(
        _assessments(incident),
        {"scope": "out_of_scope", "scope_rationale": "x", "out_of_scope_category": "no_customer_data"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["state"] == "declared"


@pytest.mark.parametrize(
    ("role", "get_status", "post_status"),
    [
        ("responder", 200, 201),
        ("incident_manager", 200, 201),
        ("auditor", 200, 403),
        ("outsider", 404, 404),
    ],
)
def test_roles(make_incident, personas, role, get_status, post_status):
    incident = make_incident()
    client = _client(personas[role])

    assert client.get(_assessments(incident)).status_code == get_status
    assert client.post(_assessments(incident), BODY, format="json").status_code == post_status
    assert client.get(_tasks(incident)).status_code == get_status


def test_an_unknown_incident_is_404(responder):
    assert _client(responder).get("/api/incidents/999999/assessments/").status_code == 404
    assert (
        _client(responder).post("/api/incidents/999999/assessments/", BODY, format="json").status_code == 404
    )


def test_anonymous_requests_are_refused(make_incident):
    incident = make_incident()

    assert APIClient().get(_assessments(incident)).status_code in (401, 403)
    assert APIClient().post("/api/severity/", {}, format="json").status_code in (401, 403)


def _with_tasks(make_incident, responder):
    incident = make_incident()
    _client(responder).post(_assessments(incident), BODY, format="json")
    return incident


def test_it_lists_an_incidents_tasks_soonest_due_first(make_incident, responder):
    incident = _with_tasks(make_incident, responder)

    response = _client(responder).get(_tasks(incident))

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == ResponseTask.objects.filter(incident=incident).count() > 0
    assert [item["due_at"] for item in results] == sorted(item["due_at"] for item in results)
    assert any("remote wipe" in item["description"] for item in results)
    assert {item["assignee"] for item in results} == {responder.username}
    assert all(item["done"] is False for item in results)


def test_a_task_is_ticked_done_and_reassigned(make_incident, responder, manager):
    incident = _with_tasks(make_incident, responder)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None
    client = _client(responder)

    done = client.patch(f"/api/tasks/{task.pk}/", {"done": True}, format="json")
    moved = client.patch(f"/api/tasks/{task.pk}/", {"assignee": manager.username}, format="json")

    assert done.status_code == 200 and done.json()["done"] is True
    assert done.json()["done_by"] == responder.username
    assert moved.status_code == 200 and moved.json()["assignee"] == manager.username
    assert client.get(f"/api/tasks/{task.pk}/").json()["done_at"].endswith("Z")


@pytest.mark.parametrize(
    "body", [{}, {"done": True, "colour": "red"}, {"assignee": "nobody-here"}, {"done": "perhaps"}, []]
)
def test_a_bad_task_patch_is_refused(make_incident, responder, body):
    incident = _with_tasks(make_incident, responder)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None

    response = _client(responder).patch(f"/api/tasks/{task.pk}/", body, format="json")

    assert response.status_code == 400
    task.refresh_from_db()
    assert task.done_at is None


@pytest.mark.parametrize(
    ("role", "get_status", "patch_status"), [("auditor", 200, 403), ("outsider", 404, 404)]
)
def test_task_roles(make_incident, responder, personas, role, get_status, patch_status):
    incident = _with_tasks(make_incident, responder)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None
    client = _client(personas[role])

    assert client.get(f"/api/tasks/{task.pk}/").status_code == get_status
    assert client.patch(f"/api/tasks/{task.pk}/", {"done": True}, format="json").status_code == patch_status
    assert client.put(f"/api/tasks/{task.pk}/", {"done": True}, format="json").status_code in (403, 404, 405)
    task.refresh_from_db()
    assert task.done_at is None


def test_the_severity_calculator_answers_score_band_and_reasons(responder):
    response = _client(responder).post(
        "/api/severity/",
        {
            "data_categories": ["health"],
            "malicious": "yes",
            "severity_inputs": {"ease_of_identification": "significant", "integrity_loss": "recoverable"},
        },
        format="json",
    )

    assert response.status_code == 200, response.data
    data = response.json()
    assert (data["score"], data["band"], data["dpc"]) == ("3.75", "high", 4)
    assert data["circumstances"] == "0.75"
    assert any("malicious intent" in reason for reason in data["reasons"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data_categories": [], "severity_inputs": {"ease_of_identification": "maximum"}},
        {"data_categories": ["credentials"], "severity_inputs": {"ease_of_identification": "maximum"}},
        {"data_categories": ["health"], "severity_inputs": {}},
        {"data_categories": ["health"], "severity_inputs": {"ease_of_identification": "maximum"}, "x": 1},
    ],
)
def test_the_severity_calculator_refuses_bad_input(responder, body):
    response = _client(responder).post("/api/severity/", body, format="json")

    assert response.status_code == 400


@pytest.mark.parametrize(("role", "status"), [("auditor", 200), ("outsider", 403)])
def test_the_severity_calculator_needs_to_read_assessments(personas, role, status):
    body = {"data_categories": ["identity"], "severity_inputs": {"ease_of_identification": "maximum"}}

    assert _client(personas[role]).post("/api/severity/", body, format="json").status_code == status


def test_the_schema_stays_valid_with_no_warnings(tmp_path, db):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    schema = (tmp_path / "schema.yml").read_text()
    assert "/api/incidents/{incident_id}/assessments/" in schema
    assert "/api/severity/" in schema


def test_a_triage_transition_with_a_scope_exit_is_refused_as_a_problem(manager, make_incident):
    incident = make_incident()
    api = _client(manager)

    answer = api.post(
        f"/api/incidents/{incident.pk}/transitions/triage/",
        {
            "scope": "out_of_scope",
            "scope_rationale": "x",
            "out_of_scope_category": "opt_out_request",
            "malicious": "no",
        },
        format="json",
    )

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert "record a scope exit" in str(answer.json())
