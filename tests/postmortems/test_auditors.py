"""What external auditors get and leave behind: a read log of every record they open, accounts
that expire, the breach register (CSV, XLSX), evidence packs whose manifest verifies, and the
audit trail's verification on their site; and that they write nothing but their reviews."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.models import AccountExpiry, AuditEvent, ReadLogEntry
from notifications import services as notification_services
from notifications.sender import deliveries_send_due
from postmortems import services
from tests.audit_tampering import audit_triggers_disabled
from tests.conftest import complete_post_mortem
from tests.notifications.support import approve


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _streamed(response: Any) -> str:
    """The body of a streamed response as text."""
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()  # type: ignore[arg-type]  # bytes, not async


def _api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def notified(make_incident, manager, smtp_server):
    """A declared incident whose initial notice went through the real SMTP server."""
    incident = make_incident(state="declared", title='=HYPERLINK("http://evil.example","click")')
    notice = notification_services.notice_draft(incident=incident, actor=manager, kind="initial")
    approve(notice, manager)  # the approval, then the delivery worker
    deliveries_send_due()
    incident.refresh_from_db()
    return incident


# The read log -----------------------------------------------------------------------------------


def test_each_record_an_auditor_opens_writes_one_read_log_row(notified, auditor, manager):
    pages = [
        f"/incidents/{notified.pk}/",
        f"/api/incidents/{notified.pk}/",
        f"/api/incidents/{notified.pk}/clocks/",
        f"/audit/incidents/incident/{notified.pk}/change/",
        "/audit/",
        "/api/read-log/",
    ]
    client = _client(auditor)
    for path in pages:
        before = ReadLogEntry.objects.count()
        assert client.get(path).status_code == 200, path
        assert ReadLogEntry.objects.count() == before + 1, path
    _client(manager).get(f"/incidents/{notified.pk}/")

    entries = list(ReadLogEntry.objects.order_by("id"))
    assert {entry.username for entry in entries} == {auditor.username}
    assert [entry.path for entry in entries] == pages
    assert [(entry.object_type, entry.object_id) for entry in entries] == [
        ("incident", str(notified.pk)),
        ("incident", str(notified.pk)),
        ("incident", str(notified.pk)),  # the incident's clocks
        ("incident", str(notified.pk)),
        ("index", ""),
        ("read_log", ""),
    ]


def test_the_read_log_names_notices_post_mortems_and_evidence_packs(notified, manager, auditor):
    from incidents import services as incident_services

    incident = incident_services.incident_begin_post_mortem(incident=notified, actor=manager)
    client = _client(auditor)
    for path in (
        f"/incidents/{incident.pk}/notices/1/",
        f"/api/incidents/{incident.pk}/notices/1/",
        f"/incidents/{incident.pk}/post-mortem/",
        f"/api/incidents/{incident.pk}/post-mortem/",
        f"/audit/incidents/{incident.pk}/evidence-pack.zip",
        f"/api/clocks/{incident.clocks.get().pk}/",
    ):
        client.get(path)

    read = list(ReadLogEntry.objects.order_by("id").values_list("object_type", "object_id"))
    assert read == [
        ("notice", f"{incident.pk}/1"),
        ("notice", f"{incident.pk}/1"),
        ("post_mortem", str(incident.pk)),
        ("post_mortem", str(incident.pk)),
        ("evidence_pack", str(incident.pk)),
        ("clock", str(incident.clocks.get().pk)),
    ]


def test_the_read_log_is_listed_read_only_for_auditors_and_managers(notified, auditor, manager, responder):
    _client(auditor).get(f"/incidents/{notified.pk}/")

    listed = _api(manager).get("/api/read-log/").json()["results"]
    assert listed[0]["username"] == auditor.username and listed[0]["object_id"] == str(notified.pk)
    assert _api(responder).get("/api/read-log/").status_code == 403
    assert _api(manager).post("/api/read-log/", {}, format="json").status_code in (403, 405)
    assert _api(auditor).delete("/api/read-log/").status_code in (403, 405)
    assert ReadLogEntry.objects.filter(username=auditor.username).count() == 1  # the page; writes log nothing


# Expiry -----------------------------------------------------------------------------------------


def test_an_expired_auditor_cannot_log_in_anywhere(auditor):
    AccountExpiry.objects.filter(user=auditor).update(expires_at=timezone.now() - timedelta(minutes=1))
    credentials = {"username": auditor.username, "password": "correct horse battery"}

    site = Client().post("/accounts/login/", credentials)
    audit = Client().post("/audit/login/", credentials)

    assert site.status_code == 200 and "_auth_user_id" not in site.client.session
    assert audit.status_code == 200 and "_auth_user_id" not in audit.client.session


def test_an_auditor_without_an_expiry_date_cannot_log_in(auditor):
    AccountExpiry.objects.filter(user=auditor).delete()

    answer = Client().post(
        "/accounts/login/", {"username": auditor.username, "password": "correct horse battery"}
    )

    assert "_auth_user_id" not in answer.client.session


def test_a_valid_auditor_logs_in(auditor):
    client = Client()
    client.post("/accounts/login/", {"username": auditor.username, "password": "correct horse battery"})
    assert "_auth_user_id" in client.session


def test_a_session_or_token_open_when_the_account_expires_is_refused(auditor):
    from incidents.api.authentication import api_token_create

    client = _client(auditor)
    _token, key = api_token_create(user=auditor, name="t", lifetime=timedelta(days=1))
    assert client.get("/incidents/").status_code == 200
    AccountExpiry.objects.filter(user=auditor).update(expires_at=timezone.now() - timedelta(seconds=1))

    page = client.get("/incidents/")
    api = APIClient().get("/api/incidents/", HTTP_AUTHORIZATION=f"Token {key}")

    assert page.status_code == 302 and page["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session
    assert api.status_code == 401 and "expired" in api.json()["detail"]


# The register -----------------------------------------------------------------------------------


def test_the_register_lists_every_incident_notified_or_not_and_neutralises_formulas(
    make_incident, notified, auditor
):
    make_incident(state="out_of_scope", title="Policy question")
    make_incident(state="customer_event", title="Customer shared a password")
    make_incident(state="detected", title="Drill: lost laptop", is_drill=True)
    make_incident(state="triaged", title="+cmd|' /C calc'!A0")

    answer = _client(auditor).get("/audit/register.csv")
    rows = list(csv.DictReader(io.StringIO(_streamed(answer))))

    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    by_title = {row["title"]: row for row in rows}
    assert {"Policy question", "Customer shared a password", "Drill: lost laptop"} <= set(by_title)
    assert by_title["Policy question"]["scope"].startswith("out of scope")
    assert by_title["Drill: lost laptop"]["drill"] == "yes"
    assert by_title["Drill: lost laptop"]["declared_at"] == ""
    assert '\'=HYPERLINK("http://evil.example","click")' in by_title
    assert "'+cmd|' /C calc'!A0" in by_title
    notified_row = by_title['\'=HYPERLINK("http://evil.example","click")']
    assert notified_row["customers_notified"] == "1 of 1"
    assert notified_row["declared_at"].endswith("UTC")


def test_the_xlsx_register_holds_text_never_formulas(notified, auditor):
    from openpyxl import load_workbook

    answer = _client(auditor).get("/audit/register.xlsx")
    sheet = load_workbook(io.BytesIO(answer.content))["Register"]
    rows = list(sheet.iter_rows(values_only=False))
    header = [cell.value for cell in rows[0]]
    title = rows[1][header.index("title")]

    assert answer.status_code == 200
    assert title.data_type == "s" and str(title.value).startswith("'=HYPERLINK")
    assert all(cell.data_type != "f" for row in rows for cell in row)


def test_the_register_takes_a_period_and_refuses_a_bad_date(make_incident, auditor):
    from incidents.models import Incident

    old = make_incident(title="Old one")
    Incident.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    make_incident(title="New one")
    today = timezone.now().date()

    recent = _streamed(
        _client(auditor).get("/audit/register.csv", {"from": (today - timedelta(days=30)).isoformat()})
    )
    bad = _client(auditor).get("/audit/register.csv", {"from": "30/11/2026"})
    reversed_period = _client(auditor).get("/audit/register.xlsx", {"from": "2026-12-02", "to": "2026-01-01"})

    assert "New one" in recent and "Old one" not in recent
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.content.decode()
    assert reversed_period.status_code == 400


def test_only_auditors_and_superusers_download_the_register(responder, manager, superuser):
    assert _client(responder).get("/audit/register.csv").status_code == 302  # to the audit login
    assert _client(manager).get("/audit/register.xlsx").status_code == 302
    assert _client(superuser).get("/audit/register.csv").status_code == 200


# The evidence pack ------------------------------------------------------------------------------


def test_the_evidence_pack_holds_what_was_sent_and_its_manifest_verifies(
    notified, auditor, manager, smtp_server
):
    from incidents import services as incident_services

    incident = incident_services.incident_begin_post_mortem(incident=notified, actor=manager)
    complete_post_mortem(incident, manager)
    item = services.action_item_create(incident=incident, actor=manager, description="Add checks")
    services.action_item_update(item=item, actor=manager, changes={"status": "done", "resolution": "ok"})
    services.post_mortem_review(incident=incident, actor=auditor, note="Seen.")
    from incidents.checkpoints import audit_checkpoints_write

    checkpoint = next(
        c for c in audit_checkpoints_write() if c.chain == "incident" and c.subject_id == incident.pk
    )

    answer = _client(auditor).get(f"/audit/incidents/{incident.pk}/evidence-pack.zip")
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    manifest = json.loads(archive.read("manifest.json"))

    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(archive.namelist()) - {"manifest.json"}
    for path, entry in listed.items():
        content = archive.read(path)
        assert hashlib.sha256(content).hexdigest() == entry["sha256"] and len(content) == entry["bytes"], path
    emls = [path for path in listed if path.endswith(".eml")]
    assert len(emls) == 1
    # Byte for byte what the SMTP server received (SMTP transparency undone by the server),
    # put back together from the contact's own headers and the body shared by its customer.
    assert archive.read(emls[0]) == smtp_server.received[0].raw
    from notifications.models import SentMessage

    recorded = SentMessage.objects.get()
    assert recorded.shared_body_id is not None and bytes(recorded.raw) == b""
    assert len(bytes(recorded.head)) < len(smtp_server.received[0].raw) // 2
    for name in ("incident.json", "deliveries.json", "clocks.json", "audit-events.json", "post-mortem.json"):
        assert name in listed
    post_mortem = json.loads(archive.read("post-mortem.json"))
    assert post_mortem["status"] == "reviewed" and post_mortem["review_note"] == "Seen."
    assert json.loads(archive.read("action-items.json"))[0]["status"] == "done"
    assert json.loads(archive.read("audit-verification.json")) == {"intact": True, "breaks": []}
    head = AuditEvent.objects.filter(incident=incident).order_by("-sequence").first()
    assert head is not None
    assert manifest["audit_chain"] == {
        "length": head.sequence,
        "head_hash": head.hash,
        "checkpoint": checkpoint.as_json(),
    }
    assert json.loads(archive.read("audit-checkpoint.json"))["head_hash"] == head.hash


def test_an_outsider_gets_no_evidence_pack(notified, responder):
    assert _client(responder).get(f"/audit/incidents/{notified.pk}/evidence-pack.zip").status_code == 302


# Verification and read-only ---------------------------------------------------------------------


def test_the_auditor_site_verifies_the_trail_and_shows_a_break(notified, auditor):
    intact = _client(auditor).get("/audit/verify/").content.decode()
    event = AuditEvent.objects.filter(incident=notified).order_by("sequence")[1]
    with audit_triggers_disabled():
        AuditEvent.objects.filter(pk=event.pk).update(actor_username="mallory")
    broken = _client(auditor).get("/audit/verify/").content.decode()

    assert 'id="audit-trail-intact"' in intact
    assert "content does not match hash" in broken and 'id="audit-trail-intact"' not in broken


def test_the_audit_index_links_the_exports(auditor):
    page = _client(auditor).get("/audit/").content.decode()
    for target in ("register.csv", "register.xlsx", "verify/"):
        assert f'href="/audit/{target}"' in page


WRITES = [
    ("post", "/api/incidents/", {"title": "x", "detection_source": "staff_escalation"}),
    ("patch", "/api/incidents/{incident}/", {"title": "x"}),
    ("post", "/api/incidents/{incident}/transitions/triage/", {}),
    ("post", "/api/incidents/{incident}/affected-customers/", {"customer": "FIXTURE-001"}),
    ("post", "/api/incidents/{incident}/notices/", {"kind": "update"}),
    ("post", "/api/incidents/{incident}/withholdings/", {}),
    ("post", "/api/customers/", {"name": "x", "account_reference": "x"}),
    ("patch", "/api/incidents/{incident}/post-mortem/", {"root_cause": "x"}),
    ("post", "/api/incidents/{incident}/post-mortem/complete/", {}),
    ("post", "/api/incidents/{incident}/post-mortem/summary-into-notice/", {"notice": 1}),
    ("post", "/api/incidents/{incident}/action-items/", {"description": "x"}),
    ("patch", "/api/action-items/{item}/", {"status": "done", "resolution": "x"}),
    ("put", "/api/incidents/{incident}/drill/", {"scenario": "x", "held_on": "2026-01-01"}),
    ("post", "/api/incidents/{incident}/drill/complete/", {"outcome": "x"}),
]


def test_auditors_write_nothing_but_their_two_review_records(make_incident, manager, auditor):
    incident = make_incident(state="post_mortem")
    complete_post_mortem(incident, manager)
    item = services.action_item_create(incident=incident, actor=manager, description="Add checks")
    services.action_item_update(item=item, actor=manager, changes={"status": "done", "resolution": "ok"})
    api = _api(auditor)
    before = AuditEvent.objects.count()

    refused = {
        (method, path): getattr(api, method)(
            path.format(incident=incident.pk, item=item.pk), body, format="json"
        ).status_code
        for method, path, body in WRITES
    }
    page_writes = [
        _client(auditor).post(f"/incidents/{incident.pk}/post-mortem/", {"root_cause": "x"}).status_code,
        _client(auditor)
        .post(f"/incidents/{incident.pk}/action-items/", {"item-description": "x"})
        .status_code,
        _client(auditor).post(f"/incidents/{incident.pk}/edit/", {"title": "x"}).status_code,
    ]
    assert AuditEvent.objects.count() == before
    review = api.post(f"/api/incidents/{incident.pk}/post-mortem/review/", {"note": "Seen."}, format="json")
    verify = api.post(f"/api/action-items/{item.pk}/verify/", {"note": "Seen."}, format="json")

    assert set(refused.values()) == {403}, refused
    assert page_writes == [403, 403, 403]
    assert (review.status_code, verify.status_code) == (200, 200)
    assert list(
        AuditEvent.objects.filter(incident=incident).order_by("-sequence").values_list("verb", flat=True)[:2]
    ) == [
        "action_item_verified",
        "post_mortem_reviewed",
    ]


def test_the_evidence_pack_is_linked_from_the_incident_for_auditors(notified, auditor, responder):
    link = f'href="/audit/incidents/{notified.pk}/evidence-pack.zip"'

    assert link in _client(auditor).get(f"/audit/incidents/incident/{notified.pk}/change/").content.decode()
    assert link in _client(auditor).get(f"/incidents/{notified.pk}/").content.decode()
    assert link not in _client(responder).get(f"/incidents/{notified.pk}/").content.decode()


def test_an_expired_auditor_is_told_why_at_login_and_over_the_api(auditor):
    AccountExpiry.objects.filter(user=auditor).update(expires_at=timezone.now() - timedelta(minutes=1))
    right = Client().post(
        "/accounts/login/", {"username": auditor.username, "password": "correct horse battery"}
    )
    wrong = Client().post("/accounts/login/", {"username": auditor.username, "password": "not it"})
    session = APIClient()
    session.force_login(auditor)
    api = session.get("/api/incidents/")

    assert "This account expired at" in right.content.decode()
    assert "This account expired at" not in wrong.content.decode()  # no hint without the password
    assert api.status_code == 401 and "expired" in api.json()["detail"]
