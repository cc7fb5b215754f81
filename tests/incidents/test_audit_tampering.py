"""Tampering with the audit trail the way someone with database access would, and
``verify_audit_trail`` catching each kind: a changed row, a deleted row, a truncated tail, a
deleted chain, rows rewritten with their hashes recomputed by the app's own function without the
key, a forged checkpoint. On PostgreSQL the trigger refuses the UPDATE and DELETE outright."""

import hashlib
import hmac
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from incidents.audit import verify_chain
from incidents.audit_keys import current_key, verification_keys
from incidents.checkpoints import audit_checkpoints_write
from incidents.models import AuditCheckpoint, AuditEvent, CustomerAuditEvent, Incident
from tests.audit_tampering import AUDIT_TABLES, audit_triggers_disabled

KEY_A = "a" * 40
KEY_B = "b" * 40


def _verify_fails(*args):
    """Run ``verify_audit_trail``; return its error output, asserting it exited non-zero."""
    err = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit_trail", *args, stderr=err)
    assert failed.value.returncode == 1
    return err.getvalue()


def _verifies(*args):
    out = StringIO()
    call_command("verify_audit_trail", *args, stdout=out)
    return "every chain is intact" in out.getvalue()


def _events(incident):
    return list(AuditEvent.objects.filter(incident=incident).order_by("sequence"))


def test_it_seals_every_row_with_the_key_and_records_the_key_id(make_incident):
    incident = make_incident(state="declared")

    events = _events(incident)
    key = current_key()
    assert {e.key_id for e in events} == {key.key_id}
    for event in events:
        assert event.hash == hmac.new(key.secret, event.hash_payload().encode(), hashlib.sha256).hexdigest()
        assert event.hash != event.compute_unkeyed_hash()
    assert _verifies()


def test_it_reports_a_changed_row(make_incident):
    incident = make_incident(state="declared")
    declare = incident.audit_events.get(verb="declare")
    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=declare.pk).update(actor_username="someone.else")

    err = _verify_fails()

    assert f"{incident.reference} event {declare.sequence}: content does not match hash [changed_row]" in err


def test_it_reports_a_deleted_row(make_incident):
    incident = make_incident(state="declared")
    triage = incident.audit_events.get(verb="triage")
    with audit_triggers_disabled(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM incidents_auditevent WHERE id = %s", [triage.pk])

    err = _verify_fails("--incident", incident.reference)

    following = triage.sequence + 1
    assert f"{incident.reference} event {following}: expected sequence {triage.sequence} [deleted_row]" in err
    assert f"{incident.reference} event {following}: previous_hash does not match [deleted_row]" in err


def test_it_reports_a_truncated_tail_that_the_chain_alone_cannot_show(make_incident):
    incident = make_incident(state="declared")
    length = len(_events(incident))
    audit_checkpoints_write()
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident, sequence__gt=length - 2)._raw_delete(
            AuditEvent.objects.db
        )

    breaks = verify_chain()
    err = _verify_fails()

    # What is left is a perfectly linked chain: only the checkpoint shows the missing tail.
    assert [b.kind for b in breaks] == ["truncated_tail"]
    assert (
        f"{incident.reference} event {length - 1}: chain ends at event {length - 2} but the checkpoint of "
        in err
    )
    assert f"recorded {length} events: tail truncated [truncated_tail]" in err


def test_it_reports_a_whole_chain_deleted_with_its_incident(make_incident):
    incident = make_incident()
    reference = incident.reference
    audit_checkpoints_write()
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident)._raw_delete(AuditEvent.objects.db)
        Incident.objects.filter(pk=incident.pk).delete()

    breaks = verify_chain()
    err = _verify_fails()

    assert [(b.kind, b.subject_id, b.sequence) for b in breaks] == [("deleted_chain", incident.pk, 0)]
    assert f"{reference}: no events, but the checkpoint of " in err
    assert "recorded 1: chain deleted [deleted_chain]" in err


def test_it_reports_rows_rewritten_and_recomputed_with_the_apps_function_without_the_key(make_incident):
    incident = make_incident(state="declared")
    events = _events(incident)
    # The forger changes the triage row and recomputes every hash from there on with the app's
    # own (unkeyed) function, so each row links to the one before: what verified clean before.
    forged = events[1]
    forged.data = {"changes": {"severity": [None, "low"]}}
    previous = events[0].hash
    with audit_triggers_disabled():
        for event in events[1:]:
            event.previous_hash = previous
            event.hash = event.compute_unkeyed_hash()
            AuditEvent.objects.filter(pk=event.pk).update(
                data=event.data, previous_hash=event.previous_hash, hash=event.hash
            )
            previous = event.hash

    breaks = verify_chain()
    err = _verify_fails()

    assert [(b.sequence, b.kind) for b in breaks] == [(e.sequence, "unkeyed_hash") for e in events[1:]]
    assert (
        f"{incident.reference} event {forged.sequence}: hash recomputed without the audit key (plain SHA-256) "
        "[unkeyed_hash]" in err
    )


def test_it_reports_a_checkpoint_whose_signature_does_not_verify(make_incident):
    incident = make_incident()
    (checkpoint,) = audit_checkpoints_write()
    # A forger "records" a shorter chain after deleting the tail: the signature gives it away.
    AuditCheckpoint.objects.create(
        chain="incident",
        subject_id=incident.pk,
        subject_label=incident.reference,
        length=5,
        head_hash="f" * 64,
        created_at=checkpoint.created_at,
        key_id=checkpoint.key_id,
        signature="0" * 64,
    )

    err = _verify_fails()

    assert f"{incident.reference}: checkpoint of " in err
    assert "(length 5) has a signature that does not verify [checkpoint_signature]" in err


def test_it_reports_a_head_rewritten_after_its_checkpoint(make_incident):
    incident = make_incident(state="triaged")
    audit_checkpoints_write()
    head = _events(incident)[-1]
    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=head.pk).update(hash="e" * 64)

    kinds = {b.kind for b in verify_chain()}

    assert kinds == {"changed_row", "checkpoint_mismatch"}


def test_the_checkpoint_writer_checkpoints_only_chains_that_grew(make_incident, manager):
    from incidents import services

    incident = make_incident()
    first = audit_checkpoints_write()
    assert [(c.chain, c.subject_id, c.length) for c in first if c.chain == "incident"] == [
        ("incident", incident.pk, 1)
    ]
    assert audit_checkpoints_write() == []

    services.note_add(incident=incident, actor=manager, text="Called the customer.")

    (grown,) = audit_checkpoints_write()
    assert (grown.chain, grown.subject_id, grown.length) == ("incident", incident.pk, 2)
    assert grown.head_hash == _events(incident)[-1].hash
    assert grown.signature == current_key().sign(grown.signed_payload())


def test_a_chain_truncated_and_grown_again_gets_no_new_checkpoint_and_is_reported(make_incident, manager):
    from incidents import services

    incident = make_incident(state="triaged")
    audit_checkpoints_write()
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident, sequence=2)._raw_delete(AuditEvent.objects.db)
    services.note_add(incident=incident, actor=manager, text="Written after the truncation.")
    services.note_add(incident=incident, actor=manager, text="And another.")

    assert [c for c in audit_checkpoints_write() if c.subject_id == incident.pk] == []
    breaks = verify_chain(incident_ids=[incident.pk])
    assert [(b.sequence, b.kind) for b in breaks] == [(2, "checkpoint_mismatch")]
    assert "rewritten since" in breaks[0].reason


def test_the_checkpoint_file_catches_a_truncation_hidden_by_deleting_the_checkpoint_rows(
    make_incident, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    incident = make_incident(state="triaged")
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoints_write()
    assert (tmp_path / "checkpoints.jsonl").read_text().count("\n") == 1
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident, sequence=2)._raw_delete(AuditEvent.objects.db)
        AuditCheckpoint.objects.all()._raw_delete(AuditCheckpoint.objects.db)

    assert verify_chain() == []  # the database alone now looks intact
    err = _verify_fails()
    assert f"{incident.reference} event 2: chain ends at event 1" in err and "[truncated_tail]" in err


def test_rows_sealed_with_a_previous_key_verify_after_a_rotation(make_incident, manager, settings):
    from incidents import services

    settings.AUDIT_HMAC_KEY = KEY_A
    incident = make_incident()
    old_id = current_key().key_id

    settings.AUDIT_HMAC_KEY = KEY_B
    settings.AUDIT_HMAC_PREVIOUS_KEYS = [KEY_A]
    services.note_add(incident=incident, actor=manager, text="After the rotation.")

    events = _events(incident)
    assert [e.key_id for e in events] == [old_id, current_key().key_id] and old_id != current_key().key_id
    assert verify_chain() == []

    settings.AUDIT_HMAC_PREVIOUS_KEYS = []
    breaks = verify_chain()
    assert [(b.sequence, b.kind, b.reason) for b in breaks] == [
        (1, "unknown_key", f"sealed with unknown audit key {old_id}")
    ]


def test_the_key_is_derived_from_the_secret_key_when_none_is_set(settings):
    settings.AUDIT_HMAC_KEY = ""
    derived = hmac.new(settings.SECRET_KEY.encode(), b"breachdesk-audit", hashlib.sha256).hexdigest()
    assert current_key().secret == derived.encode()

    settings.AUDIT_HMAC_KEY = KEY_A
    assert current_key().secret == KEY_A.encode()
    assert set(verification_keys()) == {current_key().key_id}


def test_a_short_key_is_refused_with_a_message(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.AUDIT_HMAC_KEY = "too-short"
    with pytest.raises(ImproperlyConfigured, match="AUDIT_HMAC_KEY must be at least 32 characters"):
        current_key()


def test_a_changed_key_without_the_previous_one_fails_every_row(make_incident, settings):
    settings.AUDIT_HMAC_KEY = KEY_A
    incident = make_incident()
    settings.AUDIT_HMAC_KEY = KEY_B

    assert [b.kind for b in verify_chain(incident_ids=[incident.pk])] == ["unknown_key"]


def test_the_training_and_customer_chains_are_verified_by_the_same_command(customer, superuser):
    from incidents import services
    from postmortems.models import TrainingAuditEvent
    from postmortems.training import course_create

    course = course_create(
        actor=superuser, fields={"code": "DP-101", "name": "Data protection", "validity_days": 365}
    )
    services.contact_create(customer=customer, actor=None, name="Bea Second", email="bea@acme.example")
    assert TrainingAuditEvent.objects.get(course=course).key_id == current_key().key_id
    with audit_triggers_disabled():
        TrainingAuditEvent.objects.filter(course=course).update(verb="course_renamed")
        CustomerAuditEvent.objects.filter(customer=customer).update(verb="forged")

    err = _verify_fails()

    assert "course DP-101 event 1: content does not match hash [changed_row]" in err
    assert f"customer {customer.account_reference} event 1: content does not match hash [changed_row]" in err
    assert "customer" not in _verify_fails("--chain", "training")


def test_the_verification_page_shows_a_truncated_tail(make_incident, auditor):
    from django.test import Client

    incident = make_incident(state="triaged")
    audit_checkpoints_write()
    with audit_triggers_disabled():
        AuditEvent.objects.filter(incident=incident, sequence=2)._raw_delete(AuditEvent.objects.db)
    client = Client()
    client.force_login(auditor)

    page = client.get("/audit/verify/").content.decode()

    assert "tail truncated" in page and "truncated_tail" in page and incident.reference in page


def test_the_migration_reseals_a_legacy_chain_as_far_as_it_verifies(make_incident):
    from incidents.audit_migration import reseal

    good, bad = make_incident(state="triaged"), make_incident(state="triaged")
    with audit_triggers_disabled():
        for incident in (good, bad):  # back to the pre-key scheme: plain SHA-256, no key id
            previous = AuditEvent.GENESIS_HASH
            for event in _events(incident):
                event.previous_hash, event.key_id = previous, ""
                event.hash = event.compute_unkeyed_hash()
                AuditEvent.objects.filter(pk=event.pk).update(
                    previous_hash=previous, hash=event.hash, key_id=""
                )
                previous = event.hash
        AuditEvent.objects.filter(incident=bad, sequence=1).update(verb="forged")  # broken before the upgrade
        assert reseal(AuditEvent, "incident", ("from_state", "to_state")) == len(_events(good))

    assert verify_chain(incident_ids=[good.pk]) == []
    assert {(b.sequence, b.kind) for b in verify_chain(incident_ids=[bad.pk])} == {
        (1, "changed_row"),
        (2, "unkeyed_hash"),
    }


def test_the_checkpoint_command_writes_them_once(make_incident):
    make_incident()
    first, second = StringIO(), StringIO()

    call_command("checkpoint_audit_trail", stdout=first)
    call_command("checkpoint_audit_trail", stdout=second)

    assert first.getvalue().strip() == "Wrote 1 audit checkpoint(s)."
    assert second.getvalue().strip() == "Wrote 0 audit checkpoint(s)."


def test_beat_writes_the_checkpoints():
    from config.celery import app

    entry = app.conf.beat_schedule["checkpoint-audit-trail"]
    assert entry["task"] == "incidents.tasks.checkpoint_audit_trail"
    assert entry["task"] in app.tasks


@pytest.mark.postgresql
def test_the_database_refuses_update_and_delete_on_every_audit_table(make_incident, customer, superuser):
    from incidents import services
    from postmortems.training import course_create

    make_incident()
    services.contact_create(customer=customer, actor=None, name="Bea Second", email="bea@acme.example")
    course_create(actor=superuser, fields={"code": "DP-101", "name": "Data protection", "validity_days": 365})
    audit_checkpoints_write()
    for table in AUDIT_TABLES:  # our own table names, not input
        for statement in (f"UPDATE {table} SET key_id = key_id", f"DELETE FROM {table}"):  # noqa: S608
            with pytest.raises(IntegrityError, match="audit rows are append-only"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(statement)
    for model, count in ((AuditEvent, 1), (CustomerAuditEvent, 1), (AuditCheckpoint, 3)):
        assert model.objects.count() == count


@pytest.mark.postgresql
def test_every_registered_chain_has_the_append_only_trigger(db):
    from incidents.audit_migration import trigger_name

    assert len(AUDIT_TABLES) == 4  # incidents, customers, training courses, the checkpoints
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal")
        triggers = set(cursor.fetchall())
    for table in AUDIT_TABLES:
        assert (table, trigger_name(table)) in triggers, f"{table}: add the trigger in a migration"


@pytest.mark.postgresql
def test_deleting_a_user_keeps_their_events_on_postgresql(make_incident, responder):
    incident = make_incident()
    assert incident.audit_events.get().actor_id == responder.pk

    responder.delete()  # on_delete=SET_NULL: an UPDATE of actor_id alone, which the trigger lets by

    event = incident.audit_events.get()
    assert event.actor_id is None and event.actor_username == responder.username
    assert verify_chain(incident_ids=[incident.pk]) == []
