"""A customer-driven event is not our breach: the observation goes to the customer's contacts as
a notice of its own kind, with no clock, drafted by triage and approved by a manager."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import services as incident_services
from notifications.models import Clock, Notice
from notifications.sender import deliveries_send_due
from notifications.services import notice_draft
from tests.notifications.support import approve


@pytest.fixture
def customer_event(make_incident, multilingual_customers, responder, assess):
    incident = make_incident(state="triaged")
    incident_services.affected_customer_add(
        incident=incident, customer=multilingual_customers[0], actor=responder
    )
    assess(
        incident,
        scope="customer_event",
        scope_rationale="The customer attached its users' passwords to a support ticket.",
        customer_event_category="customer_sent_sensitive_data",
        customer_informed_at=timezone.now() - timedelta(hours=1),
        help_offered="We deleted the attachment; we recommend resetting the passwords and can help.",
        findings="A support ticket from your service desk carried 14 user passwords in an attachment.",
        severity_inputs=None,
        notification_facts=None,
    )
    incident.refresh_from_db()
    return incident


@pytest.fixture
def assess(responder):
    from triage.services import assessment_record

    def record(incident, **values):
        return assessment_record(incident=incident, actor=responder, **values)

    return record


def test_triage_drafts_the_observation_and_a_manager_sends_it_in_each_language(
    customer_event, manager, smtp_server
):
    draft = Notice.objects.get(incident=customer_event)
    assert (draft.kind, draft.status) == ("customer_event", "draft")

    approve(draft, manager)
    deliveries_send_due()

    by_address = {m.recipients[0]: m for m in smtp_server.received}
    assert sorted(by_address) == ["anna@acme.example", "bob@acme.example"]
    english = by_address["bob@acme.example"]
    assert str(english.message["Subject"]).strip().startswith("Our observation")
    assert "not a personal data breach at our organisation" in english.text()
    assert "14 user passwords" in english.text()
    assert "recommend resetting the passwords" in english.text()
    assert "Volume of affected" not in english.text()
    german = by_address["anna@acme.example"]
    assert "Was wir beobachtet haben" in german.text()
    assert not Clock.objects.filter(incident=customer_event).exists()


def test_only_a_customer_driven_event_gets_an_observation_notice(make_incident, manager):
    with pytest.raises(ValidationError, match="observation"):
        notice_draft(incident=make_incident(state="declared"), actor=manager, kind="customer_event")


def test_a_customer_driven_event_gets_no_breach_notice(customer_event, manager):
    with pytest.raises(ValidationError, match="observation"):
        notice_draft(incident=customer_event, actor=manager, kind="initial")
