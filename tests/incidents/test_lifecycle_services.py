"""The lifecycle services: order of checks, guards, ownership, audit and on-commit effects."""

import pytest
from django.core import mail
from django.utils import timezone

from incidents import services
from incidents.exceptions import ActionForbidden, GuardFailed, TransitionNotAvailable
from incidents.models import AuditEvent, Incident, OutgoingEmail
from tests.conftest import complete_post_mortem


def test_it_creates_a_detected_incident_with_a_reference_and_a_created_event(responder):
    incident = services.incident_create(
        actor=responder, fields={"title": "Laptop stolen", "detection_source": "staff_escalation"}
    )

    assert incident.state == "detected"
    assert incident.reference == f"BD-{incident.created_at.year}-{incident.pk:05d}"
    event = incident.audit_events.get()
    assert (event.verb, event.to_state, event.actor_username) == ("created", "detected", responder.username)
    assert event.data["fields"]["title"] == "Laptop stolen"


def test_it_refuses_creation_without_the_add_permission(auditor):
    with pytest.raises(ActionForbidden):
        services.incident_create(actor=auditor, fields={"title": "x", "detection_source": "automated_alert"})
    assert not Incident.objects.exists()


def test_it_names_every_missing_fact_when_triage_guard_fails(make_incident, responder):
    incident = make_incident()

    with pytest.raises(GuardFailed) as failure:
        services.incident_triage(incident=incident, actor=responder)

    assert failure.value.missing == ["severity", "malicious"]
    incident.refresh_from_db()
    assert incident.state == "detected"
    assert incident.audit_events.count() == 1


def test_it_makes_the_triaging_responder_the_owner(make_incident, responder):
    incident = services.incident_triage(
        incident=make_incident(), actor=responder, severity="high", malicious="unknown"
    )

    assert incident.state == "triaged"
    assert incident.owner == responder
    assert incident.triaged_at is not None
    event = incident.audit_events.last()
    assert event is not None
    assert (event.verb, event.from_state, event.to_state) == ("triage", "detected", "triaged")
    assert event.data["changes"]["severity"] == [None, "high"]


def test_it_checks_permission_before_state(make_incident, responder):
    incident = make_incident()  # detected: declare is unavailable, and responders may not declare

    with pytest.raises(ActionForbidden):
        services.incident_declare(incident=incident, actor=responder, nature_of_breach="x")


def test_it_reports_an_unavailable_transition_before_its_guard(make_incident, manager):
    incident = make_incident()

    with pytest.raises(TransitionNotAvailable) as conflict:
        services.incident_declare(incident=incident, actor=manager)

    assert conflict.value.state == "detected"


def test_declaration_needs_the_nature_of_the_breach_and_an_affected_customer(make_incident, manager):
    incident = make_incident(state="triaged")

    with pytest.raises(GuardFailed) as failure:
        services.incident_declare(incident=incident, actor=manager)

    assert failure.value.missing == ["nature_of_breach", "affected_customers"]


def test_it_emails_the_managers_once_after_the_declaration_commits(
    make_incident, manager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        incident = make_incident(state="declared")

    # Besides the sender's wake-up, the dashboard's lifecycle hook queues a metrics refresh per
    # moment. One outbox row (and email) per recipient: the managers and the owner.
    wake_ups = [c for c in callbacks if "refresh_metrics_of_the_month" not in c.__qualname__]
    assert len(wake_ups) == 1
    assert [message.subject for message in mail.outbox] == 2 * [
        f"[Breachdesk] Personal data breach declared: {incident.reference}"
    ]
    assert sorted(message.to[0] for message in mail.outbox) == sorted([manager.email, incident.owner.email])
    assert OutgoingEmail.objects.filter(kind="declaration_alert", status="sent").count() == 2


def test_a_declaration_rolled_back_queues_nothing(
    make_incident, manager, customer, django_capture_on_commit_callbacks
):
    from django.db import transaction

    incident = make_incident(state="triaged")
    services.affected_customer_add(incident=incident, customer=customer, actor=manager)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            services.incident_declare(incident=incident, actor=manager, nature_of_breach="x")
            raise RuntimeError("something later in the request failed")

    assert callbacks == []
    assert mail.outbox == []
    incident.refresh_from_db()
    assert incident.state == "triaged"
    assert not incident.audit_events.filter(verb="declare").exists()


def test_a_stale_instance_cannot_repeat_a_transition(make_incident, manager):
    incident = make_incident(state="declared")
    stale = Incident.objects.get(pk=incident.pk)
    Incident.objects.filter(pk=incident.pk).update(state="triaged")  # someone else moved it back
    services.incident_declare(incident=incident, actor=manager)  # and declared again

    with pytest.raises(TransitionNotAvailable):
        services.incident_declare(incident=stale, actor=manager)
    assert AuditEvent.objects.filter(incident=incident, verb="declare").count() == 2


def test_the_state_field_cannot_be_assigned_directly(make_incident):
    incident = make_incident()

    with pytest.raises(AttributeError):
        incident.state = "declared"


def test_closing_needs_a_completed_post_mortem_and_no_open_action_items(make_incident, manager):
    from postmortems import services as postmortem_services

    incident = make_incident(state="post_mortem")
    item = postmortem_services.action_item_create(incident=incident, actor=manager, description="Add a check")

    with pytest.raises(GuardFailed) as failure:
        services.incident_close(incident=incident, actor=manager)
    assert failure.value.missing == ["post_mortem.completed", "post_mortem.action_items"]

    complete_post_mortem(incident, manager)
    with pytest.raises(GuardFailed) as failure:
        services.incident_close(incident=incident, actor=manager)
    assert failure.value.missing == ["post_mortem.action_items"]

    postmortem_services.action_item_update(
        item=item, actor=manager, changes={"status": "risk_accepted", "resolution": "Accepted by the DPO"}
    )
    closed = services.incident_close(incident=incident, actor=manager)
    assert closed.state == "closed"
    assert closed.post_mortem.completed_at is not None


def test_mark_notified_waits_for_every_affected_customers_clock(make_incident, customer, responder):
    from notifications.models import Clock

    incident = make_incident(state="declared")
    services.affected_customer_add(incident=incident, customer=customer, actor=responder)
    Clock.objects.filter(incident=incident).exclude(customer=customer).update(met_at=timezone.now())

    with pytest.raises(GuardFailed):
        services.incident_mark_notified(incident=incident)

    Clock.objects.filter(incident=incident, customer=customer).update(waived_at=timezone.now())
    assert services.incident_mark_notified(incident=incident).state == "notified"


def test_affected_customers_cannot_be_removed_after_declaration(make_incident, manager):
    from incidents.exceptions import LifecycleConflict

    incident = make_incident(state="declared")
    customer = incident.affected_customers.get().customer

    with pytest.raises(LifecycleConflict):
        services.affected_customer_remove(incident=incident, customer=customer, actor=manager)
    assert incident.affected_customers.count() == 1


def test_a_customer_added_after_declaration_gets_its_own_clock_from_that_moment(
    make_incident, customer, responder
):
    from datetime import timedelta

    incident = make_incident(state="declared")

    affected = services.affected_customer_add(incident=incident, customer=customer, actor=responder)

    clock = incident.clocks.get(customer=customer)
    assert clock.starts_at == affected.added_at > incident.declared_at
    assert clock.due_at == affected.added_at + timedelta(hours=72)
    event = incident.audit_events.last()
    assert event.verb == "affected_customer_added"
    assert event.data == {
        "customer": "ACME-001",
        "records_affected": None,
        "after_declaration": True,
        "clock_due_at": clock.due_at.isoformat(),
    }


def test_closed_incidents_cannot_be_edited(make_incident, manager):
    from incidents.exceptions import LifecycleConflict

    incident = make_incident(state="out_of_scope")

    with pytest.raises(LifecycleConflict):
        services.incident_update(incident=incident, actor=manager, changes={"title": "changed"})
    incident.refresh_from_db()
    assert incident.title != "changed"


def test_editing_records_old_and_new_values(make_incident, responder):
    incident = make_incident()

    services.incident_update(incident=incident, actor=responder, changes={"records_affected": 1200})

    event = incident.audit_events.last()
    assert (event.verb, event.data) == ("updated", {"changes": {"records_affected": [None, 1200]}})


def test_editing_refuses_the_state_field(make_incident, responder):
    from django.core.exceptions import ValidationError

    incident = make_incident()

    with pytest.raises(ValidationError) as error:
        services.incident_update(incident=incident, actor=responder, changes={"state": "declared"})
    assert "state" in error.value.message_dict


def test_it_refuses_facts_about_the_past_dated_in_the_future(make_incident, responder):
    from datetime import timedelta

    from django.core.exceptions import ValidationError

    incident = make_incident()
    tomorrow = timezone.now() + timedelta(days=1)

    with pytest.raises(ValidationError) as error:
        services.incident_update(
            incident=incident,
            actor=responder,
            changes={"detected_at": tomorrow, "occurred_on": tomorrow.date(), "records_affected": 5},
        )
    assert set(error.value.message_dict) == {"detected_at", "occurred_on"}
    with pytest.raises(ValidationError, match="future"):
        services.incident_classify_as_customer_event(
            incident=incident,
            actor=responder,
            scope_rationale="Customer emailed us a password.",
            customer_informed_at=tomorrow,
        )
    incident.refresh_from_db()
    assert (incident.state, incident.records_affected, incident.detected_at) == ("detected", None, None)
