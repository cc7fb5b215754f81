"""Recording assessments (triage.services.assessment_record): versions, the scope decision and
its lifecycle exits, the ENISA band driving triage, the audited override, and permissions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents.audit import verify_chain
from incidents.exceptions import ActionForbidden, LifecycleConflict, TransitionNotAvailable
from incidents.models import Incident
from triage.models import Assessment, ResponseTask, StakeholderAlert


def _verbs(incident: Incident) -> list[str]:
    return list(incident.audit_events.order_by("sequence").values_list("verb", flat=True))


def test_it_triages_a_detected_incident_with_the_computed_band(make_incident, assess, responder):
    incident = make_incident()

    assessment = assess(incident, band="high", scenario="lost_or_stolen_device", malicious="unknown")

    incident.refresh_from_db()
    assert (incident.state, incident.severity, incident.malicious, incident.scenario) == (
        "triaged",
        "high",
        "unknown",
        "lost_or_stolen_device",
    )
    assert incident.owner == responder
    assert (assessment.version, assessment.severity_band, assessment.band) == (1, "high", "high")
    assert assessment.severity_score == Decimal("3.00")
    assert assessment.severity_result["dpc"] == 4
    assert assessment.severity_result["ease_of_identification"] == "0.75"
    assert any("SE = DPC × EI + CB" in reason for reason in assessment.severity_result["reasons"])
    assert assessment.severity_inputs["data_categories"] == ["health"]
    recommendation = assessment.notification_recommendation
    assert recommendation["notify_supervisory_authority"] is True
    assert all(reason["article"].startswith("Art.") for reason in recommendation["reasons"])
    assert assessment.assessed_by == responder
    assert assessment.assessed_at.utcoffset() == timedelta(0)


def test_it_writes_the_assessment_to_the_incident_audit_chain(make_incident, assess):
    incident = make_incident()

    assess(incident, band="medium")

    # The triage, the facts it carries into the incident (data categories), the assessment.
    assert _verbs(incident)[-3:] == ["triage", "updated", "assessment_recorded"]
    event = incident.audit_events.get(verb="assessment_recorded")
    assert event.data["version"] == 1
    assert event.data["scope"] == "in_scope"
    assert event.data["band"] == "medium"
    assert event.data["score"] == "2.00"
    assert event.data["override"] is None
    assert verify_chain(incident_ids=[incident.pk]) == []


def test_a_reassessment_adds_a_version_and_keeps_the_earlier_one(make_incident, assess, manager):
    incident = make_incident()
    first = assess(incident, band="low", scope_rationale="First look: a single address.")

    second = assess(incident, actor=manager, band="very_high", scope_rationale="Health data too.")

    assert list(incident.assessments.values_list("version", flat=True)) == [2, 1]
    first.refresh_from_db()
    assert (first.severity_band, first.scope_rationale) == ("low", "First look: a single address.")
    assert (second.version, second.severity_band, second.assessed_by) == (2, "very_high", manager)
    incident.refresh_from_db()
    assert (incident.state, incident.severity) == ("triaged", "very_high")
    update = incident.audit_events.filter(verb="updated").last()
    assert update.data["changes"]["severity"] == ["low", "very_high"]


def test_it_updates_a_declared_incident_without_moving_its_state(make_incident, assess, manager):
    incident = make_incident(state="declared")

    assess(incident, actor=manager, band="very_high", malicious="yes", scenario="malicious_insider")

    incident.refresh_from_db()
    assert (incident.state, incident.severity, incident.malicious, incident.scenario) == (
        "declared",
        "very_high",
        "yes",
        "malicious_insider",
    )


@pytest.mark.parametrize("from_state", ["detected", "triaged"])
def test_it_rules_an_incident_out_of_scope_with_its_category(make_incident, assess, from_state):
    incident = make_incident(state=from_state)

    assessment = assess(
        incident,
        scope="out_of_scope",
        scope_rationale="A question about our retention policy, no breach.",
        out_of_scope_category="policy_question",
        malicious="",
        scenario="",
        severity_inputs=None,
        notification_facts=None,
        data_categories=[],
    )

    incident.refresh_from_db()
    assert incident.state == "out_of_scope"
    assert incident.out_of_scope_category == "policy_question"
    assert incident.scope_rationale == "A question about our retention policy, no breach."
    assert (assessment.scope, assessment.out_of_scope_category) == ("out_of_scope", "policy_question")
    assert assessment.severity_band == "" and assessment.severity_score is None
    assert not StakeholderAlert.objects.filter(incident=incident).exists()
    assert not ResponseTask.objects.filter(incident=incident).exists()
    assert _verbs(incident)[-2:] == ["rule_out_of_scope", "assessment_recorded"]


@pytest.mark.parametrize("from_state", ["detected", "triaged"])
def test_it_classifies_a_customer_driven_event_with_its_category(make_incident, assess, from_state):
    incident = make_incident(state=from_state)
    informed_at = timezone.now() - timedelta(hours=2)

    assessment = assess(
        incident,
        scope="customer_event",
        scope_rationale="The customer attached its users' passwords to a support ticket.",
        customer_event_category="customer_sent_sensitive_data",
        customer_informed_at=informed_at,
        help_offered="Offered to delete the attachment and to advise on resetting the passwords.",
        severity_inputs=None,
        notification_facts=None,
    )

    incident.refresh_from_db()
    assert incident.state == "customer_event"
    assert incident.customer_informed_at == informed_at
    assert incident.scope_rationale.startswith("The customer attached")
    assert assessment.customer_event_category == "customer_sent_sensitive_data"
    assert assessment.help_offered.startswith("Offered to delete")
    assert assessment.customer_informed_at == informed_at


def test_an_exit_after_declaration_is_refused_and_stores_nothing(make_incident, assess, manager):
    incident = make_incident(state="declared")

    with pytest.raises(TransitionNotAvailable):
        assess(
            incident,
            actor=manager,
            scope="out_of_scope",
            out_of_scope_category="no_customer_data",
            severity_inputs=None,
            notification_facts=None,
        )

    assert not Assessment.objects.filter(incident=incident).exists()
    assert "assessment_recorded" not in _verbs(incident)


@pytest.mark.parametrize("state", ["out_of_scope", "closed"])
def test_a_final_incident_cannot_be_assessed_in_scope(make_incident, assess, manager, state):
    incident = make_incident(state=state)

    with pytest.raises(LifecycleConflict):
        assess(incident, actor=manager)

    assert not Assessment.objects.filter(incident=incident).exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scope": "maybe"}, "scope"),
        ({"scope_rationale": "   "}, "scope_rationale"),
        ({"malicious": ""}, "malicious"),
        ({"scenario": ""}, "scenario"),
        ({"severity_inputs": None}, "severity_inputs"),
        ({"notification_facts": None}, "notification_facts"),
        ({"data_categories": []}, "data_categories"),
        ({"data_categories": ["dna"]}, "data_categories"),
        ({"severity_inputs": {"ease_of_identification": "total"}}, "severity_inputs"),
        ({"severity_inputs": {"ease_of_identification": "maximum", "colour": "red"}}, "severity_inputs"),
        ({"data_categories": ["credentials"]}, "severity_inputs"),
        ({"notification_facts": {"breach_types": []}}, "notification_facts"),
        ({"out_of_scope_category": "policy_question"}, "out_of_scope_category"),
        ({"help_offered": "A call."}, "help_offered"),
        ({"scope": "out_of_scope"}, "out_of_scope_category"),
        ({"scope": "customer_event", "customer_event_category": "other"}, "customer_informed_at"),
        ({"scope": "customer_event", "customer_informed_at": timezone.now()}, "customer_event_category"),
        ({"override_band": "high"}, "override_justification"),
        ({"override_band": "extreme", "override_justification": "x"}, "override_band"),
        ({"override_justification": "Because."}, "override_justification"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(make_incident, assess, overrides, field):
    incident = make_incident()

    with pytest.raises(ValidationError) as refusal:
        assess(incident, **overrides)

    assert field in refusal.value.message_dict
    incident.refresh_from_db()
    assert incident.state == "detected"
    assert not Assessment.objects.filter(incident=incident).exists()


def test_it_refuses_a_customer_informed_time_without_zone(make_incident, assess):
    from datetime import datetime

    with pytest.raises(ValidationError) as refusal:
        assess(
            make_incident(),
            scope="customer_event",
            customer_event_category="other",
            customer_informed_at=datetime(2026, 5, 1, 9, 30),  # noqa: DTZ001 - the point of the test
        )

    assert refusal.value.message_dict["customer_informed_at"] == ["timezone offset required"]


def test_an_override_replaces_the_band_and_is_audited_with_its_justification(make_incident, assess):
    incident = make_incident()

    assessment = assess(
        incident,
        band="low",
        override_band="high",
        override_justification="The recipient is a competitor known to misuse such lists.",
    )

    incident.refresh_from_db()
    assert (assessment.severity_band, assessment.override_band, assessment.band) == ("low", "high", "high")
    assert incident.severity == "high"
    event = incident.audit_events.get(verb="assessment_recorded")
    assert event.data["band"] == "high"
    assert event.data["override"] == {
        "computed_band": "low",
        "band": "high",
        "justification": "The recipient is a competitor known to misuse such lists.",
    }


def test_malicious_intent_adds_to_the_circumstances(make_incident, assess):
    not_malicious = assess(make_incident(), malicious="no")
    malicious = assess(make_incident(), malicious="yes")

    assert malicious.severity_score - not_malicious.severity_score == Decimal("0.50")
    assert malicious.severity_inputs["malicious_intent"] is True
    assert malicious.notification_facts["malicious"] is True


def test_credentials_score_as_the_data_they_give_access_to(make_incident, assess):
    assessment = assess(
        make_incident(),
        data_categories=["credentials"],
        severity_inputs={"ease_of_identification": "maximum", "credentials_give_access_to": "financial"},
    )

    assert assessment.severity_result["base_dpc"] == 3
    assert assessment.severity_band == "high"


@pytest.mark.parametrize("role", ["responder", "incident_manager"])
def test_responders_and_incident_managers_may_assess(make_incident, assess, personas, role):
    incident = make_incident()

    assessment = assess(incident, actor=personas[role])

    assert assessment.assessed_by == personas[role]
    incident.refresh_from_db()
    assert incident.state == "triaged"


@pytest.mark.parametrize("role", ["auditor", "outsider"])
def test_auditors_and_outsiders_may_not_assess(make_incident, assess, personas, role):
    incident = make_incident()

    with pytest.raises(ActionForbidden):
        assess(incident, actor=personas[role])

    incident.refresh_from_db()
    assert incident.state == "detected"
    assert not Assessment.objects.filter(incident=incident).exists()
