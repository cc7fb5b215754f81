"""The "my work" page (/my-work/): what is due for the signed-in user, from every dated source,
overdue first; nobody else's items; bad input answered 400."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from notifications.services import withholding_create
from tests.triage.conftest import IN_SCOPE
from triage.models import ResponseTask
from triage.services import assessment_record

URL = reverse("dashboard:my_work")

#: An in-scope assessment (its playbook gives the incident tasks assigned to its owner).
ASSESSMENT: dict[str, Any] = dict(IN_SCOPE)


def _rows(response):
    html = response.content.decode()
    body = html.split('<table class="list" id="my-work">', 1)[1].split("</table>", 1)[0]
    return body.split("<tr")[2:]  # after the header row


def test_it_lists_the_users_own_dates_overdue_first(client, make_incident, responder, manager):
    incident = make_incident()
    assessment_record(incident=incident, actor=responder, **ASSESSMENT)
    tasks = list(ResponseTask.objects.filter(incident=incident).order_by("due_at"))
    late = tasks[-1]
    ResponseTask.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(hours=2))
    declared = make_incident(state="declared")
    withholding_create(
        incident=declared,
        actor=manager,
        field="records_affected",
        reason="law_enforcement",
        requested_by="Police",
        review_at=timezone.now() + timedelta(days=2),
    )

    client.force_login(responder)
    response = client.get(URL)
    assert response.status_code == 200
    rows = _rows(response)
    assert len(rows) == len(tasks)
    assert "overdue" in rows[0] and " ".join(late.description.split())[:40] in rows[0]
    assert all("overdue" not in row for row in rows[1:])
    assert all("Playbook task" in row for row in rows)
    assert "withheld" not in response.content.decode()  # the manager's review is not the responder's

    client.force_login(manager)
    rows = _rows(client.get(URL))
    assert len(rows) == 1 and "Withholding review" in rows[0] and declared.reference in rows[0]


def test_the_horizon_limits_what_is_listed_and_bad_input_is_refused(client, make_incident, manager):
    declared = make_incident(state="declared")
    withholding_create(
        incident=declared,
        actor=manager,
        field="records_affected",
        reason="risk_to_others",
        requested_by="Security",
        review_at=timezone.now() + timedelta(days=10),
    )
    client.force_login(manager)
    assert len(_rows(client.get(URL, {"days": "11"}))) == 1
    assert "Nothing is due for you within 5 days" in client.get(URL, {"days": "5"}).content.decode()
    for bad in ("abc", "0", "4000"):
        response = client.get(URL, {"days": bad})
        assert response.status_code == 400, bad
        assert 'role="alert"' in response.content.decode()
        assert len(_rows(response)) == 1  # the default 30 days still list the review


def test_it_needs_a_login_and_takes_only_safe_methods(client, responder):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(responder)
    assert client.post(URL).status_code == 405


def test_action_items_are_listed_and_left_to_their_own_reminders(client, make_incident, manager, responder):
    from notifications.models import DueReminder
    from notifications.reminders import due_reminders_scan
    from postmortems import services as postmortem_services

    incident = make_incident(state="post_mortem")
    postmortem_services.action_item_create(
        incident=incident,
        actor=manager,
        description="Rotate the leaked API key",
        owner=responder,
        due_at=timezone.now() - timedelta(hours=1),
    )
    client.force_login(responder)
    rows = _rows(client.get(URL))
    assert len(rows) == 1 and "Action item" in rows[0] and "Rotate the leaked API key" in rows[0]
    assert "overdue" in rows[0]
    due_reminders_scan()
    assert not DueReminder.objects.filter(source="action_item").exists()  # postmortems.reminders sends them
