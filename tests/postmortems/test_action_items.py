"""Action items (created, settled, verified by an auditor, listed when overdue, reminded once
when due and once when overdue), what closing needs, and clocks that stay late."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services as incident_services
from incidents.exceptions import LifecycleConflict
from incidents.models import Customer
from notifications import services as notification_services
from notifications.models import Clock, OutgoingEmail
from notifications.sender import outbox_send_due
from postmortems import services
from postmortems.models import ActionItemReminder
from postmortems.reminders import action_item_reminders_scan
from tests.conftest import complete_post_mortem


def _api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def in_post_mortem(make_incident):
    return make_incident(state="post_mortem")


def test_managers_create_and_list_action_items_through_the_api(in_post_mortem, manager, responder):
    created = _api(manager).post(
        f"/api/incidents/{in_post_mortem.pk}/action-items/",
        {
            "description": "Add recipient checks",
            "owner": responder.username,
            "due_at": "2026-12-20T09:00:00+01:00",
        },
        format="json",
    )
    refused = _api(responder).post(
        f"/api/incidents/{in_post_mortem.pk}/action-items/", {"description": "x"}, format="json"
    )
    naive = _api(manager).post(
        f"/api/incidents/{in_post_mortem.pk}/action-items/",
        {"description": "x", "due_at": "2026-12-20T09:00:00"},
        format="json",
    )
    listed = _api(responder).get(f"/api/incidents/{in_post_mortem.pk}/action-items/").json()["results"]

    assert created.status_code == 201, created.json()
    assert (
        created.json()["due_at"] == "2026-12-20T08:00:00Z" and created.json()["owner"] == responder.username
    )
    assert (refused.status_code, naive.status_code) == (403, 400)
    assert [item["description"] for item in listed] == ["Add recipient checks"]
    assert "action_item_added" in list(in_post_mortem.audit_events.values_list("verb", flat=True))


def test_settling_needs_a_reason_and_an_owner_may_mark_their_own_item_done(
    in_post_mortem, manager, responder
):
    item = services.action_item_create(
        incident=in_post_mortem, actor=manager, description="Rotate the export key", owner=responder
    )
    url = f"/api/action-items/{item.pk}/"

    no_reason = _api(manager).patch(url, {"status": "risk_accepted"}, format="json")
    owner_accepts = _api(responder).patch(
        url, {"status": "risk_accepted", "resolution": "Meh"}, format="json"
    )
    owner_done = _api(responder).patch(
        url, {"status": "done", "resolution": "Rotated on 3 Dec."}, format="json"
    )

    assert no_reason.status_code == 400 and "why the risk is accepted" in str(no_reason.json())
    assert owner_accepts.status_code == 403
    assert owner_done.status_code == 200, owner_done.json()
    assert owner_done.json()["status"] == "done" and owner_done.json()["done_at"] is not None


def test_an_auditor_verifies_a_settled_item_and_writes_nothing_else(in_post_mortem, manager, auditor):
    item = services.action_item_create(incident=in_post_mortem, actor=manager, description="Train the team")
    url = f"/api/action-items/{item.pk}/"

    open_verify = _api(auditor).post(f"{url}verify/", {"note": "x"}, format="json")
    auditor_patch = _api(auditor).patch(url, {"status": "done", "resolution": "x"}, format="json")
    auditor_add = _api(auditor).post(
        f"/api/incidents/{in_post_mortem.pk}/action-items/", {"description": "x"}, format="json"
    )
    services.action_item_update(
        item=item, actor=manager, changes={"status": "done", "resolution": "Trained 12."}
    )
    manager_verify = _api(manager).post(f"{url}verify/", {}, format="json")
    verified = _api(auditor).post(f"{url}verify/", {"note": "Attendance list seen."}, format="json")

    assert (open_verify.status_code, auditor_patch.status_code, auditor_add.status_code) == (409, 403, 403)
    assert manager_verify.status_code == 403
    assert verified.status_code == 200
    assert verified.json()["verified_by"] == auditor.username
    assert verified.json()["verification_note"] == "Attendance list seen."


def test_reopening_an_item_clears_its_verification(in_post_mortem, manager, auditor):
    item = services.action_item_create(incident=in_post_mortem, actor=manager, description="x")
    services.action_item_update(item=item, actor=manager, changes={"status": "done", "resolution": "y"})
    services.action_item_verify(item=item, actor=auditor, note="ok")

    item = services.action_item_update(item=item, actor=manager, changes={"status": "open"})

    assert item.verified_at is None and item.done_at is None


def test_the_overdue_list_shows_open_items_past_due(in_post_mortem, manager, auditor):
    past = services.action_item_create(
        incident=in_post_mortem, actor=manager, description="Late", due_at=timezone.now() - timedelta(days=1)
    )
    services.action_item_create(
        incident=in_post_mortem,
        actor=manager,
        description="Not yet",
        due_at=timezone.now() + timedelta(days=3),
    )
    done_late = services.action_item_create(
        incident=in_post_mortem,
        actor=manager,
        description="Done late",
        due_at=timezone.now() - timedelta(days=2),
    )
    services.action_item_update(item=done_late, actor=manager, changes={"status": "done", "resolution": "ok"})

    overdue = _api(auditor).get("/api/action-items/", {"overdue": "true"}).json()["results"]
    bad = _api(auditor).get("/api/action-items/", {"overdue": "maybe"})
    from django.test import Client

    client = Client()
    client.force_login(auditor)
    page = client.get("/action-items/").content.decode()

    assert [item["id"] for item in overdue] == [past.pk] and overdue[0]["overdue"] is True
    assert bad.status_code == 400
    assert "Late" in page.split('id="open"')[0]


def _post_mortem_after_triage(make_incident, manager):
    """An incident triaged through a recorded assessment (so its playbook tasks exist), declared,
    notified and in its post-mortem, with the post-mortem completed."""
    from triage.services import assessment_record

    incident = make_incident()
    assessment_record(
        incident=incident,
        actor=manager,
        scope="in_scope",
        scope_rationale="Customer data reached a wrong recipient.",
        malicious="no",
        scenario="misdirected_communication",
        data_categories=["identity"],
        severity_inputs={"ease_of_identification": "maximum"},
        notification_facts={"breach_types": ["confidentiality"]},
    )
    customer = Customer.objects.create(name="T Ltd", account_reference="T-1")
    incident_services.affected_customer_add(incident=incident, customer=customer, actor=manager)
    incident = incident_services.incident_declare(incident=incident, actor=manager, nature_of_breach="x")
    Clock.objects.filter(incident=incident).update(met_at=timezone.now())
    incident = incident_services.incident_mark_notified(incident=incident)
    incident = incident_services.incident_begin_post_mortem(incident=incident, actor=manager)
    complete_post_mortem(incident, manager)
    return incident


def test_closing_names_each_open_action_item_task_and_withholding_then_proceeds(make_incident, manager):
    from triage.services import response_task_update

    incident = _post_mortem_after_triage(make_incident, manager)
    tasks = list(incident.response_tasks.all())
    assert tasks, "the playbook should have given this scenario tasks"
    item = services.action_item_create(incident=incident, actor=manager, description="Add checks")
    withholding = notification_services.withholding_create(
        incident=incident,
        actor=manager,
        field="sub_processor",
        reason="law_enforcement",
        requested_by="Police case 12",
        review_at=timezone.now() + timedelta(days=7),
    )

    refused = _api(manager).post(f"/api/incidents/{incident.pk}/transitions/close/", {}, format="json")

    assert refused.status_code == 400
    assert refused.json()["missing"] == ["post_mortem.action_items", "response_tasks", "withholdings"]
    services.action_item_update(
        item=item, actor=manager, changes={"status": "done", "resolution": "Shipped."}
    )
    for task in tasks:
        response_task_update(task=task, actor=manager, done=True)
    notification_services.withholding_release(withholding=withholding, actor=manager)
    closed = _api(manager).post(f"/api/incidents/{incident.pk}/transitions/close/", {}, format="json")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"


def test_the_close_form_names_what_is_open(make_incident, manager):
    from django.test import Client

    incident = _post_mortem_after_triage(make_incident, manager)
    client = Client()
    client.force_login(manager)

    page = client.post(f"/incidents/{incident.pk}/transitions/close/", {})

    assert page.status_code == 400
    assert "every playbook task done" in page.content.decode()


def test_reminders_go_once_when_due_and_once_when_overdue(in_post_mortem, manager, responder, settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    due_at = timezone.now() + timedelta(days=3)
    item = services.action_item_create(
        incident=in_post_mortem, actor=manager, description="Rotate keys", owner=responder, due_at=due_at
    )
    services.action_item_create(incident=in_post_mortem, actor=manager, description="No owner", due_at=due_at)

    early = action_item_reminders_scan(now=due_at - timedelta(hours=25))
    due = [action_item_reminders_scan(now=due_at - timedelta(hours=23)) for _ in range(2)]
    overdue = [action_item_reminders_scan(now=due_at + timedelta(minutes=1)) for _ in range(2)]

    assert (early.recorded, early.sent) == (0, 0)
    assert [(r.recorded, r.sent) for r in due] == [(1, 1), (0, 0)]
    assert [(r.recorded, r.sent) for r in overdue] == [(1, 1), (0, 0)]
    # Handed to the outbox (one row each), sent by the outbox sender, once.
    assert mail.outbox == []
    assert (outbox_send_due().sent, outbox_send_due().sent) == (2, 0)
    assert [m.subject for m in mail.outbox] == [
        f"[Breachdesk] Action item falls due: {in_post_mortem.reference}",
        f"[Breachdesk] Action item is overdue: {in_post_mortem.reference}",
    ]
    assert all(m.to == [responder.email] for m in mail.outbox)
    services.action_item_update(item=item, actor=manager, changes={"status": "done", "resolution": "ok"})
    assert ActionItemReminder.objects.count() == 2


def test_a_refused_reminder_is_kept_and_retried_by_the_outbox(
    in_post_mortem, manager, responder, settings, smtp_server
):
    due_at = timezone.now() - timedelta(minutes=5)
    services.action_item_create(
        incident=in_post_mortem, actor=manager, description="Rotate keys", owner=responder, due_at=due_at
    )
    first = action_item_reminders_scan(now=timezone.now())
    smtp_server.refuse_temporarily = True
    refused = outbox_send_due()
    smtp_server.refuse_temporarily = False
    too_soon = outbox_send_due()
    again = action_item_reminders_scan(now=timezone.now() + timedelta(hours=2))
    reminder = ActionItemReminder.objects.get()
    OutgoingEmail.objects.filter(action_item_reminder=reminder).update(next_attempt_at=timezone.now())
    later = outbox_send_due()

    # Created already overdue: one overdue reminder, no "falls due" one, handed over once.
    assert (first.recorded, first.sent) == (1, 1)
    assert (refused.sent, refused.retried) == (0, 1)
    assert too_soon.sent == 0
    assert (again.recorded, again.sent) == (0, 0)
    assert later.sent == 1
    assert len(smtp_server.received) == 1
    assert OutgoingEmail.objects.get(action_item_reminder=reminder).status == "sent"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_reminder_scanners_at_once_send_each_reminder_once(make_incident, manager, responder, settings):
    import threading

    from django.db import connection

    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    incident = make_incident(state="post_mortem")
    due_at = timezone.now() - timedelta(minutes=1)
    for number in range(30):
        services.action_item_create(
            incident=incident, actor=manager, description=f"Item {number}", owner=responder, due_at=due_at
        )
    mail.outbox.clear()
    barrier = threading.Barrier(2)
    reports = []

    def scan():
        barrier.wait()
        try:
            reports.append(action_item_reminders_scan())
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # 30 items already overdue: one overdue reminder each, handed over once between the two
    # scanners, and sent once by the outbox sender.
    assert sum(r.sent for r in reports) == 30
    assert len(mail.outbox) == 30  # the outbox sender, woken after each hand-over committed
    assert outbox_send_due().sent == 0
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 30


def test_an_overdue_clock_cannot_be_restarted_and_late_stays_late(make_incident, manager):
    incident = make_incident(state="declared")
    clock = Clock.objects.get(incident=incident)
    past = timezone.now() - timedelta(hours=73)
    Clock.objects.filter(pk=clock.pk).update(starts_at=past, due_at=past + timedelta(hours=72))

    answer = _api(manager).post(
        f"/api/clocks/{clock.pk}/restart/",
        {"starts_at": timezone.now().isoformat(), "reason": "Customer found affected later."},
        format="json",
    )
    with pytest.raises(LifecycleConflict, match="late stays late"):
        notification_services.clock_restart(
            clock=Clock.objects.get(pk=clock.pk), actor=manager, starts_at=timezone.now(), reason="Try again."
        )
    Clock.objects.filter(pk=clock.pk).update(met_at=timezone.now())
    met_late = _api(manager).post(
        f"/api/clocks/{clock.pk}/restart/",
        {"starts_at": timezone.now().isoformat(), "reason": "x"},
        format="json",
    )

    assert answer.status_code == 409
    assert met_late.status_code == 409
    clock.refresh_from_db()
    assert clock.status_at() == Clock.Status.MET_LATE
    assert not incident.audit_events.filter(verb="clock_restarted").exists()


def test_an_open_clock_not_yet_due_may_move_and_the_move_is_audited(make_incident, manager):
    incident = make_incident(state="declared")
    clock = Clock.objects.get(incident=incident)
    old_due = clock.due_at
    new_start = clock.starts_at + timedelta(hours=2)

    moved = notification_services.clock_restart(
        clock=clock, actor=manager, starts_at=new_start, reason="Added later."
    )

    event = incident.audit_events.get(verb="clock_restarted")
    assert moved.due_at == old_due + timedelta(hours=2)
    assert event.data["due_at"] == [old_due.isoformat(), moved.due_at.isoformat()]


def test_waiving_after_the_deadline_is_late_forever(make_incident, manager):
    incident = make_incident(state="declared")
    clock = Clock.objects.get(incident=incident)
    past = timezone.now() - timedelta(hours=80)
    Clock.objects.filter(pk=clock.pk).update(starts_at=past, due_at=past + timedelta(hours=72))

    waived = notification_services.clock_waive(
        clock=Clock.objects.get(pk=clock.pk), actor=manager, reason="Gone."
    )

    assert waived.status_at() == Clock.Status.WAIVED_LATE
