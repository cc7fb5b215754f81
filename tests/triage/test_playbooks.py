"""Scenario playbooks: an in-scope assessment creates the scenario's response tasks once per
(incident, step), due after the step's hours; responders tick them done or reassign them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from incidents import services as incident_services
from incidents.exceptions import ActionForbidden, LifecycleConflict
from incidents.models import Incident
from triage.models import PlaybookTemplate, ResponseTask
from triage.services import response_task_update


def _descriptions(incident) -> list[str]:
    return list(
        ResponseTask.objects.filter(incident=incident)
        .order_by("scenario", "order")
        .values_list("description", flat=True)
    )


def test_every_scenario_has_a_seeded_playbook_with_ordered_steps(db):
    templates = {template.scenario: template for template in PlaybookTemplate.objects.all()}

    assert sorted(templates) == sorted(Incident.Scenario.values)
    for template in templates.values():
        orders = list(template.steps.values_list("order", flat=True))
        assert orders == list(range(1, len(orders) + 1)), template.scenario
        assert len(orders) >= 3, template.scenario


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("misdirected_communication", "confirm the deletion in writing"),
        ("lost_or_stolen_device", "remote wipe"),
        ("malicious_insider", "Involve legal and HR"),
        ("supplier_breach", "sub-processor register"),
        ("malware_or_ransomware", "Isolate the affected systems"),
    ],
)
def test_triage_creates_the_scenario_tasks(make_incident, assess, responder, scenario, expected):
    incident = make_incident()

    assessment = assess(incident, scenario=scenario)

    template = PlaybookTemplate.objects.get(scenario=scenario)
    tasks = list(ResponseTask.objects.filter(incident=incident).order_by("order"))
    assert [task.description for task in tasks] == list(
        template.steps.order_by("order").values_list("description", flat=True)
    )
    assert any(expected in task.description for task in tasks)
    for task, step in zip(tasks, template.steps.order_by("order"), strict=True):
        assert task.step == step
        assert task.assignee == responder  # the incident owner, who triaged it
        assert task.due_at == assessment.assessed_at + step.due_after
        assert task.assignee_role == step.assignee_role
        assert task.done_at is None
    assert incident.audit_events.get(verb="assessment_recorded").data["response_tasks_created"] == len(tasks)


def test_tasks_are_created_once_per_incident_and_step(make_incident, assess):
    incident = make_incident()
    assess(incident, scenario="malware_or_ransomware")
    before = _descriptions(incident)

    assess(incident, scenario="malware_or_ransomware", band="very_high")

    assert _descriptions(incident) == before
    assert incident.audit_events.filter(verb="assessment_recorded").last().data["response_tasks_created"] == 0


def test_a_changed_scenario_adds_its_playbook_and_keeps_the_earlier_tasks(make_incident, assess):
    incident = make_incident()
    assess(incident, scenario="misdirected_communication")
    first = ResponseTask.objects.filter(incident=incident).count()

    assess(incident, scenario="supplier_breach")

    scenarios = set(ResponseTask.objects.filter(incident=incident).values_list("scenario", flat=True))
    assert scenarios == {"misdirected_communication", "supplier_breach"}
    supplier_steps = PlaybookTemplate.objects.get(scenario="supplier_breach").steps.count()
    assert ResponseTask.objects.filter(incident=incident).count() == first + supplier_steps


def test_tasks_go_to_the_incident_owner(make_incident, assess, manager, responder):
    incident = make_incident(owner=manager)

    assess(incident, actor=responder)

    assert set(ResponseTask.objects.filter(incident=incident).values_list("assignee", flat=True)) == {
        manager.pk
    }


def test_exits_create_no_tasks(make_incident, assess):
    incident = make_incident()

    assess(
        incident,
        scope="out_of_scope",
        out_of_scope_category="no_customer_data",
        severity_inputs=None,
        notification_facts=None,
    )

    assert _descriptions(incident) == []


def test_a_responder_marks_a_task_done_and_can_open_it_again(make_incident, assess, responder):
    incident = make_incident()
    assess(incident)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None

    done = response_task_update(task=task, actor=responder, done=True)

    assert done.is_done and done.done_by == responder
    assert done.done_at is not None and done.done_at.utcoffset() == timedelta(0)
    event = incident.audit_events.filter(verb="response_task_updated").last()
    assert event is not None
    assert event.data["changes"] == {"done": [False, True]}
    assert event.data["task"] == task.pk

    reopened = response_task_update(task=task, actor=responder, done=False)

    assert (reopened.done_at, reopened.done_by) == (None, None)


def test_ticking_a_done_task_again_changes_nothing(make_incident, assess, responder):
    incident = make_incident()
    assess(incident)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None
    first = response_task_update(task=task, actor=responder, done=True)

    again = response_task_update(task=task, actor=responder, done=True)

    assert again.done_at == first.done_at
    assert incident.audit_events.filter(verb="response_task_updated").count() == 1


def test_a_task_can_be_reassigned(make_incident, assess, responder, manager):
    incident = make_incident()
    assess(incident)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None

    updated = response_task_update(task=task, actor=responder, assignee=manager)

    assert updated.assignee == manager
    event = incident.audit_events.filter(verb="response_task_updated").last()
    assert event.data["changes"] == {"assignee": [responder.username, manager.username]}


def test_a_task_cannot_go_to_an_inactive_account(make_incident, assess, responder, manager):
    incident = make_incident()
    assess(incident)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None
    manager.is_active = False
    manager.save()

    with pytest.raises(ValidationError):
        response_task_update(task=task, actor=responder, assignee=manager)


@pytest.mark.parametrize("role", ["auditor", "outsider"])
def test_only_responders_and_managers_tick_tasks(make_incident, assess, personas, role):
    incident = make_incident()
    assess(incident)
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None

    with pytest.raises(ActionForbidden):
        response_task_update(task=task, actor=personas[role], done=True)

    task.refresh_from_db()
    assert task.done_at is None


def test_tasks_of_a_ruled_out_incident_are_frozen(make_incident, assess, responder):
    incident = make_incident()
    assess(incident)
    incident_services.incident_rule_out_of_scope(
        incident=incident,
        actor=responder,
        out_of_scope_category="no_customer_data",
        scope_rationale="The file held test data only.",
    )
    task = ResponseTask.objects.filter(incident=incident).first()
    assert task is not None

    with pytest.raises(LifecycleConflict):
        response_task_update(task=task, actor=responder, done=True)
