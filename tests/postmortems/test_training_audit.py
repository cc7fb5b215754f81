"""The training audit trail: one hash chain per course recording its creation, its changes and
every import; verification finds a changed, removed or reordered event and a record changed
behind the application's back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from postmortems.models import TrainingAuditEvent, TrainingImport, TrainingRecord
from postmortems.training import course_update
from postmortems.training_audit import records_digest, verify_training_chains
from tests.audit_tampering import audit_triggers_disabled

HEADER = "email,course_code,completed_at,score\n"


@pytest.fixture
def audited(make_course, run_import, superuser):
    """DP-101 created, changed, and two imports (one spanning both courses)."""
    dp = make_course("DP-101")
    ir = make_course("IR-201")
    course_update(course=dp, actor=superuser, changes={"name": "Data protection essentials"})
    run_import(
        HEADER + "a@staff.example,DP-101,2026-03-01,90\nb@staff.example,IR-201,2026-03-02T10:00:00+02:00,\n"
    )
    run_import(HEADER + "a@staff.example,DP-101,2026-03-01,90\nc@staff.example,DP-101,2026-04-01,70\n")
    return dp, ir


def test_each_course_has_its_own_chain_of_every_training_write(audited):
    dp, ir = audited

    dp_events = list(TrainingAuditEvent.objects.filter(course=dp).order_by("sequence"))
    assert [(e.sequence, e.verb) for e in dp_events] == [
        (1, "course_created"),
        (2, "course_updated"),
        (3, "training_imported"),
        (4, "training_imported"),
    ]
    assert dp_events[0].previous_hash == TrainingAuditEvent.GENESIS_HASH
    assert all(
        later.previous_hash == earlier.hash for earlier, later in zip(dp_events, dp_events[1:], strict=False)
    )
    assert dp_events[0].data["fields"] == {
        "code": "DP-101",
        "name": "Course DP-101",
        "is_mandatory": True,
        "validity_days": 365,
    }
    assert dp_events[1].data == {"changes": {"name": ["Course DP-101", "Data protection essentials"]}}
    first_import, second_import = TrainingImport.objects.order_by("id")
    assert {k: dp_events[3].data[k] for k in ("import", "rows", "recorded")} == {
        "import": second_import.pk,
        "rows": 2,
        "recorded": 1,
    }
    assert dp_events[3].data["file_sha256"] == second_import.file_sha256
    ir_events = list(TrainingAuditEvent.objects.filter(course=ir).order_by("sequence"))
    assert [(e.verb, e.data.get("import")) for e in ir_events] == [
        ("course_created", None),
        ("training_imported", first_import.pk),
    ]
    assert verify_training_chains() == []


def test_an_import_event_digests_exactly_the_records_it_stored(audited):
    dp, _ = audited
    event = TrainingAuditEvent.objects.get(course=dp, sequence=4)
    stored = TrainingRecord.objects.filter(course=dp, imported_in_id=event.data["import"])

    assert [record.email for record in stored] == ["c@staff.example"]
    assert event.data["records_sha256"] == records_digest(
        stored.values_list("email", "completed_at", "expires_at", "score")
    )


def test_verification_finds_an_event_changed_behind_the_applications_back(audited):
    dp, _ = audited
    with audit_triggers_disabled():
        TrainingAuditEvent.objects.filter(course=dp, sequence=2).update(data={"changes": {}})

    breaks = verify_training_chains()

    assert [(b.course_id, b.sequence, b.reason) for b in breaks] == [
        (dp.pk, 2, "content does not match hash")
    ]


def test_verification_finds_a_removed_event(audited):
    dp, _ = audited
    with audit_triggers_disabled():
        TrainingAuditEvent.objects.filter(course=dp, sequence=2)._raw_delete(TrainingAuditEvent.objects.db)

    reasons = {(b.sequence, b.reason) for b in verify_training_chains(course_ids=[dp.pk])}

    assert (3, "expected sequence 2") in reasons
    assert (3, "previous_hash does not match") in reasons


def test_verification_finds_a_record_extended_behind_the_applications_back(audited):
    dp, _ = audited
    TrainingRecord.objects.filter(email="c@staff.example").update(expires_at=datetime(2099, 1, 1, tzinfo=UTC))

    breaks = verify_training_chains()

    assert len(breaks) == 1
    assert (breaks[0].course_id, breaks[0].sequence) == (dp.pk, 4)
    assert "do not match records_sha256" in breaks[0].reason


def test_the_chain_is_append_only(audited):
    event = TrainingAuditEvent.objects.get(course__code="DP-101", sequence=1)

    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_the_digest_does_not_depend_on_order_or_zone():
    from zoneinfo import ZoneInfo

    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    later = at + timedelta(days=365)
    rows = [("a@x.example", at, later, None), ("b@x.example", at, later, Decimal("90"))]
    same_in_berlin = [
        ("b@x.example", at.astimezone(ZoneInfo("Europe/Berlin")), later, Decimal("90.00")),
        ("a@x.example", at, later, None),
    ]

    assert records_digest(rows) == records_digest(same_in_berlin)
    assert records_digest(rows) != records_digest(rows[:1])


def test_the_command_reports_breaks_by_course_and_exits_1(audited):
    from io import StringIO

    from django.core.management import CommandError, call_command

    dp, _ = audited
    out = StringIO()
    call_command("verify_training_audit", stdout=out)
    assert "verifies" in out.getvalue()

    with audit_triggers_disabled():
        TrainingAuditEvent.objects.filter(course=dp, sequence=1).update(verb="course_renamed")
    err = StringIO()
    with pytest.raises(CommandError, match="1 break") as failed:
        call_command("verify_training_audit", "--course", "DP-101", stderr=err)
    assert failed.value.returncode == 1
    assert err.getvalue().strip() == "course DP-101 event 1: content does not match hash"
    call_command("verify_training_audit", "--course", "IR-201", stdout=StringIO())  # intact
    with pytest.raises(CommandError, match="No course with code XX-1"):
        call_command("verify_training_audit", "--course", "XX-1")


def test_auditors_verify_the_training_trail_on_the_audit_site(audited, auditor, responder):
    from django.test import Client

    dp, _ = audited
    client = Client()
    client.force_login(auditor)

    index = client.get("/audit/").content.decode()
    assert 'href="/audit/training/verify/"' in index
    intact = client.get("/audit/training/verify/")
    assert intact.status_code == 200
    assert 'id="training-audit-trail-intact"' in intact.content.decode()
    assert "6 training audit events in 2 course chains" in intact.content.decode()

    TrainingRecord.objects.filter(email="a@staff.example").update(score=100)
    broken = client.get("/audit/training/verify/").content.decode()
    assert "1 break found" in broken
    assert "<td>DP-101</td><td>3</td>" in broken
    assert client.post("/audit/training/verify/").status_code == 405

    refused = Client()
    refused.force_login(responder)
    assert refused.get("/audit/training/verify/").status_code == 302  # to the audit site's login
