"""The confidential post-mortem: who reads it, how it is written (versions, an audit trail that
names changes without their text), completed, reviewed, and how its customer summary goes into
a notice."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from incidents.audit import verify_chain
from notifications import services as notification_services
from postmortems import services
from postmortems.models import PostMortem, PostMortemVersion
from tests.conftest import COMPLETE_POST_MORTEM, complete_post_mortem
from tests.notifications.support import approve


def _api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _url(incident, tail: str = "") -> str:
    return f"/api/incidents/{incident.pk}/post-mortem/{tail}"


@pytest.fixture
def in_post_mortem(make_incident):
    return make_incident(state="post_mortem")


def test_responders_get_403_and_managers_and_auditors_read_it(in_post_mortem, personas):
    page = f"/incidents/{in_post_mortem.pk}/post-mortem/"
    answers = {
        role: (_api(user).get(_url(in_post_mortem)).status_code, _client(user).get(page).status_code)
        for role, user in personas.items()
    }

    assert answers == {
        "responder": (403, 403),
        "incident_manager": (200, 200),
        "auditor": (200, 200),
        "outsider": (404, 404),
    }


def test_the_incident_page_links_the_post_mortem_only_for_those_who_may_read_it(
    in_post_mortem, responder, manager
):
    assert "Open the post-mortem" in _client(manager).get(f"/incidents/{in_post_mortem.pk}/").content.decode()
    assert (
        "Open the post-mortem"
        not in _client(responder).get(f"/incidents/{in_post_mortem.pk}/").content.decode()
    )


def test_a_change_is_a_new_version_audited_by_digest_never_by_text(in_post_mortem, manager):
    answer = _api(manager).patch(
        _url(in_post_mortem),
        {"root_cause": "A mistyped address.", "response_sufficient": True},
        format="json",
    )

    assert answer.status_code == 200, answer.json()
    assert answer.json()["version"] == 2 and answer.json()["root_cause"] == "A mistyped address."
    event = in_post_mortem.audit_events.get(verb="post_mortem_updated")
    assert event.data["fields"] == ["response_sufficient", "root_cause"] and event.data["version"] == 2
    assert "A mistyped address." not in json.dumps(event.data)
    snapshot = PostMortemVersion.objects.get(post_mortem__incident=in_post_mortem, version=2)
    canonical = json.dumps(snapshot.content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == event.data["content_sha256"]
        == snapshot.content_sha256
    )
    assert verify_chain() == []


def test_nothing_changed_is_no_new_version(in_post_mortem, manager):
    services.post_mortem_update(incident=in_post_mortem, actor=manager, changes={"root_cause": "X"})
    services.post_mortem_update(incident=in_post_mortem, actor=manager, changes={"root_cause": "X"})

    assert PostMortem.objects.get(incident=in_post_mortem).version == 2
    assert in_post_mortem.audit_events.filter(verb="post_mortem_updated").count() == 1


def test_completing_names_every_missing_finding_then_freezes_it(in_post_mortem, manager):
    missing = _api(manager).post(_url(in_post_mortem, "complete/"), format="json")
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {
        "timeline_summary",
        "root_cause",
        "what_went_well",
        "what_did_not_go_well",
        "response_sufficient",
        "procedures_sufficient",
    }
    _api(manager).patch(
        _url(in_post_mortem), {**COMPLETE_POST_MORTEM, "procedure_changes": ""}, format="json"
    )
    needs_changes = _api(manager).post(_url(in_post_mortem, "complete/"), format="json")
    assert needs_changes.status_code == 400 and list(needs_changes.json()["errors"]) == ["procedure_changes"]

    _api(manager).patch(_url(in_post_mortem), {"procedure_changes": "Add recipient checks."}, format="json")
    done = _api(manager).post(_url(in_post_mortem, "complete/"), format="json")
    frozen = _api(manager).patch(_url(in_post_mortem), {"root_cause": "Other"}, format="json")

    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert frozen.status_code == 409
    assert "post_mortem_completed" in list(in_post_mortem.audit_events.values_list("verb", flat=True))


def test_only_an_auditor_reviews_and_only_a_completed_post_mortem(in_post_mortem, manager, auditor):
    draft_review = _api(auditor).post(_url(in_post_mortem, "review/"), {"note": "Checked."}, format="json")
    complete_post_mortem(in_post_mortem, manager)
    by_manager = _api(manager).post(_url(in_post_mortem, "review/"), {"note": "Fine."}, format="json")
    empty = _api(auditor).post(_url(in_post_mortem, "review/"), {"note": ""}, format="json")
    reviewed = _api(auditor).post(
        _url(in_post_mortem, "review/"), {"note": "Follow-up evidence seen for each item."}, format="json"
    )
    twice = _api(auditor).post(_url(in_post_mortem, "review/"), {"note": "Again."}, format="json")

    assert (draft_review.status_code, by_manager.status_code, empty.status_code) == (409, 403, 400)
    assert reviewed.status_code == 200
    assert reviewed.json()["status"] == "reviewed" and reviewed.json()["reviewed_by"] == auditor.username
    assert twice.status_code == 409


def test_auditors_and_responders_cannot_write_it(in_post_mortem, auditor, responder):
    for user in (auditor, responder):
        assert _api(user).patch(_url(in_post_mortem), {"root_cause": "x"}, format="json").status_code == 403
        assert _api(user).post(_url(in_post_mortem, "complete/"), format="json").status_code == 403


def test_each_summary_statement_names_a_recorded_finding(in_post_mortem, manager):
    unknown = _api(manager).patch(
        _url(in_post_mortem),
        {"customer_summary": [{"text": "We fixed it.", "finding": "gossip"}]},
        format="json",
    )
    unrecorded = _api(manager).patch(
        _url(in_post_mortem),
        {"customer_summary": [{"text": "We fixed it.", "finding": "root_cause"}]},
        format="json",
    )
    _api(manager).patch(_url(in_post_mortem), {"root_cause": "No recipient check."}, format="json")
    sourced = _api(manager).patch(
        _url(in_post_mortem),
        {"customer_summary": [{"text": "The cause was a missing recipient check.", "finding": "root_cause"}]},
        format="json",
    )

    assert unknown.status_code == 400 and unrecorded.status_code == 400
    assert "still empty: root cause" in str(unrecorded.json())
    assert sourced.status_code == 200
    assert sourced.json()["customer_summary"] == [
        {"text": "The cause was a missing recipient check.", "finding": "root_cause"}
    ]


def test_the_summary_goes_into_an_update_and_the_trail_records_the_version_sent(
    make_incident, manager, smtp_server
):
    from notifications.sender import deliveries_send_due

    incident = make_incident(state="declared")
    approve(notification_services.notice_draft(incident=incident, actor=manager, kind="initial"), manager)
    deliveries_send_due()
    from incidents import services as incident_services

    incident = incident_services.incident_begin_post_mortem(incident=incident, actor=manager)
    services.post_mortem_update(
        incident=incident,
        actor=manager,
        changes={
            **COMPLETE_POST_MORTEM,
            "root_cause": "Internal: Eve mistyped the address at 02:13.",
            "customer_summary": [{"text": "We now check every recipient.", "finding": "procedure_changes"}],
        },
    )
    update = notification_services.notice_draft(incident=incident, actor=manager, kind="update")
    draft_refused = _api(manager).post(
        _url(incident, "summary-into-notice/"), {"notice": update.number}, format="json"
    )
    services.post_mortem_complete(incident=incident, actor=manager)
    taken = _api(manager).post(
        _url(incident, "summary-into-notice/"), {"notice": update.number}, format="json"
    )
    approve(update, manager)
    deliveries_send_due()

    assert draft_refused.status_code == 409
    assert taken.status_code == 200, taken.json()
    message = smtp_server.received[-1]
    assert "We now check every recipient." in message.text()
    assert "Eve" not in message.text() and "Eve" not in message.html()
    sent = incident.audit_events.get(verb="post_mortem_summary_sent")
    assert sent.data == {
        "notice": update.number,
        "version": PostMortem.objects.get(incident=incident).version,
    }
    assert incident.audit_events.filter(verb="post_mortem_summary_taken").count() == 1


def test_the_admin_cannot_edit_a_post_mortem_behind_the_audit_trail(in_post_mortem, superuser):
    post_mortem = PostMortem.objects.get(incident=in_post_mortem)
    client = _client(superuser)

    change = client.post(
        f"/admin/postmortems/postmortem/{post_mortem.pk}/change/", {"root_cause": "Rewritten"}
    )
    add = client.get("/admin/postmortems/actionitem/add/")

    assert change.status_code == 403 and add.status_code == 403
    post_mortem.refresh_from_db()
    assert post_mortem.root_cause == ""


def test_the_page_lets_a_manager_write_and_complete_it(in_post_mortem, manager):
    client = _client(manager)
    form = {
        **{k: v for k, v in COMPLETE_POST_MORTEM.items() if isinstance(v, str)},
        "response_sufficient": "yes",
        "procedures_sufficient": "no",
        "summary_0_text": "We added recipient checks.",
        "summary_0_finding": "procedure_changes",
    }

    saved = client.post(f"/incidents/{in_post_mortem.pk}/post-mortem/", form)
    orphan = client.post(f"/incidents/{in_post_mortem.pk}/post-mortem/", {**form, "summary_1_text": "Loose."})
    completed = client.post(f"/incidents/{in_post_mortem.pk}/post-mortem/complete/")
    page = client.get(f"/incidents/{in_post_mortem.pk}/post-mortem/").content.decode()

    assert saved.status_code == 302 and completed.status_code == 302
    assert orphan.status_code == 400 and "Say which finding" in orphan.content.decode()
    assert "We added recipient checks." in page and "Completed" in page


def test_a_notice_takes_no_free_text_as_a_post_mortem_summary(make_incident, manager):
    incident = make_incident(state="declared")
    notification_services.notice_approve(
        notice=notification_services.notice_draft(incident=incident, actor=manager, kind="initial"),
        actor=manager,
    )
    update = notification_services.notice_draft(incident=incident, actor=manager, kind="update")
    url = f"/api/incidents/{incident.pk}/notices/{update.number}/"

    patched = _api(manager).patch(url, {"post_mortem_summary": "Free text no finding backs."}, format="json")
    created = _api(manager).post(
        f"/api/incidents/{incident.pk}/notices/",
        {"kind": "update", "post_mortem_summary": "Free text."},
        format="json",
    )
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        notification_services.notice_update_draft(
            notice=update, actor=manager, changes={"post_mortem_summary": "Free text."}
        )

    assert patched.status_code == 400 and created.status_code == 400
    update.refresh_from_db()
    assert update.post_mortem_summary == ""
