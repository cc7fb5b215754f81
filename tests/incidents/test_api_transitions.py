"""Lifecycle transitions through ``POST /api/incidents/{id}/transitions/{name}/``: the whole
transition table of DESIGN.md section 2, the guards (400 naming what is missing), and the
permissions of DESIGN.md section 6 for every role. A refused transition changes nothing."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.models import AuditEvent, Customer, Incident
from notifications.models import Clock
from tests.conftest import complete_post_mortem

STATES = [
    "detected",
    "triaged",
    "declared",
    "notified",
    "post_mortem",
    "closed",
    "out_of_scope",
    "customer_event",
]
TRANSITIONS = [
    "triage",
    "rule_out_of_scope",
    "classify_as_customer_event",
    "declare",
    "mark_notified",
    "begin_post_mortem",
    "close",
]

#: DESIGN.md section 2, written out rather than read from the code under test:
#: (from state, transition) -> to state. Every other pair is not available (409).
TABLE = {
    ("detected", "triage"): "triaged",
    ("detected", "rule_out_of_scope"): "out_of_scope",
    ("triaged", "rule_out_of_scope"): "out_of_scope",
    ("detected", "classify_as_customer_event"): "customer_event",
    ("triaged", "classify_as_customer_event"): "customer_event",
    ("triaged", "declare"): "declared",
    ("declared", "mark_notified"): "notified",
    ("notified", "begin_post_mortem"): "post_mortem",
    ("post_mortem", "close"): "closed",
}

#: A complete, valid body for each transition.
BODIES: dict[str, dict[str, Any]] = {
    # Triage takes the triage form's assessment (one triage path, web and API).
    "triage": {
        "scope_rationale": "Payroll data reached a wrong recipient.",
        "malicious": "unknown",
        "scenario": "misdirected_communication",
        "data_categories": ["identity"],
        "severity_inputs": {"ease_of_identification": "maximum"},
        "notification_facts": {"breach_types": ["confidentiality"]},
    },
    "rule_out_of_scope": {
        "out_of_scope_category": "data_subject_request",
        "scope_rationale": "An access request, handled by the privacy team.",
    },
    "classify_as_customer_event": {
        "scope_rationale": "The customer's admin shared the export publicly.",
        "customer_informed_at": "2026-03-01T10:00:00+01:00",
    },
    "declare": {"nature_of_breach": "Payroll file sent to a wrong recipient."},
    "mark_notified": {},
    "begin_post_mortem": {},
    "close": {},
}

#: DESIGN.md section 6: the transitions each group may take (mark_notified: the system only).
ALLOWED_BY_ROLE = {
    "responder": {"triage", "rule_out_of_scope", "classify_as_customer_event"},
    "incident_manager": {
        "triage",
        "rule_out_of_scope",
        "classify_as_customer_event",
        "declare",
        "begin_post_mortem",
        "close",
    },
    "auditor": set(),
    "outsider": set(),
}

#: A state each transition is available from.
FROM_STATE = {
    "triage": "detected",
    "rule_out_of_scope": "triaged",
    "classify_as_customer_event": "detected",
    "declare": "triaged",
    "mark_notified": "declared",
    "begin_post_mortem": "notified",
    "close": "post_mortem",
}


def url(incident, name: str) -> str:
    return f"/api/incidents/{incident.pk}/transitions/{name}/"


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def snapshot(incident) -> tuple:
    """What a refused transition must leave alone: state, updated_at, audit count and last hash."""
    row = Incident.objects.get(pk=incident.pk)
    events = AuditEvent.objects.filter(incident_id=incident.pk).order_by("-sequence")
    last = events.first()
    return row.state, row.updated_at, events.count(), last.hash if last else None


@pytest.fixture
def ready_incident(make_incident, responder, manager):
    """``ready_incident(state)``: an incident in ``state`` where every guard can be met by the
    transition's body alone (an affected customer recorded and its initial notice settled)."""

    def build(state: str) -> Incident:
        incident = make_incident(state)
        if state in ("detected", "triaged"):
            extra, _ = Customer.objects.get_or_create(
                account_reference="READY-001", defaults={"name": "Ready Customer Ltd"}
            )
            services.affected_customer_add(incident=incident, customer=extra, actor=responder)
        # What the notification system does when initial notices are delivered.
        Clock.objects.filter(incident=incident).update(met_at=timezone.now())
        if state == "post_mortem":
            complete_post_mortem(incident, manager)
        return Incident.objects.get(pk=incident.pk)

    return build


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_it_follows_the_transition_table(api, superuser, ready_incident, state, name):
    incident = ready_incident(state)
    before = snapshot(incident)
    api.force_login(superuser)

    response = api.post(url(incident, name), BODIES[name], format="json")

    target = TABLE.get((state, name))
    if target is not None:
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == target
        assert Incident.objects.get(pk=incident.pk).state == target
        new = AuditEvent.objects.filter(incident=incident, sequence__gt=before[2]).order_by("sequence")
        event = new.first()
        assert event is not None
        assert (event.verb, event.from_state, event.to_state) == (name, state, target)
        # Triage also records its assessment (and the facts it carries); the rest write one event.
        expected = {"triage", "assessment_recorded", "updated"} if name == "triage" else {name}
        assert {e.verb for e in new} == expected
    else:
        assert response.status_code == 409, response.json()
        assert response.json()["state"] == state
        assert name in response.json()["detail"]
        assert snapshot(incident) == before


def test_it_records_the_transition_body_in_utc(api, responder, make_incident):
    incident = make_incident("detected")
    api.force_login(responder)

    response = api.post(url(incident, "classify_as_customer_event"), BODIES["classify_as_customer_event"])

    assert response.status_code == 200
    assert response.json()["customer_informed_at"] == "2026-03-01T09:00:00Z"
    assert response.json()["scope_rationale"] == BODIES["classify_as_customer_event"]["scope_rationale"]


def test_it_refuses_triage_without_an_assessment_with_the_web_forms_message(api, responder, make_incident):
    from triage.services import TRIAGE_NEEDS_ASSESSMENT

    incident = make_incident("detected", severity="low", malicious="no")
    before = snapshot(incident)
    api.force_login(responder)

    for body in ({}, {"severity": "high", "malicious": "no", "scenario": "misdirected_communication"}):
        response = api.post(url(incident, "triage"), body, format="json")

        assert response.status_code == 400, response.json()
        problem = response.json()
        assert (problem["detail"], problem["missing"], problem["code"]) == (
            TRIAGE_NEEDS_ASSESSMENT,
            ["assessment"],
            "guard_failed",
        )
    assert snapshot(incident) == before
    web = Client()
    web.force_login(responder)
    page = web.post(f"/incidents/{incident.pk}/transitions/triage/")
    assert page.status_code == 400
    assert html.escape(TRIAGE_NEEDS_ASSESSMENT) in page.content.decode()
    assert snapshot(incident) == before


def test_it_triages_through_the_api_with_the_forms_assessment(api, responder, make_incident):
    incident = make_incident("detected")
    api.force_login(responder)

    response = api.post(url(incident, "triage"), BODIES["triage"], format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "triaged" and response.json()["owner"] == "rita.responder"
    assessment = incident.assessments.get()
    assert (assessment.version, assessment.scope, assessment.band) == (
        1,
        "in_scope",
        response.json()["severity"],
    )
    assert response.json()["data_categories"] == ["identity"]  # carried from the assessment


# Guards -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "name", "body", "missing"),
    [
        ("detected", "triage", {"malicious": "no"}, ["assessment"]),
        ("detected", "triage", {}, ["assessment"]),
        (
            "detected",
            "rule_out_of_scope",
            {"out_of_scope_category": "policy_question"},
            ["scope_rationale"],
        ),
        (
            "triaged",
            "rule_out_of_scope",
            {"scope_rationale": "Not ours."},
            ["out_of_scope_category"],
        ),
        (
            "detected",
            "classify_as_customer_event",
            {"scope_rationale": "  "},
            ["scope_rationale", "customer_informed_at"],
        ),
        ("triaged", "declare", {}, ["nature_of_breach", "affected_customers"]),
        ("declared", "mark_notified", {}, ["affected_customers"]),
        ("post_mortem", "close", {}, ["post_mortem.completed"]),
    ],
)
def test_it_names_the_missing_facts_when_a_guard_fails(
    api, superuser, make_incident, state, name, body, missing
):
    incident = make_incident(state)  # no settled notices, no extra affected customers
    before = snapshot(incident)
    api.force_login(superuser)

    response = api.post(url(incident, name), body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["missing"] == missing
    assert response.json()["detail"]
    assert snapshot(incident) == before


def test_it_names_affected_customers_when_declaring_without_any(api, manager, make_incident):
    incident = make_incident("triaged")
    api.force_login(manager)

    response = api.post(url(incident, "declare"), BODIES["declare"], format="json")

    assert response.status_code == 400
    assert response.json()["missing"] == ["affected_customers"]
    incident.refresh_from_db()
    assert incident.nature_of_breach == ""  # the body's value was not kept either


def test_it_names_open_action_items_when_closing(api, manager, make_incident):
    from postmortems import services as postmortem_services

    incident = make_incident("post_mortem")
    complete_post_mortem(incident, manager)
    postmortem_services.action_item_create(
        incident=incident, actor=manager, description="Add recipient check"
    )
    before = snapshot(incident)
    api.force_login(manager)

    response = api.post(url(incident, "close"), BODIES["close"], format="json")

    assert response.status_code == 400
    assert response.json()["missing"] == ["post_mortem.action_items"]
    assert snapshot(incident) == before


def test_it_answers_404_for_an_unknown_transition_or_incident(api, superuser, make_incident):
    incident = make_incident()
    before = snapshot(incident)
    api.force_login(superuser)

    unknown_name = api.post(url(incident, "explode"), {}, format="json")
    unknown_incident = api.post("/api/incidents/999999/transitions/triage/", BODIES["triage"], format="json")

    assert unknown_name.status_code == 404
    assert "triage" in unknown_name.json()["detail"]  # lists the known names
    assert unknown_incident.status_code == 404
    assert snapshot(incident) == before


def test_it_accepts_only_post_on_a_transition(api, superuser, make_incident):
    incident = make_incident()
    api.force_login(superuser)

    assert api.get(url(incident, "triage")).status_code == 405
    assert api.put(url(incident, "triage"), BODIES["triage"], format="json").status_code == 405


# Permissions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(ALLOWED_BY_ROLE))
@pytest.mark.parametrize("name", TRANSITIONS)
def test_it_lets_each_role_take_only_its_transitions(api, personas, ready_incident, role, name):
    incident = ready_incident(FROM_STATE[name])
    before = snapshot(incident)
    api.force_login(personas[role])

    response = api.post(url(incident, name), BODIES[name], format="json")

    if name in ALLOWED_BY_ROLE[role]:
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == TABLE[(FROM_STATE[name], name)]
    else:
        # An outsider may not even see the incident; the others may not take this transition.
        assert response.status_code == (404 if role == "outsider" else 403), response.json()
        assert snapshot(incident) == before


def test_it_names_the_permission_a_refused_role_lacks(api, responder, ready_incident):
    incident = ready_incident("triaged")
    api.force_login(responder)

    response = api.post(url(incident, "declare"), BODIES["declare"], format="json")

    assert response.status_code == 403
    assert "incidents.declare_incident" in response.json()["detail"]


def test_it_answers_403_with_the_service_message_for_action_forbidden():
    from incidents.api.problems import exception_handler
    from incidents.exceptions import ActionForbidden

    response = exception_handler(ActionForbidden("Your role may not do this (needs x)."), {})
    assert response is not None

    assert response.status_code == 403
    assert response.content_type == "application/problem+json"
    assert response.data["detail"] == "Your role may not do this (needs x)."
    assert response.data["code"] == "permission_denied"


def test_it_refuses_an_auditor_even_with_an_invalid_body(api, auditor, make_incident):
    incident = make_incident()
    api.force_login(auditor)

    response = api.post(url(incident, "triage"), {"severity": "apocalyptic"}, format="json")

    assert response.status_code == 403
