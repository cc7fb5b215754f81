"""Stakeholder alerts: each group the severity and scenario call for is alerted once per
incident, ever; an escalation alerts only the newly called groups; recipients and time are
recorded; the emails are outbox rows (one per recipient) written with the assessment and sent
after commit, and never for a rolled-back assessment."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from notifications.sender import outbox_send_due
from triage.models import StakeholderAlert, StakeholderGroup
from triage.tasks import send_stakeholder_alert


def _alerted(incident) -> list[str]:
    return sorted(StakeholderAlert.objects.filter(incident=incident).values_list("group__name", flat=True))


def test_the_seeded_groups_have_rules_and_no_addresses_yet(db):
    groups = {group.name: group for group in StakeholderGroup.objects.all()}

    assert sorted(groups) == ["communications", "leadership", "legal", "privacy", "security"]
    assert all(group.recipients == [] for group in groups.values())
    assert "malicious_insider" in groups["legal"].scenarios
    assert groups["communications"].min_band == "very_high"


def test_it_alerts_each_called_group_once_even_when_triage_is_saved_twice(
    make_incident, assess, stakeholder_addresses, django_capture_on_commit_callbacks
):
    incident = make_incident()

    with django_capture_on_commit_callbacks(execute=True):
        assess(incident, band="high")
    with django_capture_on_commit_callbacks(execute=True) as second:
        assess(incident, band="high")

    assert _alerted(incident) == ["legal", "privacy", "security"]
    assert second == []
    assert sorted(message.to[0] for message in mail.outbox) == [
        "legal@breachdesk.test",
        "privacy@breachdesk.test",
        "security@breachdesk.test",
    ]


def test_an_escalated_band_alerts_the_newly_called_groups_only(
    make_incident, assess, stakeholder_addresses, django_capture_on_commit_callbacks
):
    incident = make_incident()
    with django_capture_on_commit_callbacks(execute=True):
        first = assess(incident, band="low")
    assert _alerted(incident) == ["privacy"]
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        second = assess(incident, band="very_high")

    assert _alerted(incident) == ["communications", "leadership", "legal", "privacy", "security"]
    assert StakeholderAlert.objects.get(incident=incident, group__name="privacy").assessment == first
    assert set(StakeholderAlert.objects.filter(assessment=second).values_list("group__name", flat=True)) == {
        "communications",
        "leadership",
        "legal",
        "security",
    }
    assert sorted(message.to[0].split("@")[0] for message in mail.outbox) == [
        "communications",
        "leadership",
        "legal",
        "security",
    ]
    event = incident.audit_events.filter(verb="assessment_recorded").last()
    assert sorted(event.data["stakeholders_alerted"]) == ["communications", "leadership", "legal", "security"]


def test_a_scenario_calls_its_groups_whatever_the_band(make_incident, assess):
    incident = make_incident()

    assess(incident, band="low", scenario="malicious_insider", malicious="yes")

    assert _alerted(incident) == ["legal", "privacy", "security"]
    legal = StakeholderAlert.objects.get(incident=incident, group__name="legal")
    assert "Malicious insider" in legal.reason


def test_it_records_recipients_and_time_and_links_the_incident(
    make_incident, assess, stakeholder_addresses, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://breachdesk.example.org"
    group = StakeholderGroup.objects.get(name="privacy")
    group.email_addresses = "dpo@breachdesk.test\nprivacy-team@breachdesk.test"
    group.save()
    incident = make_incident(title="Payroll export sent to a wrong customer")

    with django_capture_on_commit_callbacks(execute=True):
        assessment = assess(incident, band="low")

    alert = StakeholderAlert.objects.get(incident=incident, group=group)
    assert alert.recipients == ["dpo@breachdesk.test", "privacy-team@breachdesk.test"]
    assert alert.created_at == assessment.assessed_at
    # One outbox row per recipient, sent by the outbox sender after commit.
    assert alert.email_status() == "2 of 2 sent"
    assert sorted(message.to[0] for message in mail.outbox) == [
        "dpo@breachdesk.test",
        "privacy-team@breachdesk.test",
    ]
    for message in mail.outbox:
        assert incident.reference in message.subject
        assert f"https://breachdesk.example.org/incidents/{incident.pk}/" in message.body
        assert "Payroll export sent to a wrong customer" in message.body
        assert "severity low" in message.body.lower()


def test_no_email_leaves_before_the_assessment_commits(make_incident, assess, stakeholder_addresses):
    incident = make_incident()

    with transaction.atomic():
        assess(incident, band="high")
        assert mail.outbox == []

    assert _alerted(incident) == ["legal", "privacy", "security"]


def test_a_rolled_back_assessment_alerts_nobody(
    make_incident, assess, stakeholder_addresses, django_capture_on_commit_callbacks
):
    incident = make_incident()

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            assess(incident, band="very_high")
            raise RuntimeError("something later in the request failed")

    assert callbacks == []
    assert mail.outbox == []
    assert _alerted(incident) == []


def test_a_group_without_addresses_is_recorded_and_not_emailed(
    make_incident, assess, django_capture_on_commit_callbacks
):
    incident = make_incident()

    with django_capture_on_commit_callbacks(execute=True):
        assess(incident, band="low")

    alert = StakeholderAlert.objects.get(incident=incident, group__name="privacy")
    assert alert.recipients == []
    assert alert.sent_at is None
    assert "no email address" in alert.last_error
    assert not alert.emails.exists()
    assert mail.outbox == []


def test_an_inactive_group_is_not_alerted(make_incident, assess):
    StakeholderGroup.objects.filter(name="privacy").update(is_active=False)
    incident = make_incident()

    assess(incident, band="medium")

    assert _alerted(incident) == ["security"]


def test_sending_an_alert_twice_emails_once(make_incident, assess, stakeholder_addresses):
    incident = make_incident()
    assess(incident, band="low")  # no commit here: the outbox row exists, nothing is sent yet
    alert = StakeholderAlert.objects.get(incident=incident)
    assert alert.emails.count() == 1 and mail.outbox == []

    # The old per-alert task (messages queued before the outbox) adds nothing more.
    assert send_stakeholder_alert(alert.pk) == 0
    first = outbox_send_due()
    second = outbox_send_due()

    assert (first.sent, second.sent) == (1, 0)
    assert len(mail.outbox) == 1
    assert alert.email_status() == "1 of 1 sent"


def test_the_database_refuses_a_second_alert_of_the_same_group(make_incident, assess):
    incident = make_incident()
    assess(incident, band="low")
    alert = StakeholderAlert.objects.get(incident=incident)

    with pytest.raises(IntegrityError), transaction.atomic():
        StakeholderAlert.objects.create(
            incident=incident, group=alert.group, assessment=alert.assessment, reason="x", summary="x"
        )


def test_exits_alert_nobody(make_incident, assess):
    incident = make_incident()

    assess(
        incident,
        scope="out_of_scope",
        out_of_scope_category="product_feedback",
        severity_inputs=None,
        notification_facts=None,
    )

    assert _alerted(incident) == []
