"""The triage pages: the form at /incidents/<pk>/triage/, the no-JavaScript severity preview,
errors re-shown with 400 (409 for the state), the incident page's triage panel, ticking tasks,
and who may do what."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from triage.models import Assessment, ResponseTask


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(**overrides) -> dict:
    data = {
        "scope": "in_scope",
        "scope_rationale": "A payroll export with sick-leave notes went to another customer.",
        "malicious": "no",
        "malicious_basis": "Autocomplete picked the wrong address.",
        "findings": "One email, one attachment, 40 employees.",
        "scenario": "misdirected_communication",
        "data_categories": ["identity", "health"],
        "ease_of_identification": "significant",
        "confidentiality_loss": "known_recipients",
        "integrity_loss": "none",
        "availability_loss": "none",
        "dpc_data_volume": "0",
        "breach_types": ["confidentiality"],
        "individuals": "40",
        "special_categories": "true",
        "recipients_known_and_trusted": "false",
        "exfiltration": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _url(incident) -> str:
    return reverse("triage:assessment_new", args=[incident.pk])


def test_the_form_shows_every_part_of_the_assessment(make_incident, responder):
    incident = make_incident(data_categories=["identity", "financial"], records_affected=250)

    response = _client(responder).get(_url(incident))

    page = response.content.decode()
    assert response.status_code == 200
    for text in ("Scope decision", "ENISA severity", "Notification assessment", "Ease of identification"):
        assert text in page
    assert response.context["form"].initial["data_categories"] == ["identity", "financial"]
    assert response.context["form"].initial["individuals"] == 250
    assert reverse("triage_api:severity") in page  # the live form's endpoint
    assert "<script>" in page and "src=" not in page.split("<script>")[1].split("</script>")[0]


def test_recording_an_in_scope_assessment_triages_and_shows_the_result(
    make_incident, responder, stakeholder_addresses
):
    incident = make_incident()
    client = _client(responder)

    response = client.post(_url(incident), _form())

    assert response.status_code == 302
    assert response["Location"] == reverse("incidents:incident_detail", args=[incident.pk]) + "#triage"
    incident.refresh_from_db()
    assert (incident.state, incident.severity) == ("triaged", "high")
    assessment = incident.assessments.get()
    # health (4) x significant (0.75) + known recipients (0.25)
    assert assessment.severity_score == Decimal("3.25")
    page = client.get(response["Location"]).content.decode()
    assert 'id="triage"' in page
    assert "High" in page and "3.25" in page
    assert "SE = DPC × EI + CB" in page
    assert "Art. 33(1) GDPR" in page and "Art. 34(1) GDPR" in page
    assert "privacy@breachdesk.test" in page
    assert "confirm the deletion in writing" in page
    assert page.count(">Done</button>") == ResponseTask.objects.filter(incident=incident).count()


def test_the_incident_page_offers_the_triage_form_to_handlers_only(make_incident, personas):
    incident = make_incident()
    link = _url(incident)

    for role, offered in (("responder", True), ("incident_manager", True), ("auditor", False)):
        page = _client(personas[role]).get(reverse("incidents:incident_detail", args=[incident.pk]))
        assert page.status_code == 200
        assert (link in page.content.decode()) is offered, role


@pytest.mark.parametrize(("role", "status"), [("auditor", 403), ("outsider", 404)])
def test_the_form_is_closed_to_auditors_and_outsiders(make_incident, personas, role, status):
    incident = make_incident()
    client = _client(personas[role])

    assert client.get(_url(incident)).status_code == status
    assert client.post(_url(incident), _form()).status_code == status
    assert not Assessment.objects.filter(incident=incident).exists()


def test_anonymous_visitors_are_sent_to_log_in(make_incident):
    response = Client().get(_url(make_incident()))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_unknown_incident_is_404(responder):
    assert _client(responder).get(reverse("triage:assessment_new", args=[999_999])).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"scope": None}, "scope", "This field is required."),
        ({"scope_rationale": ""}, "scope_rationale", "This field is required."),
        ({"scope": "out_of_scope"}, "out_of_scope_category", "Choose why it is out of scope."),
        ({"malicious": ""}, "malicious", "Say whether it was malicious"),
        ({"ease_of_identification": ""}, "ease_of_identification", "required"),
        ({"override_band": "very_high"}, "override_justification", "needs a justification"),
        ({"individuals": "-3"}, "individuals", "greater than or equal to 0"),
        ({"data_categories": ["dna"]}, "data_categories", "not one of the available choices"),
    ],
)
def test_bad_input_is_shown_on_the_form_with_400_and_stores_nothing(
    make_incident, responder, overrides, field, message
):
    incident = make_incident()

    response = _client(responder).post(_url(incident), _form(**overrides))

    assert response.status_code == 400
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors, response.context["form"].errors
    assert not Assessment.objects.filter(incident=incident).exists()
    incident.refresh_from_db()
    assert incident.state == "detected"


def test_a_form_with_errors_still_shows_the_severity_computed_so_far(make_incident, responder):
    response = _client(responder).post(_url(make_incident()), _form(scope_rationale=""))

    assert response.status_code == 400
    assert response.context["preview"]["score"] == "3.25"
    assert 'id="severity-score">3.25<' in response.content.decode()


def test_the_preview_button_shows_the_severity_without_recording(make_incident, responder):
    incident = make_incident()

    response = _client(responder).post(
        _url(incident), _form(preview="1", ease_of_identification="maximum", scope=None)
    )

    assert response.status_code == 200
    assert response.context["preview"]["band"] == "very_high"
    page = response.content.decode()
    assert "Very high" in page
    assert "This field is required." not in page  # a preview is not a submission
    assert response.context["form"].initial["scope_rationale"].startswith("A payroll export")
    assert not Assessment.objects.filter(incident=incident).exists()


def test_an_out_of_scope_decision_from_the_form(make_incident, responder):
    incident = make_incident(state="triaged")

    response = _client(responder).post(
        _url(incident),
        _form(
            scope="out_of_scope",
            out_of_scope_category="data_subject_request",
            scope_rationale="An access request under Art. 15, not a breach.",
            customer_event_category="other",  # typed for another scope: not handed on
        ),
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.state, incident.out_of_scope_category) == ("out_of_scope", "data_subject_request")
    assert incident.assessments.get().customer_event_category == ""


def test_a_customer_driven_event_from_the_form_reads_the_display_zone(make_incident, responder, settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Berlin"
    incident = make_incident()

    response = _client(responder).post(
        _url(incident),
        _form(
            scope="customer_event",
            customer_event_category="customer_side_incident",
            customer_informed_at="2026-03-29T10:00:00",
            help_offered="Offered our log export on request.",
            scope_rationale="The customer's own admin account was phished.",
        ),
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.state == "customer_event"
    assert incident.customer_informed_at.isoformat() == "2026-03-29T08:00:00+00:00"  # CEST = UTC+2


def test_the_state_refusing_the_decision_answers_409(make_incident, manager):
    incident = make_incident(state="declared")

    response = _client(manager).post(
        _url(incident), _form(scope="out_of_scope", out_of_scope_category="no_customer_data")
    )

    assert response.status_code == 409
    assert "not available from state" in response.content.decode()
    assert not Assessment.objects.filter(incident=incident).exists()


def test_a_reassessment_starts_from_the_latest_version(make_incident, responder):
    incident = make_incident()
    client = _client(responder)
    client.post(_url(incident), _form())

    response = client.get(_url(incident))

    initial = response.context["form"].initial
    assert initial["scope_rationale"].startswith("A payroll export")
    assert initial["ease_of_identification"] == "significant"
    assert initial["special_categories"] is True
    assert "version 2" in response.content.decode()


def test_output_is_escaped(make_incident, responder):
    incident = make_incident()
    client = _client(responder)
    client.post(_url(incident), _form(scope_rationale="<script>alert('x')</script>"))

    page = client.get(reverse("incidents:incident_detail", args=[incident.pk])).content.decode()

    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def _first_task(incident, client):
    client.post(_url(incident), _form())
    return ResponseTask.objects.filter(incident=incident).order_by("order").first()


def test_a_responder_ticks_a_task_done_from_the_incident_page(make_incident, responder):
    incident = make_incident()
    client = _client(responder)
    task = _first_task(incident, client)

    response = client.post(reverse("triage:task_update", args=[incident.pk, task.pk]), {"done": "1"})

    assert response.status_code == 302
    task.refresh_from_db()
    assert task.done_by == responder
    page = client.get(reverse("incidents:incident_detail", args=[incident.pk])).content.decode()
    assert f'<tr class="task-done" id="task-{task.pk}">' in page


@pytest.mark.parametrize(("role", "status"), [("auditor", 403), ("outsider", 404)])
def test_auditors_and_outsiders_cannot_tick_tasks(make_incident, responder, personas, role, status):
    incident = make_incident()
    task = _first_task(incident, _client(responder))

    response = _client(personas[role]).post(
        reverse("triage:task_update", args=[incident.pk, task.pk]), {"done": "1"}
    )

    assert response.status_code == status
    task.refresh_from_db()
    assert task.done_at is None


def test_ticking_needs_a_done_value_and_a_task_of_that_incident(make_incident, responder):
    incident = make_incident()
    client = _client(responder)
    task = _first_task(incident, client)
    other = make_incident(title="Another incident")

    assert (
        client.post(reverse("triage:task_update", args=[incident.pk, task.pk]), {"done": "maybe"}).status_code
        == 400
    )
    assert (
        client.post(reverse("triage:task_update", args=[other.pk, task.pk]), {"done": "1"}).status_code == 404
    )
    assert client.get(reverse("triage:task_update", args=[incident.pk, task.pk])).status_code == 405
    task.refresh_from_db()
    assert task.done_at is None


def test_the_panel_shows_earlier_versions_and_nothing_to_outsiders(make_incident, responder, auditor):
    incident = make_incident()
    client = _client(responder)
    client.post(_url(incident), _form(ease_of_identification="limited"))
    client.post(_url(incident), _form())

    page = _client(auditor).get(reverse("incidents:incident_detail", args=[incident.pk])).content.decode()

    assert "Earlier assessments (1)" in page
    assert "assessment v2" in page
    assert ">Done</button>" not in page  # auditors read, they do not tick


def test_ticking_a_task_of_a_ruled_out_incident_answers_409(make_incident, responder):
    from incidents import services as incident_services

    incident = make_incident()
    client = _client(responder)
    task = _first_task(incident, client)
    incident_services.incident_rule_out_of_scope(
        incident=incident,
        actor=responder,
        out_of_scope_category="no_customer_data",
        scope_rationale="Test data only.",
    )

    response = client.post(reverse("triage:task_update", args=[incident.pk, task.pk]), {"done": "1"})

    assert response.status_code == 409
    assert "cannot change" in response.content.decode()
    task.refresh_from_db()
    assert task.done_at is None
