"""The audit trail is append-only and its hash chain detects changes behind the application."""

import pytest
from django.db import connection

from incidents.audit import verify_chain
from incidents.models import AuditEvent
from tests.audit_tampering import audit_triggers_disabled


def test_the_chain_of_a_full_lifecycle_verifies(make_incident):
    incident = make_incident(state="closed")

    verbs = list(incident.audit_events.values_list("verb", flat=True))
    assert verbs == [
        "created",
        "triage",
        "affected_customer_added",
        "declare",
        "mark_notified",
        "begin_post_mortem",
        "post_mortem_updated",
        "post_mortem_completed",
        "close",
    ]
    assert list(incident.audit_events.values_list("sequence", flat=True)) == list(range(1, 10))
    assert verify_chain() == []


def test_it_detects_a_row_changed_behind_the_applications_back(make_incident):
    incident = make_incident(state="declared")
    declare = incident.audit_events.get(verb="declare")
    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=declare.pk).update(actor_username="someone.else")

    breaks = verify_chain()

    assert [(b.incident_id, b.sequence, b.reason) for b in breaks] == [
        (incident.pk, declare.sequence, "content does not match hash")
    ]


def test_it_detects_a_rewritten_row_whose_hash_was_recomputed(make_incident):
    incident = make_incident(state="declared")
    triage = incident.audit_events.get(verb="triage")
    triage.data = {"changes": {"severity": [None, "low"]}}
    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=triage.pk).update(data=triage.data, hash=triage.compute_hash())

    breaks = verify_chain(incident_ids=[incident.pk])

    assert [(b.sequence, b.reason) for b in breaks] == [(triage.sequence + 1, "previous_hash does not match")]


def test_it_detects_a_deleted_row(make_incident):
    incident = make_incident(state="declared")
    triage = incident.audit_events.get(verb="triage")
    with audit_triggers_disabled(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM incidents_auditevent WHERE id = %s", [triage.pk])

    reasons = {b.reason for b in verify_chain()}

    assert reasons == {f"expected sequence {triage.sequence}", "previous_hash does not match"}


def test_it_refuses_to_change_or_delete_an_event_through_the_orm(make_incident):
    event = make_incident().audit_events.get()

    event.verb = "forged"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()


def test_the_periodic_task_reports_breaks(make_incident):
    from incidents.tasks import verify_audit_trail

    incident = make_incident()
    assert verify_audit_trail() == 0
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident).update(verb="forged")
    assert verify_audit_trail() == 1


def test_the_command_exits_non_zero_naming_the_tampered_incident(make_incident):
    from io import StringIO

    from django.core.management import CommandError, call_command

    incident = make_incident(state="triaged")
    out = StringIO()
    call_command("verify_audit_trail", stdout=out)
    assert "every chain is intact" in out.getvalue()

    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident, verb="triage").update(to_state="declared")
    err = StringIO()
    with pytest.raises(CommandError, match="1 break"):
        call_command("verify_audit_trail", "--incident", incident.reference, stderr=err)
    assert f"{incident.reference} event 2: content does not match hash" in err.getvalue()


def test_the_command_rejects_an_unknown_reference(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No incident with reference BD-1999-00001"):
        call_command("verify_audit_trail", "--incident", "BD-1999-00001")


# Customers' chains ----------------------------------------------------------------------------


def _customer_with_history(customer):
    from incidents import services

    services.contact_create(customer=customer, actor=None, name="Bea Second", email="bea@acme.example")
    bea = customer.contacts.get(email="bea@acme.example")
    services.contact_update(contact=bea, actor=None, changes={"language": "fr"})
    return customer


def test_a_customers_chain_verifies_beside_the_incident_chains(make_incident, customer):
    from incidents.models import CustomerAuditEvent

    make_incident(state="declared")
    _customer_with_history(customer)

    events = list(CustomerAuditEvent.objects.filter(customer=customer).order_by("sequence"))
    assert [(e.sequence, e.verb) for e in events] == [(1, "contact_added"), (2, "contact_updated")]
    assert events[1].previous_hash == events[0].hash
    assert verify_chain() == []
    assert verify_chain(customer_ids=[customer.pk]) == []


def test_it_detects_a_customer_event_changed_behind_the_applications_back(customer):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from incidents.models import CustomerAuditEvent

    _customer_with_history(customer)
    first = CustomerAuditEvent.objects.get(customer=customer, sequence=1)
    with audit_triggers_disabled():
        CustomerAuditEvent.objects.filter(pk=first.pk).update(actor_contact_email="forger@evil.example")

    breaks = verify_chain()
    assert [(b.chain, b.subject_id, b.sequence, b.reason, b.incident_id) for b in breaks] == [
        ("customer", customer.pk, 1, "content does not match hash", None)
    ]
    err = StringIO()
    with pytest.raises(CommandError, match="1 break"):
        call_command("verify_audit_trail", "--customer", customer.account_reference, stderr=err)
    assert f"customer {customer.account_reference} event 1: content does not match hash" in err.getvalue()
    with pytest.raises(CommandError, match="No customer with account reference NOPE"):
        call_command("verify_audit_trail", "--customer", "NOPE")


def test_an_incident_filter_leaves_customer_chains_out(make_incident, customer):
    from incidents.models import CustomerAuditEvent

    incident = make_incident()
    _customer_with_history(customer)
    with audit_triggers_disabled():
        CustomerAuditEvent.objects.filter(customer=customer).update(verb="forged")

    assert verify_chain(incident_ids=[incident.pk]) == []
    assert len(verify_chain()) == 2
