"""The training lapse warning in the incident's audit trail, written by the lifecycle hooks of
``owner_assigned`` and ``notice_approved`` when the person's mandatory training has lapsed or
was never done, through the real services; none when it is valid or for the scanner's notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents import services
from incidents.audit import verify_chain
from incidents.models import AuditEvent
from notifications import services as notification_services
from postmortems.models import TrainingRecord

VERB = "training_lapse_warning"


def warnings(incident) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(incident=incident, verb=VERB).order_by("sequence"))


@pytest.fixture
def dp101(make_course):
    return make_course("DP-101", validity_days=365)


@pytest.fixture
def lapsed_manager(dp101, record_completions, manager):
    """The incident manager completed DP-101 400 days ago: it lapsed 35 days ago."""
    record_completions([(manager.email, "DP-101", timezone.now() - timedelta(days=400), "81")])
    return manager


@pytest.fixture
def trained_manager(dp101, record_completions, manager):
    record_completions([(manager.email, "DP-101", timezone.now() - timedelta(days=20), "99")])
    return manager


@pytest.fixture
def trained_responder(dp101, record_completions, responder):
    record_completions([(responder.email, "DP-101", timezone.now() - timedelta(days=20), "99")])
    return responder


def test_making_a_lapsed_person_owner_writes_a_warning_in_the_audit_trail(
    make_incident, trained_responder, lapsed_manager
):
    incident = make_incident()

    services.incident_update(incident=incident, actor=trained_responder, changes={"owner": lapsed_manager})

    [warning] = warnings(incident)
    expired = TrainingRecord.objects.get(email=lapsed_manager.email).expires_at
    assert warning.actor_username == trained_responder.username
    assert warning.data == {
        "person": "max.manager",
        "email": "max.manager@breachdesk.test",
        "as": "incident owner",
        "lapsed_courses": [
            {"code": "DP-101", "status": "lapsed", "since": expired.isoformat().replace("+00:00", "Z")}
        ],
    }
    updated = AuditEvent.objects.get(incident=incident, verb="updated")
    assert warning.sequence == updated.sequence + 1  # in the same transaction, right after
    assert verify_chain(incident_ids=[incident.pk]) == []


def test_a_never_completed_course_warns_too_when_the_owner_is_set_at_creation(dp101, responder, manager):
    incident = services.incident_create(
        actor=responder,
        fields={"title": "Lost laptop", "detection_source": "staff_escalation", "owner": manager},
    )

    [warning] = warnings(incident)
    assert warning.data["lapsed_courses"][0]["status"] == "never_completed"
    assert warning.data["as"] == "incident owner"


def test_a_lapsed_responder_who_takes_ownership_by_triaging_is_warned_about(dp101, make_incident, responder):
    incident = make_incident()
    assert warnings(incident) == []  # no owner yet

    services.incident_triage(incident=incident, actor=responder, severity="low", malicious="no")

    [warning] = warnings(incident)
    assert warning.data["person"] == responder.username


def test_no_warning_when_the_owner_is_trained_or_nothing_is_mandatory(
    make_incident, make_course, trained_responder, trained_manager
):
    incident = make_incident()
    services.incident_update(incident=incident, actor=trained_responder, changes={"owner": trained_manager})
    make_course("SEC-110", is_mandatory=False)  # never done, but optional
    services.incident_update(incident=incident, actor=trained_responder, changes={"owner": trained_responder})

    assert warnings(incident) == []
    assert AuditEvent.objects.filter(incident=incident, verb="updated").count() == 2


@pytest.mark.usefixtures("smtp_server")
def test_approving_a_notice_with_lapsed_training_writes_a_warning(
    make_incident, trained_responder, lapsed_manager
):
    incident = make_incident(state="declared")
    notice = notification_services.notice_draft(incident=incident, actor=trained_responder, kind="initial")

    notification_services.notice_approve(notice=notice, actor=lapsed_manager)

    [warning] = warnings(incident)
    assert warning.actor_username == lapsed_manager.username
    assert warning.data["as"] == "notice approver"
    assert warning.data["notice"] == notice.number
    assert [course["code"] for course in warning.data["lapsed_courses"]] == ["DP-101"]
    approved = AuditEvent.objects.get(incident=incident, verb="notice_approved")
    assert warning.sequence > approved.sequence
    assert verify_chain(incident_ids=[incident.pk]) == []


@pytest.mark.usefixtures("smtp_server")
def test_approving_with_valid_training_writes_no_warning(make_incident, trained_responder, trained_manager):
    incident = make_incident(state="declared")
    notice = notification_services.notice_draft(incident=incident, actor=trained_responder, kind="initial")

    notification_services.notice_approve(notice=notice, actor=trained_manager)

    assert warnings(incident) == []
    assert AuditEvent.objects.filter(incident=incident, verb="notice_approved").exists()


@pytest.mark.usefixtures("smtp_server")
def test_the_scanners_automatic_notice_writes_no_warning(make_incident, trained_responder, lapsed_manager):
    incident = make_incident(state="declared")

    notice = notification_services.notice_issue_initial_automatically(incident_id=incident.pk)

    assert notice is not None and notice.approved_by is None
    assert warnings(incident) == []


def test_the_incident_page_shows_the_warning_in_words(make_incident, trained_responder, lapsed_manager):
    incident = make_incident()
    services.incident_update(incident=incident, actor=trained_responder, changes={"owner": lapsed_manager})
    client = Client()
    client.force_login(lapsed_manager)

    body = client.get(f"/incidents/{incident.pk}/").content.decode()

    assert "<td>Training lapse warning</td>" in body
    assert "DP-101" in body
