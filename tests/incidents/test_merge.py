"""One incident from many reports (issue 10, item 3): merging a duplicate into the surviving
incident keeps the earliest detection time, loses nothing from either, closes the duplicate as
merged with a link, is audited on both chains, refuses what it must, and the incident page
suggests likely duplicates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import files, services
from incidents.audit import verify_chain
from incidents.exceptions import ActionForbidden, LifecycleConflict, TransitionNotAvailable
from incidents.intake import alert_receive, alert_source_create, customer_report_submit
from incidents.merging import duplicate_suggestions, incident_merge, token_similarity
from incidents.models import (
    Alert,
    AlertThread,
    AuditEvent,
    CustomerReport,
    EvidenceFile,
    Incident,
    Note,
)


@pytest.fixture(autouse=True)
def evidence_root(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def alert_incident(detected_at, key="beacon-42", title="Malware beacon from the support portal"):
    """An incident opened by a signed alert (with its alert and alert thread)."""
    source, _secret = alert_source_create(name=f"SIEM {key}")
    outcome = alert_receive(
        source=source, fingerprint=f"fp-{key}", dedupe_key=key, title=title, detected_at=detected_at
    )
    return outcome.incident, source


def report_incident():
    """An incident opened by a customer report from the public page (detected now)."""
    report = customer_report_submit(
        organisation="Acme Logistics",
        contact_email="it@acme.example",
        description="Malware beacon seen from the support portal",
        occurred_on=timezone.now().date(),
        ip_address="192.0.2.10",
    )
    return report.incident, report


def events(incident, verb):
    return list(AuditEvent.objects.filter(incident=incident, verb=verb))


def test_an_alert_and_a_customer_report_end_as_one_incident_with_the_earliest_detection_time(responder):
    alert_at = timezone.now() - timedelta(hours=5)
    from_alert, _source = alert_incident(alert_at)
    from_report, report = report_incident()
    assert from_report.detected_at > alert_at

    merged = incident_merge(incident=from_alert, into=from_report, actor=responder)

    survivor = Incident.objects.get(pk=from_report.pk)
    assert survivor.detected_at == alert_at  # when the organisation became aware
    assert merged.state == "merged" and merged.merged_into == survivor and merged.closed_at is not None
    assert Alert.objects.get().incident_id == survivor.pk
    assert CustomerReport.objects.get(pk=report.pk).incident_id == survivor.pk
    change = events(survivor, "duplicate_merged")[0].data["detected_at"]
    assert change[1] == alert_at.isoformat()


def test_the_survivor_keeps_its_own_detection_time_when_it_is_earlier(make_incident, responder):
    early = timezone.now() - timedelta(days=2)
    survivor = make_incident(detected_at=early)
    duplicate = make_incident(detected_at=timezone.now() - timedelta(hours=1))
    incident_merge(incident=duplicate, into=survivor, actor=responder)
    survivor.refresh_from_db()
    assert survivor.detected_at == early
    assert events(survivor, "duplicate_merged")[0].data["detected_at"] is None


def test_nothing_is_lost_from_either_incident(make_incident, responder, customer):
    survivor = make_incident(title="Payroll file sent to the wrong address")
    survivor_note = services.note_add(incident=survivor, actor=responder, text="Survivor's own note.")
    duplicate, _source = alert_incident(timezone.now() - timedelta(hours=1))
    services.affected_customer_add(
        incident=duplicate, customer=customer, actor=responder, records_affected=40
    )
    note = services.note_add(incident=duplicate, actor=responder, text="The duplicate's finding.")
    evidence = files.evidence_file_upload(
        incident=duplicate, actor=responder, upload=SimpleUploadedFile("beacon.log", b"GET /c2"), note=note
    )
    duplicate_events = AuditEvent.objects.filter(incident=duplicate).count()

    incident_merge(incident=duplicate, into=survivor, actor=responder)

    assert set(Note.objects.filter(incident=survivor).values_list("pk", flat=True)) >= {
        survivor_note.pk,
        note.pk,
    }
    assert EvidenceFile.objects.get(pk=evidence.pk).incident_id == survivor.pk
    assert AlertThread.objects.get().incident_id == survivor.pk  # later alerts of the key join the survivor
    affected = survivor.affected_customers.get(customer=customer)
    assert affected.records_affected == 40
    # The duplicate's own detection facts are written on the survivor's timeline.
    summary = Note.objects.filter(
        incident=survivor, text__startswith=f"Merged duplicate {duplicate.reference}"
    ).get()
    assert "Automated alert" in summary.text and duplicate.title in summary.text
    # The duplicate keeps its facts, its affected customers and its whole audit chain.
    duplicate.refresh_from_db()
    assert duplicate.title and duplicate.affected_customers.filter(customer=customer).exists()
    assert AuditEvent.objects.filter(incident=duplicate).count() == duplicate_events + 1
    assert verify_chain(incident_ids=[duplicate.pk, survivor.pk]) == []


def test_it_audits_the_merge_on_both_chains(make_incident, responder):
    survivor, duplicate = make_incident(), make_incident("triaged")
    note = services.note_add(incident=duplicate, actor=responder, text="Seen twice.")
    incident_merge(incident=duplicate, into=survivor, actor=responder)
    [on_duplicate] = events(duplicate, "merge")
    assert (on_duplicate.from_state, on_duplicate.to_state) == ("triaged", "merged")
    assert (
        on_duplicate.data["into"] == survivor.pk and on_duplicate.data["into_reference"] == survivor.reference
    )
    assert on_duplicate.actor == responder
    [on_survivor] = events(survivor, "duplicate_merged")
    assert on_survivor.data["duplicate"] == duplicate.pk and on_survivor.data["moved"]["notes"] == [note.pk]


def test_it_refuses_to_merge_into_itself_a_merged_incident_or_a_declared_duplicate(make_incident, responder):
    first, second, third = make_incident(), make_incident(), make_incident()
    with pytest.raises(ValidationError):
        incident_merge(incident=first, into=first, actor=responder)
    incident_merge(incident=second, into=third, actor=responder)
    with pytest.raises(LifecycleConflict, match="merge into that one"):
        incident_merge(incident=first, into=second, actor=responder)
    with pytest.raises(TransitionNotAvailable):
        incident_merge(incident=second, into=first, actor=responder)
    declared = make_incident("declared")
    with pytest.raises(LifecycleConflict, match="is declared"):
        incident_merge(incident=declared, into=first, actor=responder)
    closed = make_incident("out_of_scope")
    with pytest.raises(LifecycleConflict, match="only an open incident"):
        incident_merge(incident=first, into=closed, actor=responder)
    drill = make_incident(is_drill=True)
    with pytest.raises(ValidationError):
        incident_merge(incident=first, into=drill, actor=responder)
    assert Incident.objects.get(pk=first.pk).state == "detected"
    assert not events(first, "merge") and not events(declared, "merge")


def test_a_declared_incident_may_take_a_late_duplicate(make_incident, responder):
    declared, late = make_incident("declared"), make_incident(detected_at=timezone.now() - timedelta(days=3))
    incident_merge(incident=late, into=declared, actor=responder)
    declared.refresh_from_db()
    assert declared.state == "declared" and declared.detected_at == late.detected_at


def test_only_roles_with_the_merge_permission_may_merge(make_incident, auditor, outsider, manager):
    first, second = make_incident(), make_incident()
    for user in (auditor, outsider, None):
        with pytest.raises(ActionForbidden):
            incident_merge(incident=first, into=second, actor=user)
    assert incident_merge(incident=first, into=second, actor=manager).state == "merged"


def test_the_api_merges_and_answers_with_the_duplicate(api, make_incident, responder, auditor, outsider):
    survivor, duplicate = make_incident(), make_incident()
    url = f"/api/incidents/{duplicate.pk}/merge/"
    assert api.post(url, {"into": survivor.pk}, format="json").status_code == 401
    api.force_login(outsider)
    assert api.post(url, {"into": survivor.pk}, format="json").status_code == 404
    api.force_login(auditor)
    refused = api.post(url, {"into": survivor.pk}, format="json")
    assert refused.status_code == 403 and "merge_incident" in refused.json()["detail"]
    api.force_login(responder)
    assert api.post(url, {"into": duplicate.pk}, format="json").status_code == 400
    assert api.post(url, {"into": 999_999}, format="json").status_code == 400
    assert api.post(url, {}, format="json").status_code == 400
    unknown = api.post(url, {"into": survivor.pk, "surely_unknown": 1}, format="json")
    assert unknown.status_code == 400 and "surely_unknown" in unknown.json()["errors"]
    assert Incident.objects.get(pk=duplicate.pk).state == "detected"
    assert api.get(f"/api/incidents/{survivor.pk}/").json()["merged_into"] is None
    response = api.post(url, {"into": survivor.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "merged" and body["merged_into"] == survivor.pk and body["merged_at"]
    assert "merge" not in body["available_transitions"]
    again = api.post(url, {"into": survivor.pk}, format="json")
    assert again.status_code == 409 and again.json()["state"] == "merged"


def test_the_page_merges_and_links_both_incidents(client, make_incident, responder):
    survivor, duplicate = make_incident(), make_incident()
    client.force_login(responder)
    response = client.post(f"/incidents/{duplicate.pk}/merge/", {"merge-into": survivor.reference})
    assert response.status_code == 302 and response["Location"] == f"/incidents/{survivor.pk}/"
    page = client.get(f"/incidents/{survivor.pk}/").content.decode()
    assert f"/incidents/{duplicate.pk}/" in page and 'id="merged-duplicates"' in page
    page = client.get(f"/incidents/{duplicate.pk}/").content.decode()
    assert 'id="merged-into"' in page and survivor.reference in page
    assert client.post(f"/incidents/{survivor.pk}/merge/", {"merge-into": "BD-NOPE"}).status_code == 400
    assert client.post(f"/incidents/{survivor.pk}/merge/", {"merge-into": duplicate.pk}).status_code == 409


def test_the_page_refuses_merging_to_an_auditor(client, make_incident, auditor):
    first, second = make_incident(), make_incident()
    client.force_login(auditor)
    assert 'id="merge"' not in client.get(f"/incidents/{first.pk}/").content.decode()
    assert client.post(f"/incidents/{first.pk}/merge/", {"merge-into": second.pk}).status_code == 403
    assert Incident.objects.get(pk=first.pk).state == "detected"


def test_it_suggests_likely_duplicates_on_the_new_incidents_page(client, make_incident, responder, customer):
    now = timezone.now()
    older = make_incident(
        title="Malware beacon from the support portal", detected_at=now - timedelta(hours=6)
    )
    same_customer = make_incident(title="Unrelated wording", detected_at=now - timedelta(days=30))
    services.affected_customer_add(incident=same_customer, customer=customer, actor=responder)
    far_away = make_incident(
        title="Malware beacon from the support portal", detected_at=now - timedelta(days=30)
    )
    unrelated = make_incident(title="Lost laptop in a taxi", detected_at=now - timedelta(hours=1))
    closed = make_incident("out_of_scope", title="Malware beacon from the support portal")
    new = make_incident(title="Beacon from support portal malware", detected_at=now)
    services.affected_customer_add(incident=new, customer=customer, actor=responder)

    suggested = {suggestion.incident.pk: suggestion for suggestion in duplicate_suggestions(new)}

    assert older.pk in suggested and same_customer.pk in suggested
    assert unrelated.pk not in suggested and closed.pk not in suggested
    assert any("same customer" in reason for reason in suggested[same_customer.pk].reasons)
    assert any("similar title" in reason for reason in suggested[older.pk].reasons)
    # Far apart in time, no shared customer: similar words alone still suggest it, ranked lower.
    if far_away.pk in suggested:
        assert suggested[far_away.pk].score < suggested[older.pk].score
    client.force_login(responder)
    page = client.get(f"/incidents/{new.pk}/").content.decode()
    assert 'id="duplicate-suggestions"' in page and older.reference in page
    assert f"Merge into {older.reference}" in page


def test_token_similarity_counts_shared_words():
    assert token_similarity("Malware beacon on portal", "portal malware beacon") == 1.0
    assert token_similarity("Lost laptop", "Malware beacon") == 0.0
    assert 0 < token_similarity("Payroll email misdirected", "Payroll file misdirected to a stranger") < 1


def test_a_merged_incident_takes_no_new_files(api, responder, make_incident):
    duplicate, survivor = make_incident(), make_incident()
    incident_merge(incident=duplicate, into=survivor, actor=responder)
    api.force_login(responder)
    response = api.post(
        f"/api/incidents/{duplicate.pk}/files/",
        {"file": SimpleUploadedFile("late.txt", b"late")},
        format="multipart",
    )
    assert response.status_code == 409 and "surviving incident" in response.json()["detail"]


@pytest.mark.postgresql
def test_suggestions_use_trigram_similarity_on_postgresql(make_incident):
    now = timezone.now()
    typo = make_incident(title="Ransomware on the file srever", detected_at=now - timedelta(hours=2))
    new = make_incident(title="Ransomware on the file server", detected_at=now)
    [suggestion] = [s for s in duplicate_suggestions(new) if s.incident.pk == typo.pk]
    # Trigrams forgive the typo that whole-word overlap does not.
    assert suggestion.title_similarity > token_similarity(new.title, typo.title)


def test_the_breach_register_names_a_merged_duplicate_and_its_survivor(make_incident, responder, manager):
    from postmortems.evidence import REGISTER_COLUMNS, register_incidents, register_row

    survivor, duplicate = make_incident(), make_incident()
    incident_merge(incident=duplicate, into=survivor, actor=responder)
    scope = [heading for heading, _ in REGISTER_COLUMNS].index("scope")
    rows = {row[0]: row for row in map(register_row, register_incidents(viewer=manager))}
    assert rows[duplicate.reference][scope] == f"duplicate, merged into {survivor.reference}"
    assert rows[survivor.reference][scope] == "not yet triaged"


def test_suggestions_come_only_from_the_incidents_the_viewer_may_see(make_incident):
    now = timezone.now()
    hidden = make_incident(
        title="Malware beacon from the support portal", detected_at=now - timedelta(hours=1)
    )
    new = make_incident(title="Malware beacon from the support portal", detected_at=now)
    assert [s.incident.pk for s in duplicate_suggestions(new)] == [hidden.pk]
    assert duplicate_suggestions(new, visible=Incident.objects.exclude(pk=hidden.pk)) == []
