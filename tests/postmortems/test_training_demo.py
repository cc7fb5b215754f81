"""The demo's training data (``seed_demo`` runs ``seed_demo_training``): the demo incident
manager's mandatory training has lapsed and shows on the overdue page; re-running changes
nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from postmortems.models import Course, TrainingAuditEvent, TrainingRecord
from postmortems.training import Status, training_status_for_user
from postmortems.training_audit import verify_training_chains


@pytest.fixture
def seeded(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_demo_has_a_lapsed_incident_manager_on_the_overdue_page(seeded):
    assert "Training: 3 courses. Training records: 8 rows; 8 recorded" in seeded
    assert list(Course.objects.filter(is_mandatory=True).values_list("code", flat=True)) == [
        "DP-101",
        "IR-201",
    ]
    users = get_user_model().objects
    manager, responder = users.get(username="manager"), users.get(username="responder")
    [lapse] = [s for s in training_status_for_user(manager).courses if not s.is_valid]
    assert (lapse.course.code, lapse.status) == ("DP-101", Status.LAPSED)
    assert all(s.is_valid for s in training_status_for_user(responder).courses)
    assert TrainingRecord.objects.filter(user=manager).count() == 2

    client = Client()
    client.force_login(manager)
    response = client.get("/training/overdue/")
    overdue = {
        person.email: [(s.course.code, s.status) for s in person.courses]
        for person in response.context["people"]
    }
    assert overdue == {
        "lukas.weber@breachdesk.test": [("IR-201", Status.NEVER_COMPLETED)],  # no account here
        "manager@breachdesk.test": [("DP-101", Status.LAPSED)],
    }
    assert "Lapsed" in response.content.decode()
    assert verify_training_chains() == []


def test_seeding_again_changes_no_training_data(seeded):
    records, events = TrainingRecord.objects.count(), TrainingAuditEvent.objects.count()
    out = StringIO()

    call_command("seed_demo", stdout=out, stderr=StringIO())

    assert "Training: demo courses exist already; nothing changed." in out.getvalue()
    assert (TrainingRecord.objects.count(), TrainingAuditEvent.objects.count()) == (records, events)
