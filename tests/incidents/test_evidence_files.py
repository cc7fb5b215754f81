"""Evidence files (issue 10, item 2): upload with the SHA-256 of the bytes, size and type
limits, downloads that are always attachments, no deletion after declaration, superseding with
a reason, presence in the evidence pack, and permissions for every role."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from incidents import files, services
from incidents.models import AuditEvent, EvidenceFile, ReadLogEntry, evidence_storage
from tests.conftest import errors

CONFIRMATION = b"%PDF-1.7\nWritten confirmation of deletion by the wrong recipient.\n"


@pytest.fixture(autouse=True)
def evidence_root(settings, tmp_path) -> Path:
    """Evidence files go to a folder of this test only."""
    root = tmp_path / "evidence"
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture
def api():
    client = APIClient()
    client.raise_request_exception = False
    return client


def as_user(api, user):
    api.force_login(user)
    return api


def url(incident, *rest) -> str:
    return f"/api/incidents/{incident.pk}/files/" + "".join(f"{part}/" for part in rest)


def upload(api, incident, name="deletion-confirmation.pdf", content=CONFIRMATION, **fields):
    return api.post(
        url(incident),
        {"file": SimpleUploadedFile(name, content, content_type="application/pdf"), **fields},
        format="multipart",
    )


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def verbs(incident) -> list[str]:
    return list(
        AuditEvent.objects.filter(incident=incident).order_by("sequence").values_list("verb", flat=True)
    )


def test_it_uploads_a_file_and_answers_201_with_the_sha256_of_its_bytes(
    api, responder, make_incident, evidence_root
):
    incident = make_incident("triaged")
    response = upload(as_user(api, responder), incident, description="Recipient's written confirmation")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == hashlib.sha256(CONFIRMATION).hexdigest()
    assert body["size"] == len(CONFIRMATION)
    assert body["name"] == "deletion-confirmation.pdf"
    assert body["description"] == "Recipient's written confirmation"
    assert body["download_url"] == f"/api/incidents/{incident.pk}/files/{body['id']}/download/"
    evidence = EvidenceFile.objects.get(pk=body["id"])
    assert evidence.incident_id == incident.pk and evidence.uploaded_by == responder
    # The bytes are in the evidence storage under an opaque name, not the uploader's.
    [path] = stored_files(evidence_root)
    assert path.read_bytes() == CONFIRMATION and "confirmation" not in path.name
    event = AuditEvent.objects.get(incident=incident, verb="evidence_file_added")
    assert event.data["sha256"] == body["sha256"] and event.data["name"] == "deletion-confirmation.pdf"


def test_it_lists_the_files_of_an_incident(api, responder, make_incident):
    incident = make_incident()
    other = make_incident()
    upload(as_user(api, responder), incident, name="a.txt", content=b"first")
    upload(api, incident, name="b.log", content=b"second")
    upload(api, other, name="c.txt", content=b"elsewhere")
    response = api.get(url(incident))
    assert response.status_code == 200
    assert [(row["name"], row["sha256"]) for row in response.json()["results"]] == [
        ("a.txt", hashlib.sha256(b"first").hexdigest()),
        ("b.log", hashlib.sha256(b"second").hexdigest()),
    ]


def test_it_refuses_a_file_over_the_size_limit_with_413_and_stores_nothing(
    api, responder, make_incident, settings, evidence_root
):
    settings.EVIDENCE_MAX_BYTES = 16
    incident = make_incident()
    response = upload(as_user(api, responder), incident, content=b"x" * 17)
    assert response.status_code == 413, response.content
    assert response.json()["code"] == "file_too_large" and "16 bytes" in response.json()["detail"]
    assert not EvidenceFile.objects.exists() and stored_files(evidence_root) == []
    assert upload(api, incident, content=b"x" * 16).status_code == 201


def test_the_service_refuses_an_oversize_file_read_past_its_declared_size(responder, make_incident, settings):
    settings.EVIDENCE_MAX_BYTES = 8
    incident = make_incident()
    stream = io.BytesIO(b"y" * 9)
    stream.name = "notes.txt"  # no declared size: the limit is found while reading
    with pytest.raises(Exception) as refused:
        files.evidence_file_upload(incident=incident, actor=responder, upload=stream)
    assert type(refused.value).__name__ == "EvidenceTooLarge"
    assert not EvidenceFile.objects.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("invoice.exe", b"MZ\x90\x00"),
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("image.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("no-extension", b"plain"),
        ("report.txt", b"MZ\x90\x00 an executable under an innocent name"),
        ("cleanup.txt", b"#!/bin/sh\nrm -rf /\n"),
    ],
)
def test_it_refuses_a_type_that_is_not_evidence_with_400(
    api, responder, make_incident, evidence_root, name, content
):
    incident = make_incident()
    response = upload(as_user(api, responder), incident, name=name, content=content)
    assert response.status_code == 400, response.content
    assert "file" in errors(response)
    assert not EvidenceFile.objects.exists() and stored_files(evidence_root) == []


def test_it_refuses_an_empty_file_and_a_missing_one(api, responder, make_incident):
    incident = make_incident()
    assert upload(as_user(api, responder), incident, content=b"").status_code == 400
    response = api.post(url(incident), {"description": "no file"}, format="multipart")
    assert response.status_code == 400 and "file" in errors(response)


def test_it_downloads_as_an_attachment_never_inline(api, responder, make_incident, client):
    incident = make_incident()
    body = upload(as_user(api, responder), incident, name="Löschbestätigung.pdf").json()
    response = api.get(body["download_url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == CONFIRMATION
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''L%C3%B6schbest%C3%A4tigung.pdf" in response["Content-Disposition"]
    assert "inline" not in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Evidence-SHA256"] == body["sha256"]
    # The web route answers the same way.
    client.force_login(responder)
    page = client.get(f"/incidents/{incident.pk}/files/{body['id']}/download/")
    assert page.status_code == 200 and page["Content-Type"] == "application/octet-stream"
    assert page["Content-Disposition"] == response["Content-Disposition"]
    assert page["X-Content-Type-Options"] == "nosniff"


def test_it_deletes_a_file_before_declaration_and_audits_it(
    api, responder, make_incident, evidence_root, django_capture_on_commit_callbacks
):
    incident = make_incident("triaged")
    body = upload(as_user(api, responder), incident).json()
    with django_capture_on_commit_callbacks(execute=True):  # the bytes go once it committed
        response = api.delete(url(incident, body["id"]))
    assert response.status_code == 204
    assert not EvidenceFile.objects.exists() and stored_files(evidence_root) == []
    event = AuditEvent.objects.get(incident=incident, verb="evidence_file_deleted")
    assert event.data["sha256"] == body["sha256"] and event.actor == responder


@pytest.mark.parametrize("state", ["declared", "notified", "closed", "out_of_scope"])
def test_it_refuses_to_delete_once_declared_or_closed_with_409(api, responder, manager, make_incident, state):
    incident = make_incident(state)
    evidence = files.evidence_file_upload(
        incident=incident, actor=manager, upload=SimpleUploadedFile("proof.pdf", CONFIRMATION)
    )
    before = verbs(incident)
    response = as_user(api, manager).delete(url(incident, evidence.pk))
    assert response.status_code == 409
    assert "supersede" in response.json()["detail"]
    assert EvidenceFile.objects.filter(pk=evidence.pk).exists() and verbs(incident) == before


def test_it_supersedes_a_file_with_a_reason_keeping_the_old_one_and_audits_it(api, manager, make_incident):
    incident = make_incident("declared")
    old = upload(as_user(api, manager), incident, name="confirmation.pdf").json()
    newer = b"%PDF-1.7\nSigned confirmation.\n"
    response = api.post(
        url(incident, old["id"], "supersede"),
        {"file": SimpleUploadedFile("confirmation-signed.pdf", newer), "reason": "The signed copy arrived."},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["sha256"] == hashlib.sha256(newer).hexdigest() and new["supersedes"] == old["id"]
    previous = EvidenceFile.objects.get(pk=old["id"])
    assert previous.superseded_by_id == new["id"] and previous.superseded_reason == "The signed copy arrived."
    assert previous.superseded_at is not None
    # The old version's bytes are still there to download.
    assert b"".join(api.get(old["download_url"]).streaming_content) == CONFIRMATION
    event = AuditEvent.objects.get(incident=incident, verb="evidence_file_superseded")
    assert event.data["superseded"]["sha256"] == old["sha256"] and event.data["by"]["sha256"] == new["sha256"]
    assert event.data["reason"] == "The signed copy arrived."
    # Superseding needs a reason, and a superseded file is not superseded twice.
    no_reason = api.post(
        url(incident, new["id"], "supersede"), {"file": SimpleUploadedFile("x.pdf", b"x")}, format="multipart"
    )
    assert no_reason.status_code == 400 and "reason" in errors(no_reason)
    again = api.post(
        url(incident, old["id"], "supersede"),
        {"file": SimpleUploadedFile("x.pdf", b"x"), "reason": "again"},
        format="multipart",
    )
    assert again.status_code == 409


def test_every_file_is_in_the_evidence_pack_with_its_digest_and_bytes(responder, manager, make_incident):
    from postmortems.evidence import evidence_pack

    incident = make_incident("declared")
    first = files.evidence_file_upload(
        incident=incident, actor=responder, upload=SimpleUploadedFile("log.txt", b"login from 203.0.113.9")
    )
    second = files.evidence_file_supersede(
        evidence=first,
        actor=manager,
        upload=SimpleUploadedFile("log.txt", b"full log"),
        reason="Complete log",
    )
    pack = evidence_pack(incident)
    archive = zipfile.ZipFile(io.BytesIO(pack.content))
    listed = json.loads(archive.read("evidence-files.json"))
    assert [(row["id"], row["sha256"]) for row in listed] == [
        (first.pk, first.sha256),
        (second.pk, second.sha256),
    ]
    assert archive.read(f"evidence-files/{first.pk}-log.txt") == b"login from 203.0.113.9"
    assert archive.read(f"evidence-files/{second.pk}-log.txt") == b"full log"
    entries = {entry["path"]: entry for entry in json.loads(archive.read("manifest.json"))["files"]}
    entry = entries[f"evidence-files/{second.pk}-log.txt"]
    assert entry["sha256"] == entry["recorded_sha256"] == hashlib.sha256(b"full log").hexdigest()
    assert entry["intact"] is True


def test_the_evidence_pack_shows_a_file_whose_bytes_changed_in_storage(responder, make_incident):
    from postmortems.evidence import evidence_pack

    incident = make_incident()
    evidence = files.evidence_file_upload(
        incident=incident, actor=responder, upload=SimpleUploadedFile("log.txt", b"original")
    )
    Path(evidence_storage().path(evidence.storage_name)).write_bytes(b"tampered")
    manifest = evidence_pack(incident).manifest
    [entry] = [entry for entry in manifest["files"] if entry["path"].startswith("evidence-files/")]
    assert entry["intact"] is False and entry["recorded_sha256"] == evidence.sha256


def test_an_auditor_reads_and_downloads_but_cannot_upload_or_delete(api, auditor, responder, make_incident):
    incident = make_incident()
    body = upload(as_user(api, responder), incident).json()
    auditor_api = as_user(APIClient(), auditor)
    refused = upload(auditor_api, incident, name="mine.txt", content=b"x")
    assert refused.status_code == 403 and "add_evidencefile" in refused.json()["detail"]
    assert auditor_api.delete(url(incident, body["id"])).status_code == 403
    assert auditor_api.get(url(incident)).status_code == 200
    download = auditor_api.get(body["download_url"])
    assert download.status_code == 200
    entry = ReadLogEntry.objects.filter(user=auditor, route="api:incident-file-download").get()
    assert entry.object_type == "evidence_file" and entry.object_id == str(body["id"])
    assert EvidenceFile.objects.count() == 1


def test_anonymous_users_get_401_and_outsiders_404(api, outsider, responder, make_incident):
    incident = make_incident()
    body = upload(as_user(APIClient(), responder), incident).json()
    anonymous = APIClient()
    assert upload(anonymous, incident).status_code == 401
    assert anonymous.get(url(incident)).status_code == 401
    assert anonymous.get(body["download_url"]).status_code == 401
    stranger = as_user(api, outsider)
    assert upload(stranger, incident).status_code == 404
    assert stranger.get(body["download_url"]).status_code == 404
    assert EvidenceFile.objects.count() == 1


def test_the_web_routes_follow_the_same_permissions(client, auditor, outsider, responder, make_incident):
    incident = make_incident()
    evidence = files.evidence_file_upload(
        incident=incident, actor=responder, upload=SimpleUploadedFile("a.txt", b"a")
    )
    download = f"/incidents/{incident.pk}/files/{evidence.pk}/download/"
    assert client.get(download).status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get(download).status_code == 404
    client.force_login(auditor)
    assert client.get(download).status_code == 200
    refused = client.post(
        f"/incidents/{incident.pk}/files/", {"evidence-file": SimpleUploadedFile("b.txt", b"b")}
    )
    assert refused.status_code == 403
    assert client.post(f"/incidents/{incident.pk}/files/{evidence.pk}/delete/").status_code == 403
    assert EvidenceFile.objects.count() == 1


def test_it_uploads_from_the_incident_page_and_lists_the_digest(client, responder, make_incident):
    incident = make_incident()
    client.force_login(responder)
    page = client.get(f"/incidents/{incident.pk}/")
    assert 'enctype="multipart/form-data"' in page.content.decode()
    response = client.post(
        f"/incidents/{incident.pk}/files/",
        {
            "evidence-file": SimpleUploadedFile("mail.eml", b"From: a@b\n\nhello"),
            "evidence-description": "The mail",
        },
    )
    assert response.status_code == 302
    page = client.get(f"/incidents/{incident.pk}/")
    assert hashlib.sha256(b"From: a@b\n\nhello").hexdigest() in page.content.decode()
    refused = client.post(
        f"/incidents/{incident.pk}/files/", {"evidence-file": SimpleUploadedFile("x.exe", b"MZ")}
    )
    assert refused.status_code == 400 and "not accepted as evidence" in refused.content.decode()


def test_the_page_refuses_a_deletion_after_declaration(client, manager, make_incident):
    incident = make_incident("declared")
    evidence = files.evidence_file_upload(
        incident=incident, actor=manager, upload=SimpleUploadedFile("a.txt", b"a")
    )
    client.force_login(manager)
    page = client.get(f"/incidents/{incident.pk}/")
    assert f"/files/{evidence.pk}/delete/" not in page.content.decode()
    response = client.post(f"/incidents/{incident.pk}/files/{evidence.pk}/delete/")
    assert response.status_code == 409 and EvidenceFile.objects.filter(pk=evidence.pk).exists()


def test_it_attaches_a_file_to_a_note_of_the_same_incident_only(api, responder, make_incident):
    incident = make_incident()
    other = make_incident()
    note = services.note_add(incident=incident, actor=responder, text="The recipient confirmed deletion.")
    foreign = services.note_add(incident=other, actor=responder, text="Elsewhere.")
    response = upload(as_user(api, responder), incident, note=note.pk)
    assert response.status_code == 201 and response.json()["note"] == note.pk
    refused = upload(api, incident, note=foreign.pk)
    assert refused.status_code == 400 and "note" in errors(refused)


def test_it_attaches_a_file_to_a_playbook_task_of_the_incident(api, responder, make_incident):
    from tests.triage.conftest import IN_SCOPE
    from triage.models import ResponseTask
    from triage.services import assessment_record

    incident = make_incident()
    inputs: dict[str, Any] = dict(IN_SCOPE)
    assessment_record(incident=incident, actor=responder, **inputs)
    task = ResponseTask.objects.filter(incident=incident).order_by("order").first()
    assert task is not None and "confirm the deletion in writing" in "".join(
        ResponseTask.objects.filter(incident=incident).values_list("description", flat=True)
    )
    response = upload(as_user(api, responder), incident, task=task.pk)
    assert response.status_code == 201 and response.json()["task"] == task.pk
    content_type = EvidenceFile.objects.get(pk=response.json()["id"]).task_content_type
    assert content_type is not None and content_type.model == "responsetask"
    refused = upload(api, make_incident(), task=task.pk)
    assert refused.status_code == 400 and "task" in errors(refused)


def test_a_retried_upload_with_the_same_idempotency_key_stores_one_file(api, responder, make_incident):
    incident = make_incident()
    as_user(api, responder)
    answers = [
        api.post(
            url(incident),
            {"file": SimpleUploadedFile("log.txt", b"retry me"), "description": "once"},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="upload-1",
        )
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[1]["Idempotent-Replayed"] == "true" and answers[0].json() == answers[1].json()
    assert EvidenceFile.objects.count() == 1


def test_the_upload_form_still_needs_its_csrf_token(responder, make_incident):
    from django.test import Client

    incident = make_incident()
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    refused = client.post(
        f"/incidents/{incident.pk}/files/", {"evidence-file": SimpleUploadedFile("a.txt", b"a")}
    )
    assert refused.status_code == 403 and not EvidenceFile.objects.exists()
    client.get(f"/incidents/{incident.pk}/")
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        f"/incidents/{incident.pk}/files/",
        {"evidence-file": SimpleUploadedFile("a.txt", b"a"), "csrfmiddlewaretoken": token},
    )
    assert accepted.status_code == 302 and EvidenceFile.objects.count() == 1


def test_the_list_pages_with_cursors_and_refuses_unknown_parameters(api, responder, make_incident):
    incident = make_incident()
    as_user(api, responder)
    for name in ("a.txt", "b.txt", "c.txt"):
        upload(api, incident, name=name, content=name.encode())
    first = api.get(url(incident), {"page_size": 2}).json()
    assert [row["name"] for row in first["results"]] == ["a.txt", "b.txt"]
    second = api.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["c.txt"]
    refused = api.get(url(incident), {"colour": "blue"})
    assert refused.status_code == 400 and "colour" in errors(refused)
