"""Reminders on every date (notifications.reminders): playbook task due dates, withholding
review dates and training expiry each raise one reminder when due and one when overdue, through
the outbox (delivered to a real SMTP server), from the deadline scanner; two scanners at once
raise each reminder once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from notifications.models import DueReminder, OutgoingEmail
from notifications.reminders import due_reminders_scan
from notifications.scanner import deadlines_scan
from notifications.sender import outbox_send_due
from notifications.services import withholding_create
from postmortems.training import Completion, course_create, training_records_import
from tests.triage.conftest import IN_SCOPE
from triage.models import ResponseTask
from triage.services import assessment_record

#: An in-scope assessment (its playbook gives the incident tasks assigned to its owner).
ASSESSMENT: dict[str, Any] = dict(IN_SCOPE)


def _tasks_of(incident, responder):
    assessment_record(incident=incident, actor=responder, **ASSESSMENT)
    tasks = list(ResponseTask.objects.filter(incident=incident).order_by("due_at", "id"))
    assert tasks, "the misdirected-communication playbook gives the incident tasks"
    return tasks


def _send_all():
    """The scans ran at future instants, so their emails are due then: make them due now."""
    OutgoingEmail.objects.update(next_attempt_at=timezone.now())
    outbox_send_due()


def _reminders(source):
    return list(DueReminder.objects.filter(source=source).order_by("id").values_list("object_id", "kind"))


def test_a_playbook_task_reminds_its_assignee_once_when_due_and_once_when_overdue(
    make_incident, responder, smtp_server
):
    incident = make_incident()
    task = _tasks_of(incident, responder)[0]
    assert task.assignee == responder
    ResponseTask.objects.exclude(pk=task.pk).update(done_at=timezone.now())

    assert due_reminders_scan(now=task.due_at - timedelta(hours=5)) == 0  # lead is 4 hours
    assert due_reminders_scan(now=task.due_at - timedelta(hours=3)) == 1
    assert due_reminders_scan(now=task.due_at - timedelta(hours=2)) == 0
    assert due_reminders_scan(now=task.due_at + timedelta(minutes=1)) == 1
    assert due_reminders_scan(now=task.due_at + timedelta(hours=6)) == 0
    assert _reminders("response_task") == [(task.pk, "due"), (task.pk, "overdue")]

    _send_all()
    received = smtp_server.received
    assert [message.recipients for message in received] == [["rita.responder@breachdesk.test"]] * 2
    subjects = [message.message["Subject"] for message in received]
    assert subjects == [
        f"[Breachdesk] Playbook task due: {incident.reference}",
        f"[Breachdesk] Playbook task overdue: {incident.reference}",
    ]
    body = received[1].text()
    assert "overdue since" in body
    assert f"/incidents/{incident.pk}/#task-{task.pk}" in body
    assert "/my-work/" in body


def test_a_task_done_or_first_seen_overdue_raises_only_what_is_due(make_incident, responder, settings):
    incident = make_incident()
    first, second, *rest = _tasks_of(incident, responder)
    ResponseTask.objects.filter(pk__in=[task.pk for task in rest]).update(done_at=timezone.now())
    ResponseTask.objects.filter(pk=first.pk).update(done_at=timezone.now())

    later = max(first.due_at, second.due_at) + timedelta(days=1)
    assert due_reminders_scan(now=later) == 1
    # The done task raises nothing; the open one, first seen overdue, gets no "due" reminder.
    assert _reminders("response_task") == [(second.pk, "overdue")]


def test_moving_a_date_later_raises_new_reminders_for_the_new_date(make_incident, responder):
    incident = make_incident()
    task, *rest = _tasks_of(incident, responder)
    ResponseTask.objects.filter(pk__in=[t.pk for t in rest]).update(done_at=timezone.now())
    due_reminders_scan(now=task.due_at + timedelta(minutes=1))
    moved = task.due_at + timedelta(days=2)
    ResponseTask.objects.filter(pk=task.pk).update(due_at=moved)

    assert due_reminders_scan(now=task.due_at + timedelta(minutes=2)) == 0
    assert due_reminders_scan(now=moved - timedelta(hours=1)) == 1
    assert list(DueReminder.objects.order_by("id").values_list("kind", "due_at")) == [
        ("overdue", task.due_at),
        ("due", moved),
    ]


def test_a_withholding_review_reminds_the_manager_who_withheld(make_incident, manager, smtp_server):
    incident = make_incident(state="declared")
    review_at = timezone.now() + timedelta(days=3)
    withholding = withholding_create(
        incident=incident,
        actor=manager,
        field="records_affected",
        reason="law_enforcement",
        requested_by="Police case 2026/114",
        review_at=review_at,
    )

    deadlines_scan(now=review_at - timedelta(hours=30))
    assert _reminders("withholding_review") == []
    report = deadlines_scan(now=review_at - timedelta(hours=12))  # through the scanner
    assert report.reminders == 1
    deadlines_scan(now=review_at + timedelta(hours=1))
    assert _reminders("withholding_review") == [(withholding.pk, "due"), (withholding.pk, "overdue")]

    _send_all()
    to_manager = [
        m
        for m in smtp_server.received
        if m.recipients == ["max.manager@breachdesk.test"] and "Withholding review" in m.message["Subject"]
    ]
    assert [m.message["Subject"] for m in to_manager] == [
        f"[Breachdesk] Withholding review due: {incident.reference}",
        f"[Breachdesk] Withholding review overdue: {incident.reference}",
    ]
    assert "Police" not in to_manager[0].message.as_string()  # who asked stays on the page


def _complete(email, code, completed_at):
    training_records_import(
        completions=[
            Completion(line=2, email=email, course_code=code, completed_at=completed_at, score=None)
        ],
        file_name="lms.csv",
        file_sha256="0" * 64,
    )


def test_training_expiry_reminds_once_and_a_new_completion_stops_it(manager, responder):
    course_create(
        actor=None,
        fields={"code": "GDPR-101", "name": "Data protection", "validity_days": 365, "is_mandatory": True},
    )
    completed = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    expires = completed + timedelta(days=365)
    _complete("max.manager@breachdesk.test", "GDPR-101", completed)

    assert due_reminders_scan(now=expires - timedelta(days=31)) == 0  # lead is 30 days
    assert due_reminders_scan(now=expires - timedelta(days=29)) == 1
    assert due_reminders_scan(now=expires - timedelta(days=28)) == 0
    email = OutgoingEmail.objects.get(kind="due_reminder")
    assert email.address == "max.manager@breachdesk.test"
    assert "GDPR-101" in email.body_text

    _complete("max.manager@breachdesk.test", "GDPR-101", expires - timedelta(days=5))
    assert due_reminders_scan(now=expires + timedelta(days=1)) == 0  # renewed: nothing overdue
    assert DueReminder.objects.filter(source="training_expiry").count() == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_scanners_at_once_raise_each_reminder_once(make_incident, responder, smtp_server):
    incidents = [make_incident() for _ in range(6)]
    tasks = [task for incident in incidents for task in _tasks_of(incident, responder)]
    later = max(task.due_at for task in tasks) + timedelta(minutes=1)
    barrier = threading.Barrier(2)
    raised: list[int] = []

    def scan():
        barrier.wait()
        try:
            raised.append(due_reminders_scan(now=later))
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(raised) == len(tasks)
    assert DueReminder.objects.count() == len(tasks)
    assert OutgoingEmail.objects.filter(kind="due_reminder").count() == len(tasks)
    _send_all()
    ids = [m.message["Message-ID"] for m in smtp_server.received]
    assert len(ids) == len(set(ids)) == len(tasks)
