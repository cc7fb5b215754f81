"""The triage app in /admin/: superusers edit stakeholder groups and playbooks; assessments,
alerts and tasks (written by the services, audited) are read-only there."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from triage.models import (
    Assessment,
    PlaybookStep,
    PlaybookTemplate,
    ResponseTask,
    StakeholderAlert,
    StakeholderGroup,
)


def _admin(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:triage_{model._meta.model_name}_{view}", args=args)


def test_every_triage_page_renders(superuser, make_incident, assess):
    assess(make_incident())
    client = _admin(superuser)

    for model in (Assessment, StakeholderGroup, StakeholderAlert, PlaybookTemplate, ResponseTask):
        row = model.objects.order_by("pk").first()
        assert row is not None
        assert client.get(_url(model, "changelist")).status_code == 200, model
        assert client.get(_url(model, "change", row.pk)).status_code == 200, model


def test_an_admin_sets_a_groups_addresses_and_rules(superuser):
    group = StakeholderGroup.objects.get(name="legal")

    response = _admin(superuser).post(
        _url(StakeholderGroup, "change", group.pk),
        {
            "name": "legal",
            "description": group.description,
            "email_addresses": "counsel@breachdesk.test\nparalegal@breachdesk.test",
            "min_band": "medium",
            "scenarios": ["malicious_insider", "malware_or_ransomware"],
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    group.refresh_from_db()
    assert group.recipients == ["counsel@breachdesk.test", "paralegal@breachdesk.test"]
    assert (group.min_band, group.scenarios) == ("medium", ["malicious_insider", "malware_or_ransomware"])


def test_a_bad_address_is_refused(superuser):
    group = StakeholderGroup.objects.get(name="legal")

    response = _admin(superuser).post(
        _url(StakeholderGroup, "change", group.pk),
        {"name": "legal", "email_addresses": "counsel@breachdesk.test\nnot an address", "min_band": "high"},
    )

    assert response.status_code == 200
    assert "“not an address” is not a valid email address." in response.content.decode()
    group.refresh_from_db()
    assert group.recipients == []


def test_an_admin_adds_a_playbook_step_inline(superuser):
    template = PlaybookTemplate.objects.get(scenario="other")
    steps = list(template.steps.order_by("order"))
    data = {
        "scenario": "other",
        "title": template.title,
        "description": template.description,
        "is_active": "on",
        "steps-TOTAL_FORMS": str(len(steps) + 1),
        "steps-INITIAL_FORMS": str(len(steps)),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, step in enumerate(steps):
        data.update(
            {
                f"steps-{index}-id": str(step.pk),
                f"steps-{index}-template": str(template.pk),
                f"steps-{index}-order": str(step.order),
                f"steps-{index}-description": step.description,
                f"steps-{index}-due_after": "24:00:00",
                f"steps-{index}-assignee_role": step.assignee_role,
            }
        )
    new = len(steps)
    data.update(
        {
            f"steps-{new}-template": str(template.pk),
            f"steps-{new}-order": str(new + 1),
            f"steps-{new}-description": "Tell the customer's data protection officer.",
            f"steps-{new}-due_after": "12:00:00",
            f"steps-{new}-assignee_role": "privacy",
        }
    )

    response = _admin(superuser).post(_url(PlaybookTemplate, "change", template.pk), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    added = PlaybookStep.objects.get(template=template, order=new + 1)
    assert added.description == "Tell the customer's data protection officer."
    assert added.due_after.total_seconds() == 12 * 3600


def test_rows_written_by_the_services_are_read_only(superuser, make_incident, assess):
    assess(make_incident())
    client = _admin(superuser)

    for model in (Assessment, StakeholderAlert, ResponseTask):
        row = model.objects.order_by("pk").first()
        assert row is not None
        assert client.get(_url(model, "add")).status_code == 403, model
        assert client.post(_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403, model
        assert model.objects.filter(pk=row.pk).exists()
